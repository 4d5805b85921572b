"""`brts exp list|show|run|status`: an experiment's planned runs, their cost estimates, running and progress."""

from __future__ import annotations

import json
import os
import signal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from brts.cli.common import (
    JsonProgressOpt,
    QuietOpt,
    SetOpt,
    StoreOpt,
    alert,
    err,
    fail,
    load_experiment,
    out,
    store_root,
    user_errors,
)
from brts.spec import SpecError, list_specs, load_spec, resolved_yaml

app = typer.Typer(help="Experiments: declarative grids of arms x seeds.", no_args_is_help=True)


class Executor(str, Enum):
    local = "local"
    slurm = "slurm"
    ray = "ray"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@app.command("list")
def exp_list(store: StoreOpt = None) -> None:
    """List the experiment specs found, with how many of their runs are finished in the store."""
    from brts.runs.plan import plan
    from brts.store import RunStore

    table = Table("experiment", "spec", "runs", "finished")
    runs = RunStore(store_root(store))
    for name, path in list_specs():
        try:
            planned = plan(load_spec(str(path)))
        except SpecError as exc:
            table.add_row(name, str(path), Text("invalid", style="red"), str(exc)[:60])
            continue
        done = sum(runs.run(p).status == "finished" for p in planned)
        table.add_row(name, str(path), str(len(planned)), str(done))
    out.print(table)


@app.command("show")
def exp_show(
    name: str, set_: SetOpt = None, store: StoreOpt = None,
    report: Annotated[Path | None, typer.Option(help="a previous report folder for the power lines "
                                                     "(default: reports/NAME when it exists)")] = None,
) -> None:
    """Print the resolved spec and the planned runs with cost estimates; execute and download nothing."""
    from brts.models.estimate import GPUS, estimate, fits
    from brts.runs.experiment import check_ready
    from brts.runs.plan import plan
    from brts.store import RunStore

    with user_errors():
        spec = load_experiment(name, set_)
        planned = plan(spec)
        runs = RunStore(store_root(store))
        check_ready(spec, runs, dry=True)  # what `exp run` refuses, refused here: show is a dry run
    out.print(resolved_yaml(spec), highlight=False)
    arms = Table("arm", "preset", "resolved method (fields that differ from the MethodConfig defaults; "
                 "* differs from the arm's preset)", title="arms")
    for arm in spec.arms:
        arms.add_row(arm.name, arm.preset, _resolved_fields(spec, arm))
    out.print(arms)
    _print_power_plan(spec, report or Path("reports") / spec.name)
    table = Table("run id", "arm", "seed", "status", "teacher tokens ≤", "GPU memory / GPU",
                  *(f"fits {name}" for name in GPUS),
                  title=f"{len(planned)} planned runs ({spec.resources.world_size} training process(es) each)")
    for p in planned:
        est = estimate(p.config, p.resources)
        memory = _gib(est.memory_gib["total"]) if est.memory_gib else "unknown model"
        verdicts = [("yes" if fits(est.memory_gib, p.config, size) else "no") if est.memory_gib else "?"
                    for size in GPUS.values()]
        table.add_row(p.run_id, p.arm, str(p.seed), runs.run(p).status,
                      _tokens(est.teacher_tokens), memory, *verdicts)
    out.print(table)
    _print_estimate_basis(planned[0])


def _resolved_fields(spec: Any, arm: Any) -> str:
    """`field=value` for every resolved field off the MethodConfig defaults or off the preset, `*` on the latter."""
    from brts.method.config import arm_config

    method, preset = spec.method_for(arm), arm_config(arm.preset)
    fields = sorted(set(method.model_dump(exclude_defaults=True)) | {
        k for k in type(method).model_fields if getattr(method, k) != getattr(preset, k)})
    return ", ".join(f"{k}={getattr(method, k)}" + ("*" if getattr(method, k) != getattr(preset, k) else "")
                     for k in fields) or "(defaults)"


def _print_power_plan(spec: Any, folder: Path) -> None:
    """Per comparison of a previous report of this experiment: what the planned seeds x problems could detect."""
    from brts.report.aggregate import display_task
    from brts.report.display import detectable_text
    from brts.report.power import planned_power, read_previous
    from brts.report.tables import signed

    previous = read_previous(folder / "table.csv")
    if previous is None:
        out.print(f"Power: no previous report with variance components in {folder}/ (run `brts report "
                  f"{spec.name}` after a run to see what this design can detect).", highlight=False)
        return
    plan = planned_power(previous, len(spec.seeds), spec.eval.problems)
    table = Table("arm", "task", "observed Δ", "seeds x problems", "detectable Δ (80% power)",
                  "seeds to detect the observed Δ",
                  title=f"power of this design, from the variance in {folder / 'table.csv'}")
    for r in plan.itertuples():
        table.add_row(r.arm, display_task(r.task), signed(r.observed), f"{r.seeds} x {r.problems}",
                      detectable_text(r.detectable),
                      "more than 1000" if r.seeds_needed != r.seeds_needed else str(int(r.seeds_needed)))
    out.print(table)
    out.print("Detectable Δ: the smallest true difference the report's test (5% level, before the Holm "
              "correction) finds with 80% probability; seeds: at the same number of problems.", highlight=False)


