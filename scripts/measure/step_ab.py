"""Step time of one arm under two source trees of brts, interleaved (A B A B ...), on the default grid's models.

    python scripts/measure/step_ab.py --a ../main --b . --arm brts --rounds 3 --steps 8
    python scripts/measure/step_ab.py --a ../main --b . --spec bench-peer.yaml --arm brts_n4 --pool warm.sqlite

Each round times `--steps` training steps of the arm in a fresh process per tree (PYTHONPATH = that tree), every
step from the initial student so both trees time the same samples, and takes the median over steps of each
phase in CPU seconds (other processes' load does not inflate CPU time; with one thread it equals wall time on
an idle machine). Prints per round the phases of both trees and the ratio B / A, then the median ratio over
rounds and its range. `--set k=v` overrides the spec (`brts exp run`'s syntax) in both trees; `--spec` names
another spec (a file, e.g. the one `brts.bench.peer.write_spec` writes); `--pool FILE` gives both trees that
teacher sample pool, filled by an untimed pass of tree A first, so that teacher sampling drops out of the
comparison (both trees must share the sampler).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

PHASES = ("student_sample", "teacher_sample", "teacher_score", "select", "update")

CHILD = """
import json, statistics, sys, tempfile
from pathlib import Path
import torch
from brts import timing
from brts.runs.plan import plan
from brts.models.load import load_pair
from brts.spec import load_spec
from brts.tasks.registry import make_task
from brts.training.trainer import build_trainer

arm, steps, overrides, spec, pool = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4], sys.argv[5]
planned = next(p for p in plan(load_spec(spec, ["seeds=[0]", *overrides])) if p.arm == arm)
torch.set_num_threads(planned.config.train.threads)
timing.use_cpu_time(True)
pair = load_pair(planned.config)
initial = {k: v.clone() for k, v in pair.student.state_dict().items()}
records = []
with tempfile.TemporaryDirectory() as run_dir:
    from brts.rollout.pool import SamplePool

    trainer = build_trainer(planned.config, Path(run_dir), SamplePool(Path(pool)) if pool else None, pair)
    for step in range(1, steps + 2):
        pair.student.load_state_dict(initial)
        records.append(trainer.step(step))
phases = ("student_sample", "teacher_sample", "teacher_score", "select", "update")
print("AB-JSON " + json.dumps({k: statistics.median(r["time/" + k] for r in records[1:]) for k in phases}))
"""


def time_tree(tree: Path, arm: str, steps: int, overrides: list[str], spec: str = "ablation-grid",
              pool: Path | None = None) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve()), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, arm, str(steps), json.dumps(overrides), spec,
                           str(pool or "")], env=env, capture_output=True, text=True, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("AB-JSON ")), None)
    if line is None:
        raise SystemExit(f"error: timing {tree} failed:\n{done.stderr[-2000:]}")
    return json.loads(line.removeprefix("AB-JSON "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True, help="baseline source tree (a checkout of brts)")
    parser.add_argument("--b", type=Path, required=True, help="source tree compared with it")
    parser.add_argument("--arm", default="brts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--spec", default="ablation-grid", help="spec name or file (default: ablation-grid)")
    parser.add_argument("--pool", type=Path, help="a teacher sample pool both trees read (filled first, untimed)")
    args = parser.parse_args()
    spec = str(Path(args.spec).resolve()) if Path(args.spec).is_file() else args.spec
    pool = args.pool.resolve() if args.pool else None
    if pool is not None:
        time_tree(args.a, args.arm, args.steps, args.overrides, spec, pool)  # fills the pool
    ratios = []
    for round_ in range(1, args.rounds + 1):
        a = time_tree(args.a, args.arm, args.steps, args.overrides, spec, pool)
        b = time_tree(args.b, args.arm, args.steps, args.overrides, spec, pool)
        ratio = sum(b.values()) / sum(a.values())
        ratios.append(ratio)
        for name, phases in (("A", a), ("B", b)):
            parts = " ".join(f"{k} {v:.4f}" for k, v in phases.items())
            print(f"round {round_} {name}: total {sum(phases.values()):.4f} s ({parts})", flush=True)
        print(f"round {round_} B / A: {ratio:.3f} (scoring and update alone: "
              f"{sum(b[k] for k in PHASES[2:]) / sum(a[k] for k in PHASES[2:]):.3f})", flush=True)
    print(f"{args.arm}: B / A step time, median over {args.rounds} rounds {statistics.median(ratios):.3f} "
          f"(range {min(ratios):.3f}-{max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
