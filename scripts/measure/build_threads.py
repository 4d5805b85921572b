"""Build time with one core kept busy against idle, per thread policy: the figures behind brts/cpu.py.

    python scripts/measure/build_threads.py [--scale 0.25] [--reps 2] [--policies auto,1,2]

Builds the built-in models (the recipe with its step and problem counts scaled by --scale) in a fresh process per
measurement, into a temporary cache, with the build's threads fixed (BRTS_BUILD_THREADS=1, 2) or chosen from the
free cores (auto). Each policy is built idle and with one other process spinning (`while True: pass`), back to
back, the order alternating between rounds, so slow drift on a shared machine hits both alike. Prints every run's
build seconds (the build's own clock, without the interpreter's start), each policy's busy/idle ratio per round,
and whether every build wrote the same model bits.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import dataclasses, hashlib, json, sys
from pathlib import Path
from brts.models.recipe import BuildSettings, build_default_models
scale, out = float(sys.argv[1]), Path(sys.argv[2])
base = BuildSettings()
counts = ("base_steps", "teacher_steps", "student_steps", "eval_problems")
settings = dataclasses.replace(base, **{k: max(1, round(getattr(base, k) * scale)) for k in counts})
built = build_default_models(out, progress=False, settings=settings)
record = json.loads((built.root / "build.json").read_text())
bits = hashlib.sha256(b"".join((built.root / r / "model.safetensors").read_bytes() for r in ("teacher", "student")))
print("RESULT " + json.dumps({"seconds": record["build_seconds"], "expected": record["expected_seconds"],
                             "threads": record["threads_at_start"], "changes": record["thread_changes"],
                             "bits": bits.hexdigest()[:16]}))
"""


@dataclasses.dataclass
class Run:
    policy: str
    busy: bool
    seconds: float
    expected: float
    threads: int
    changes: int
    bits: str


def build_once(policy: str, busy: bool, scale: float) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BRTS_BUILD_THREADS", None)
    if policy != "auto":
        env["BRTS_BUILD_THREADS"] = policy
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as cache:
            done = subprocess.run([sys.executable, "-c", _CHILD, str(scale), cache], env=env, capture_output=True,
                                  text=True, check=False)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"build failed ({policy}, busy={busy}):\n{done.stderr[-2000:]}")
    data = json.loads(line.removeprefix("RESULT "))
    return Run(policy, busy, data["seconds"], data["expected"], data["threads"], data["changes"], data["bits"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.25, help="share of the recipe's steps and problems")
    parser.add_argument("--reps", type=int, default=2, help="rounds (each: every policy idle and busy)")
    parser.add_argument("--policies", default="auto,1,2", help="comma-separated: auto, or a fixed thread count")
    args = parser.parse_args()
    policies = args.policies.split(",")
    runs: list[Run] = []
    for rep in range(args.reps):
        for policy in policies:
            for busy in ((False, True) if rep % 2 == 0 else (True, False)):
                run = build_once(policy, busy, args.scale)
                runs.append(run)
                print(f"round {rep + 1} {policy:>4} {'busy' if busy else 'idle'}: {run.seconds:7.1f} s "
                      f"(expected {run.expected:.0f} s; {run.threads} thread(s) at start, {run.changes} changes; "
                      f"bits {run.bits})", flush=True)
    print("\npolicy  idle s (median)  busy s (median)  busy/idle per round")
    for policy in policies:
        idle = [r.seconds for r in runs if r.policy == policy and not r.busy]
        busy = [r.seconds for r in runs if r.policy == policy and r.busy]
        ratios = " ".join(f"{b / i:.2f}" for i, b in zip(idle, busy, strict=True))
        print(f"{policy:>6}  {statistics.median(idle):15.1f}  {statistics.median(busy):15.1f}  {ratios}")
    reference = min(statistics.median([r.seconds for r in runs if r.policy == p and not r.busy]) for p in policies)
    print(f"\nfastest idle median: {reference:.1f} s; each policy's busy median over it: " + ", ".join(
        f"{p} {statistics.median([r.seconds for r in runs if r.policy == p and r.busy]) / reference:.2f}x"
        for p in policies))
    print("every build wrote the same model bits:", len({r.bits for r in runs}) == 1)


if __name__ == "__main__":
    main()