def _gib(value: float) -> str:
    return f"{value:.1f} GiB" if value >= 1 else f"{value * 1024:.1f} MiB"


def _params(count: int) -> str:
    return f"{count / 1e9:.2f} B" if count >= 1e8 else f"{count / 1e6:.2f} M"


def _tokens(count: int) -> str:
    return f"{count / 1e9:.2f} B" if count >= 1e8 else f"{count / 1e6:.2f} M" if count >= 1e5 else str(count)


def _print_estimate_basis(first: Any) -> None:
    from brts.models.estimate import estimate

    est = estimate(first.config, first.resources)
    sizes = ", ".join(f"{role} {_params(n)} parameters" if n else f"{role} size unknown"
                      for role, n in (("student", est.student_params), ("teacher", est.teacher_params)))
    parts = ", ".join(f"{k} {_gib(v)}" for k, v in est.memory_gib.items() if k != "total")
    rollout = first.config.rollout
    vllm = (f"; plus two vLLM engines at {rollout.vllm_memory_fraction:.0%} of the GPU each"
            if rollout.backend == "vllm" else "")
    out.print(f"Estimates from the spec alone, nothing downloaded ({sizes}). Teacher tokens: upper bound, every "
              "sample at the length limit and every prompt retried in Tier 2. GPU memory per GPU under data "
              f"parallelism ({parts or 'n/a'}): float32 student with AdamW at 16 bytes/parameter, teacher "
              "in the compute dtype, and the largest phase of a step (sampling, alignment scoring, update with "
              f"log-probs streamed {first.config.train.logprob_chunk} positions at a time){vllm}; a run fits a "
              "GPU when that total fits beside the vLLM engines (see brts/models/estimate.py).", highlight=False)


