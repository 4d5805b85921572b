"""Keyed sampling on one thread against two, on the long-vocabulary tiny model, alternating in fresh processes.

    python scripts/measure/sampler_threads.py [--rounds 2] [--tokens 64]

What `scripts/gpu_check.py` chooses its thread count from: on a 2-core machine that other processes keep busy,
two OpenMP threads wait on each other. Each run draws the check's two batches (8 prompts x 2 student samples at
temperature 1; 8 prompts x 4 teacher samples at 0.7 / top-p 0.95) from a random Qwen2 model with 151,936 tokens
and prints wall and CPU seconds; then the median ratio of two threads to one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def draw(folder: Path, threads: int, tokens: int) -> dict[str, float]:
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brts.rollout.base import SamplingSettings
    from brts.rollout.keyed import KeyedHFGenerator

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(folder / "teacher")
    tokenizer = AutoTokenizer.from_pretrained(folder / "teacher")
    generator = KeyedHFGenerator(model, tokenizer)
    prompts = [tokenizer(f"{i}+2=:")["input_ids"] for i in range(8)]
    wall, cpu = time.perf_counter(), time.process_time()
    for n, temperature, top_p in ((2, 1.0, 1.0), (4, 0.7, 0.95)):
        generator.generate(prompts, SamplingSettings(n=n, temperature=temperature, top_p=top_p,
                                                     max_new_tokens=tokens, seed=0))
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(draw(Path(args.child), args.threads, args.tokens)))
        return 0
    from brts.models.random_pairs import SIZES, build_models

    walls: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="brts-sampler-threads-") as tmp:
        build_models(Path(tmp), SIZES["tiny-qwen-vocab"])
        for round_ in range(1, args.rounds + 1):
            for threads in (1, 2):
                out = subprocess.run([sys.executable, __file__, "--child", tmp, "--threads", str(threads),
                                      "--tokens", str(args.tokens)], capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                walls[threads].append(r["wall_s"])
                print(f"round {round_} {threads} thread(s): wall {r['wall_s']:6.2f} s, CPU {r['cpu_s']:6.2f} s",
                      flush=True)
    ratios = [two / one for one, two in zip(walls[1], walls[2], strict=True)]
    print(f"two threads / one, wall time: median {statistics.median(ratios):.2f} "
          f"(per round {', '.join(f'{r:.2f}' for r in ratios)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
