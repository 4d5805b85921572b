"""GPU go/no-go check: a few training steps of `opd` and `brts` on random Qwen2-style models, nothing downloaded.

    python scripts/gpu_check.py                                  # ~0.5B (Qwen2.5-0.5B's shape), vLLM, on the GPU
    python scripts/gpu_check.py --size tiny --backend hf         # the same path on CPU in seconds (no vLLM)
    python scripts/gpu_check.py --size tiny-qwen-vocab --backend hf --max-new-tokens 256 --steps 1 --max-peak-gib 3
                                                                 # Qwen2's 151,936-token vocabulary on CPU

Builds a tokenizer here (one token per character plus filler tokens up to the vocabulary size), a random
teacher and a random student of one architecture (`brts.models.random_pairs`), and a spec over the synthetic task
(8 prompts x 2 student samples, N = 4 teacher samples, micro-batch 4; on CPU one thread per core that other
processes leave free, see scripts/measure/sampler_threads.py); then runs each arm in its own process
(so each arm's vLLM engines and peak memory are its own) through `brts.runs.experiment.run_experiment`, the path
every run takes (training, checkpoints, final evaluation), and prints one table: per arm the step time, the
rollout tokens/s, the peak memory (GPU: `torch.cuda.max_memory_allocated`, vLLM engines in-process included;
CPU: the process's peak resident memory, and with `--json` its peak while the keyed decode loop draws), the
estimate of `brts.models.estimate` for the streamed computation and for the full-vocabulary one it replaced, and
pass/fail. An arm fails when it does not finish, a loss is not
finite, or its peak passes `--max-peak-gib`; the exit status is 1 when any arm fails. Random models rarely
sample EOS, so every response runs to the length limit: the step times are those of full-length rollouts.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARMS = ("opd", "brts")


class PeakRSS:
    """This process's peak resident memory (Linux), overall and while the keyed decode loop draws: the kernel's
    high-water mark (VmHWM) is reset before each draw and read after it, and the overall peak keeps every
    mark read before a reset."""

    def __init__(self) -> None:
        self.overall_kib = 0
        self.sampling_kib = 0

    @staticmethod
    def _mark() -> int:
        status = Path("/proc/self/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])

    def watch_sampling(self) -> None:
        from brts.rollout.keyed import KeyedHFGenerator

        original = KeyedHFGenerator.sample

        def sample(generator, requests, settings):  # type: ignore[no-untyped-def]
            self.overall_kib = max(self.overall_kib, self._mark())
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
            try:
                return original(generator, requests, settings)
            finally:
                mark = self._mark()
                self.sampling_kib, self.overall_kib = max(self.sampling_kib, mark), max(self.overall_kib, mark)

        KeyedHFGenerator.sample = sample  # type: ignore[method-assign]

    def overall_gib(self) -> float:
        return max(self.overall_kib, self._mark()) / 2**20


def spec_text(teacher: Path, student: Path, args: argparse.Namespace) -> str:
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    chunk = f", logprob_chunk: {args.logprob_chunk}" if args.logprob_chunk else ""
    return f"""name: gpu-check
models: {{teacher: {teacher}, student: {student}}}
train: {{steps: {args.steps}, prompts_per_step: {args.prompts}, samples_per_prompt: 2,
        max_new_tokens: {args.max_new_tokens}, lr: 1.0e-6, compute_dtype: {dtype}, micro_batch_size: 4,
        checkpoint_every: 1000, validate_every: 1000, validation_problems: 2, validation_k: 1, threads: {args.threads}{chunk}}}