@app.command("run")
def exp_run(
    name: str,
    set_: SetOpt = None,
    workers: Annotated[int | None, typer.Option(min=1, help="parallel runs (default: the spec's `workers`)")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="run failed runs again")] = False,
    store: StoreOpt = None,
    executor: Annotated[Executor, typer.Option(
        help="where runs execute: local processes, Slurm job arrays (submitit) or a Ray cluster ($RAY_ADDRESS)",
    )] = Executor.local,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would run or be submitted; run nothing")]
    = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="leave a run another process is executing to it "
                                                            "(default: wait for it and use its result)")] = False,
    quiet: QuietOpt = False,
    json_progress: JsonProgressOpt = False,
) -> None:
    """Run every arm x seed of an experiment; finished runs are reused, interrupted ones resume, and a run another
    process is executing is waited for. Progress: bars in a terminal, else a plain line per stage change and at
    most every 30 s (--quiet: none; --json-progress)."""
    from brts import progress

    progress.configure(quiet, json_progress)
    os.environ.setdefault("TQDM_DISABLE", "1")  # library bars (lm-eval, datasets) would tear our progress display
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the workers and exits as Ctrl-C does
    from brts.report.overview import experiment_table
    from brts.runs.experiment import run_experiment
    from brts.runs.observer import ProgressObserver
    from brts.store import RunStore

    with user_errors():
        spec = load_experiment(name, set_)
        runs = RunStore(store_root(store))
        if dry_run:
            _dry_run(spec, runs, executor, workers or spec.workers, retry_failed)
            return
        try:
            with progress.current() as shown:
                result = run_experiment(spec, runs, workers=workers, retry_failed=retry_failed,
                                        executor=executor.value, observer=ProgressObserver(shown), wait=not no_wait)
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume where it stopped", code=130)
    err.print(result.counts_line(), highlight=False)
    for o in result.failures:
        stage = " in evaluation (checkpoint kept; the next run evaluates again)" \
            if o.record.get("failed_stage") == "eval" else ""
        err.print(alert(o.action, f"{o.planned.arm} seed {o.planned.seed} ({o.planned.run_id}){stage}: "
                                  f"{o.record.get('error')}"), highlight=False)
    for o in result.running_elsewhere:
        holder = f" (pid {o.record['pid']})" if "pid" in o.record else ""
        host = (o.record.get("environment") or {}).get("host")
        err.print(f"running in another process{holder}{f' on {host}' if host else ''}: {o.planned.arm} seed "
                  f"{o.planned.seed} ({o.planned.run_id}); its row fills in when it finishes (brts exp status "
                  f"{spec.name})", highlight=False)
    for role, record in result.references.items():
        if record.get("status") == "failed":
            err.print(alert("failed", f"reference {role}: {record.get('error')}"), highlight=False)
        elif record.get("status") == "running":
            err.print(f"running in another process: reference {role}", highlight=False)
    arms = [a.name for a in spec.arms]
    if spec.eval.final:
        table = experiment_table(runs.root, spec.name, [runs.run(p).path for p in result.planned], arms)
        out.print(_summary(table, arms, list(spec.eval.tasks), spec.name))
    else:
        out.print(f"{spec.name}: no final evaluation (eval.final: false); the runs' validation curves are in "
                  "their metrics.jsonl (brts report draws them)", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


REFERENCE_LABELS = {"teacher": "teacher (reference)", "student_start": "student at start (reference)"}


def _summary(table: Any, arms: list[str], tasks: list[str], title: str) -> Table:
    """Reference rows (teacher, starting student), then arms; tasks as columns; `mean ± sd` over seeds."""
    from brts.spec.catalog import display_name

    out_table = Table(title=title, caption="final avg@k in percent, mean ± sd over training seeds (n = seeds)")
    out_table.add_column("arm")
    for task in tasks:
        out_table.add_column(display_name(task), justify="right")
    out_table.add_column("n", justify="right")
    cells = {(r.kind, r.arm, r.task): r for r in table.itertuples()}
    for role, label in REFERENCE_LABELS.items():
        row = [cells.get(("reference", role, t)) for t in tasks]
        out_table.add_row(Text(label, style="dim"), *[Text(f"{r.avg:.1f}", style="dim") if r else "–" for r in row],
                          "")
    for arm in arms:  # every arm, one without a finished run yet (failed, running elsewhere) as dashes
        row = [cells.get(("arm", arm, t)) for t in tasks]
        shown = [f"{r.avg:.1f}" + (f" ± {r.seed_sd:.1f}" if r.seeds > 1 else "") if r else "–" for r in row]
        out_table.add_row(arm, *shown, str(max((r.seeds for r in row if r), default=0)))
    return out_table


def _dry_run(spec: Any, runs: Any, executor: Executor, workers: int, retry_failed: bool) -> None:
    """What `exp run` would execute or submit, and nothing else."""
    from brts.runs.cluster import ray_options, submitit_plan
    from brts.runs.experiment import pending
    from brts.runs.plan import plan

    planned = plan(spec)
    todo = pending(planned, runs, retry_failed)
    out.print(f"{len(planned)} planned, {len(planned) - len(todo)} finished or failed (skipped), {len(todo)} to run "
              f"with --executor {executor.value} (store {runs.root})", highlight=False)
    if executor is Executor.slurm:
        for array in submitit_plan(todo, workers):
            out.print(f"job array of {len(array['runs'])}: submitit parameters "
                      f"{json.dumps(array['parameters'], sort_keys=True)}", highlight=False)
            for run in array["runs"]:
                out.print(f"  {run['run_id']}  {run['arm']} seed {run['seed']}  ({run['processes']} training "
                          "process(es))", highlight=False)
        return
    for p in todo:
        where = (f"ray task {json.dumps(ray_options(p.resources), sort_keys=True)}" if executor is Executor.ray
                 else f"local worker (of {workers})")
        out.print(f"  {p.run_id}  {p.arm} seed {p.seed}: {where}, {p.resources.world_size} training process(es)",
                  highlight=False)


@app.command("status")
def exp_status(name: str, set_: SetOpt = None, store: StoreOpt = None) -> None:
    """Show each planned run's status, progress and final accuracy; a run with a damaged file is `damaged`, the
    file named (`brts store check` lists every damage, `exp run` redoes what it touched)."""
    from brts.runs.integrity import untrusted
    from brts.runs.plan import plan
    from brts.spec.catalog import display_name
    from brts.store import RunStore
    from brts.store.files import read_jsonl_intact

    with user_errors():
        spec = load_experiment(name, set_)
        planned = plan(spec)

    runs = RunStore(store_root(store))
    tasks = spec.eval.tasks
    table = Table("run id", "arm", "seed", "status", "step", *map(display_name, tasks), "error", title=spec.name)
    for p in planned:
        folder = runs.run(p)
        record = folder.record()
        evals = record.get("eval", {}) if isinstance(record.get("eval"), dict) else {}
        logged = read_jsonl_intact(folder.metrics_path)[0]  # up to a damaged line, if any
        step = int(logged[-1]["step"]) if logged else 0
        status, error = folder.live_status(record), record.get("error") or ""
        status += " (eval)" if record.get("failed_stage") == "eval" else ""
        damages = untrusted(folder) if folder.path.is_dir() and status not in ("running", "interrupted") else []
        if damages:
            status, error = "damaged", str(damages[0])
        elif status in ("running", "interrupted") and (holder := folder.holder()) is not None:
            error = (f"its process ({holder}) is gone; `brts exp run` resumes it" if status == "interrupted"
                     else f"{holder}")
        elif status == "interrupted":
            error = "its process is gone; `brts exp run` resumes it"
        table.add_row(p.run_id, p.arm, str(p.seed), status, f"{step}/{p.config.train.steps}",
                      *[f"{evals[t]:.1f}" if t in evals else "" for t in tasks], error[:160],
                      )
    out.print(table)

