"""CPU cost of the streamed head with and without the CPU chunk cap (brts.training.logprobs.CPU_CHUNK_VALUES), A/B.

    python scripts/measure/cpu_head_ab.py                       # Qwen2's vocabulary on a 64-wide body (the long-vocabulary check)
    python scripts/measure/cpu_head_ab.py --shape smollm2       # SmolLM2-135M's head (49,152 x 576)
    python scripts/measure/cpu_head_ab.py --rounds 3 --env MALLOC_TRIM_THRESHOLD_=268435456

Each round runs both variants in fresh processes, alternating (A B A B ...), on one thread: the teacher's
`top_tokens` over N response positions, then the student's kept columns forward and backward, with
`train.logprob_chunk` 256. Prints per run the CPU seconds (user, system), minor page faults and peak RSS, then
the median ratio capped / uncapped. CPU time rather than wall time: other processes on a shared machine do not
inflate it as much (they still slow the memory system; read ratios to about ±10%).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SHAPES = {"qwen-tiny": (151_936, 64, 6144), "smollm2": (49_152, 576, 2048)}  # vocabulary, hidden, positions


def measure(vocab: int, hidden: int, positions: int, capped: bool) -> dict[str, float]:
    import resource
    import time

    import torch

    from brts.training import logprobs
    torch.set_num_threads(1)
    if not capped:
        logprobs.CPU_CHUNK_VALUES = 1 << 62
    torch.manual_seed(0)
    weight = torch.randn(vocab, hidden) * 0.02
    head, states = logprobs.OutputHead(weight, None), torch.randn(positions, hidden)
    tokens = torch.randint(0, vocab, (positions,))
    before, cpu = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    top = logprobs.top_tokens(head, states, tokens, 16, 256)
    h, w = states.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    extra = torch.cat([top.indices, tokens[:, None]], -1)
    values, _, _ = logprobs._StudentColumns.apply(h, w, None, extra, 16, 256, torch.float32)
    values.sum().backward()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": time.process_time() - cpu, "user_s": after.ru_utime - before.ru_utime,
            "sys_s": after.ru_stime - before.ru_stime, "faults": after.ru_minflt - before.ru_minflt,
            "peak_gib": after.ru_maxrss / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen-tiny")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the measured processes")
    parser.add_argument("--child", choices=["capped", "uncapped"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    vocab, hidden, positions = SHAPES[args.shape]
    if args.child:
        print(json.dumps(measure(vocab, hidden, positions, args.child == "capped")))
        return 0
    env = {**os.environ, **dict(item.split("=", 1) for item in args.env)}
    print(f"{args.shape}: vocabulary {vocab:,}, hidden {hidden}, {positions} positions, chunk 256, one thread")
    cpu: dict[str, list[float]] = {"uncapped": [], "capped": []}
    for round_ in range(1, args.rounds + 1):
        for variant in ("uncapped", "capped"):
            out = subprocess.run([sys.executable, __file__, "--shape", args.shape, "--child", variant],
                                 capture_output=True, text=True, env=env, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            cpu[variant].append(r["cpu_s"])
            print(f"round {round_} {variant:9} cpu {r['cpu_s']:6.2f} s (user {r['user_s']:6.2f}, sys {r['sys_s']:5.2f})"
                  f"  faults {r['faults']:>9,}  peak {r['peak_gib']:.2f} GiB", flush=True)
    ratios = [c / u for c, u in zip(cpu["capped"], cpu["uncapped"], strict=True)]
    print(f"capped / uncapped CPU time: median {statistics.median(ratios):.2f} "
          f"(per round {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