eval: {{tasks: [brts_synthetic_easy], problems: 1, k: 1, max_new_tokens: 16, backend: hf}}
rollout: {{backend: {args.backend}, vllm_memory_fraction: {args.vllm_memory_fraction}}}
method: {{alignment_top_k: 3}}
arms: [opd, brts]
pool: {{enabled: false}}
seeds: [0]
"""


def run_arm(spec_path: Path, arm: str, store: Path) -> dict[str, object]:
    """Run one arm in this process (`run_experiment`); return its step times, rollout rate, losses and the peak
    memory of its training (taken at its last step, before the final evaluation)."""
    import torch

    from brts.runs.experiment import run_experiment
    from brts.runs.observer import RunObserver
    from brts.spec import load_spec

    rss = PeakRSS()

    def peak_gib() -> float:
        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**30
        if rss.sampling_kib:
            return rss.overall_gib()
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    class Clock(RunObserver):
        def __init__(self) -> None:
            self.started, self.events, self.peak, self.sampling_peak = time.perf_counter(), [], 0.0, 0.0

        def runs_started(self, todo: object, cached: object) -> None:
            self.started = time.perf_counter()

        def step(self, planned: object, step: int, total: int, metrics: dict) -> None:
            self.events.append(time.perf_counter())
            since = self.events[-1] - (self.events[-2] if step > 1 else self.started)
            note = " (with loading the models)" if step == 1 else ""
            print(f"  {arm} step {step}: {since:.2f} s{note}, surrogate/total {metrics['surrogate/total']}",
                  flush=True)
            if step == total:
                self.peak, self.sampling_peak = peak_gib(), rss.sampling_kib / 2**20

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    elif Path("/proc/self/clear_refs").exists():
        rss.watch_sampling()
    clock = Clock()
    result = run_experiment(load_spec(str(spec_path), [f"arms=[{arm}]"]), store, workers=1, observer=clock,
                            references=False)
    [outcome] = result.outcomes
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    if outcome.action != "ran":
        return {"arm": arm, "error": f"{outcome.action}: {outcome.record.get('error')}", "device": device}
    cfg = outcome.planned.config
    steps = [m for m in result.store.run(outcome.planned).metrics() if "surrogate/total" in m]
    first = sum(v for k, v in steps[0].items() if k.startswith("time/"))  # step 1 alone, without the loading
    walls = [first] + [b - a for a, b in zip(clock.events, clock.events[1:], strict=False)]
    rows = cfg.train.prompts_per_step * cfg.train.samples_per_prompt
    tokens = sum(m["student/response_tokens"] * rows for m in steps) + steps[-1]["teacher/tokens_generated"]
    sampling = sum(m["time/student_sample"] + m["time/teacher_sample"] for m in steps)
    return {
        "arm": arm, "setup_s": round(clock.events[0] - clock.started - first, 1),
        "step_s": [round(s, 2) for s in walls],
        "breakdown_s": {k.removeprefix("time/"): round(sum(m[k] for m in steps) / len(steps), 3)
                        for k in steps[0] if k.startswith("time/")},
        "finite": all(isinstance(m["surrogate/total"], float) and math.isfinite(m["surrogate/total"]) for m in steps),
        "rollout_tokens_per_s": round(tokens / sampling) if sampling else None,
        "peak_gib": clock.peak, "device": device, **({"sampling_peak_gib": clock.sampling_peak}
                                                     if clock.sampling_peak else {}),
    }


def estimates(spec_path: Path, arm: str, prompt_tokens: int) -> dict[str, float]:
    """One arm's process in GiB (brts.models.estimate): its peak with the streamed log-probs (`estimate_gib`), with the
    full-vocabulary computation before them (`unstreamed_gib`), and while the keyed decode loop draws
    (`sampling_estimate_gib`: what stays resident plus the sampling stage)."""
    import torch

    from brts.models.estimate import memory_estimate
    from brts.runs.plan import plan
    from brts.spec import load_spec

    planned = next(p for p in plan(load_spec(str(spec_path))) if p.arm == arm)
    device = "gpu" if torch.cuda.is_available() else "cpu"
    streamed = memory_estimate(planned.config, planned.resources, prompt_tokens=prompt_tokens, device=device)
    full = memory_estimate(planned.config, planned.resources, prompt_tokens=prompt_tokens, streamed=False,
                           device=device)
    resident = streamed["total"] - max(streamed["sampling"], streamed["alignment"], streamed["update"])
    return {"estimate_gib": streamed["total"], "unstreamed_gib": full["total"],
            "sampling_estimate_gib": resident + streamed["sampling"]}


def prompt_width(spec_path: Path) -> int:
    """Tokens of the longest training prompt (what the full-vocabulary computation also scored)."""
    from brts.models.load import load_model
    from brts.spec import load_spec
    from brts.tasks.base import prompt_ids
    from brts.tasks.registry import make_task

    spec = load_spec(str(spec_path))
    _, tokenizer = load_model(spec.models.student)
    task = make_task(spec.task)
    return max(len(prompt_ids(tokenizer, task, task.prompt(p))) for p in task.train_problems()[:64])


def render(results: list[dict[str, object]], args: argparse.Namespace, wall: float) -> str:
    unit = "GPU GiB" if args.device == "cuda" else "RSS GiB"
    rate_name = "vLLM tok/s" if args.backend == "vllm" else "keyed tok/s"
    lines = [f"{'arm':6} {'step s':>8} {rate_name:>14} {'peak ' + unit:>14} {'estimate':>9} "
             f"{'unstreamed':>11}  result"]
    for r in results:
        steps = r.get("step_s") or []
        step = f"{statistics.median(steps[1:] or steps):.2f}" if steps else "-"  # type: ignore[arg-type]
        peak = f"{r['peak_gib']:.2f}" if "peak_gib" in r else "-"
        rate = r.get("rollout_tokens_per_s") or "-"
        lines.append(f"{r['arm']:6} {step:>8} {rate!s:>14} {peak:>14} {r['estimate_gib']:>9.2f} "
                     f"{r['unstreamed_gib']:>11.2f}  {r['verdict']}")
    lines.append(f"device: {results[0].get('device', args.device)}; backend: {args.backend}; size: {args.size}; "
                 f"{args.max_new_tokens} new tokens; step s = median over steps after the first (the first "
                 f"alone when there is one); tok/s = student and teacher tokens over their sampling time; "
                 f"estimate = brts.models.estimate for the streamed log-probs, unstreamed = the full-vocabulary "
                 f"computation before them")
    lines.append(f"total wall time: {wall:.0f} s")
    return "\n".join(lines)


def free_core_threads() -> int:
    """One thread per core that other processes leave free over half a second (brts.cpu): two OpenMP threads
    on two cores stall whenever another process takes one of them (sampling ran ten times slower so on a
    shared 2-core machine, scripts/measure/sampler_threads.py)."""
    from brts.cpu import FreeCores, threads_for, usable_cores

    free = FreeCores()
    time.sleep(0.5)
    return threads_for(free.since_last(), cap=usable_cores())


def verdict(result: dict[str, object], args: argparse.Namespace) -> str:
    if "error" in result:
        return f"FAIL ({result['error']})"
    if not result["finite"]:
        return "FAIL (a loss is not finite)"
    if args.max_peak_gib is not None and float(result["peak_gib"]) > args.max_peak_gib:  # type: ignore[arg-type]
        return f"FAIL (peak above {args.max_peak_gib} GiB)"
    return "pass"


def main() -> int:
    from brts.models.random_pairs import SIZES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    parser.add_argument("--backend", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step (2 student samples each)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="response length, student and teacher")
    parser.add_argument("--logprob-chunk", type=int, default=None, help="train.logprob_chunk (default: the spec's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="train.threads (CPU; default: the cores other processes leave free, at least 1)")
    parser.add_argument("--max-peak-gib", type=float, default=None, help="fail an arm whose peak memory is above")
    parser.add_argument("--vllm-memory-fraction", type=float, default=0.2)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--arm", help=argparse.SUPPRESS)  # internal: train one arm in this process
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.arm:  # child: one arm, one JSON line
        work = Path(args.work)
        result = run_arm(work / "spec.yaml", args.arm, work / "store")
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.backend == "vllm" and args.device != "cuda":
        print("error: --backend vllm needs a GPU here; use --backend hf on CPU", file=sys.stderr)
        return 2
    if args.logprob_chunk is not None and args.logprob_chunk < 1:
        print("error: --logprob-chunk must be at least 1", file=sys.stderr)
        return 2
    from brts.models.random_pairs import build_models

    if args.threads is None:
        args.threads = free_core_threads()
    if args.device == "cpu":
        print(f"threads per arm: {args.threads}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="brts-gpu-check-") as tmp:
        work = Path(tmp)
        teacher, student, params = build_models(work, SIZES[args.size])
        print(f"built random Qwen2 teacher and student ({args.size}): {params / 1e6:.2f} M parameters each, "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        (work / "spec.yaml").write_text(spec_text(teacher, student, args))
        width = prompt_width(work / "spec.yaml")
        results = []
        for arm in ARMS:
            cmd = [sys.executable, __file__, "--arm", arm, "--work", str(work), "--size", args.size,
                   "--backend", args.backend]
            child = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
            lines = child.stdout.splitlines()
            print("\n".join(line for line in lines if not line.startswith("RESULT ")), flush=True)
            found = next((line for line in lines if line.startswith("RESULT ")), None)
            if child.returncode != 0 or found is None:
                print(f"error: arm {arm} failed (exit {child.returncode}); its output is above", file=sys.stderr)
                result: dict[str, object] = {"arm": arm, "error": f"exit {child.returncode}"}
            else:
                result = json.loads(found.removeprefix("RESULT "))
            result.update(estimates(work / "spec.yaml", arm, width))
            result["verdict"] = verdict(result, args)
            results.append(result)
    print()
    print(render(results, args, time.perf_counter() - started))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["verdict"] == "pass" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
