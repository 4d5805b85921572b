"""The `brts` command line: parse, call inward, print. User mistakes end in one line and exit status 2."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from brts.spec import ExperimentSpec, SpecError, list_specs, load_spec, resolved_yaml

app = typer.Typer(help="On-policy distillation with Best-of-N teacher rollout selection: run, evaluate, report.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
exp_app = typer.Typer(help="Experiments: declarative grids of arms x seeds.", no_args_is_help=True)
models_app = typer.Typer(help="The tiny built-in teacher and student.", no_args_is_help=True)
pool_app = typer.Typer(help="The shared teacher sample pool: show, fill for an experiment, clear.", no_args_is_help=True)
sweep_app = typer.Typer(help="Optuna sweeps over the method's settings (N, lambda): resumable, shareable.",
                        no_args_is_help=True)
app.add_typer(exp_app, name="exp")
app.add_typer(sweep_app, name="sweep")
app.add_typer(models_app, name="models")
app.add_typer(pool_app, name="pool")

out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="run store folder (default: $BRTS_STORE or ./runs)", show_default=False)
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a spec field: dotted.key=value")]
PoolPathOpt = Annotated[
    Path | None, typer.Option("--path", help="pool file (default: <store>/.pool/teacher-samples.sqlite)",
                              show_default=False)
]


class Executor(str, Enum):
    local = "local"
    slurm = "slurm"
    ray = "ray"
StorageOpt = Annotated[str | None, typer.Option(
    "--storage", help="Optuna storage: RDB URL, redis://, or journal file (default: <store>/sweeps/NAME/study.log)",
    show_default=False)]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line and exit status 2."""
    from brts.evaluation.hooks import TaskDataError
    from brts.evaluation.runner import EvaluationError
    from brts.grading import GraderTimeoutStorm
    from brts.models import IncompatibleModelsError, ModelLoadError
    from brts.runs.store import StoreError
    from brts.sweep.study import SweepError

    try:
        yield
    except (SpecError, StoreError, ModelLoadError, IncompatibleModelsError, EvaluationError, TaskDataError,
            GraderTimeoutStorm, SweepError) as exc:
        fail(str(exc))


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def store_root(store: Path | None) -> Path:
    return store or Path(os.environ.get("BRTS_STORE", "runs"))


def _load(name: str, overrides: list[str] | None) -> ExperimentSpec:
    return load_spec(name, overrides or ())


@exp_app.command("list")
def exp_list(store: StoreOpt = None) -> None:
    """List the experiment specs found, with how many of their runs are finished in the store."""
    from brts.runs.plan import plan
    from brts.runs.store import RunStore

    table = Table("experiment", "spec", "runs", "finished")
    runs = RunStore(store_root(store))
    for name, path in list_specs():
        try:
            planned = plan(load_spec(str(path)))
        except SpecError as exc:
            table.add_row(name, str(path), "[red]invalid[/red]", str(exc)[:60])
            continue
        done = sum(runs.folder(p.experiment, p.run_id).status == "finished" for p in planned)
        table.add_row(name, str(path), str(len(planned)), str(done))
    out.print(table)


@exp_app.command("show")
def exp_show(name: str, set_: SetOpt = None, store: StoreOpt = None) -> None:
    """Print the resolved spec and the planned runs with cost estimates; execute and download nothing."""
    from brts.estimate import estimate
    from brts.runs.plan import plan
    from brts.runs.store import RunStore

    with user_errors():
        spec = _load(name, set_)
        planned = plan(spec)
    out.print(resolved_yaml(spec), highlight=False, markup=False)
    arms = Table("arm", "preset", "resolved method (fields that differ from the MethodConfig defaults)",
                 title="arms")
    for arm in spec.arms:
        method = spec.method_for(arm)
        changed = method.model_dump(exclude_defaults=True)
        arms.add_row(arm.name, arm.preset, ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) or "(defaults)")
    out.print(arms)
    runs = RunStore(store_root(store))
    table = Table("run id", "arm", "seed", "status", "teacher tokens ≤", "GPU memory / GPU",
                  title=f"{len(planned)} planned runs ({spec.resources.world_size} training process(es) each)")
    for p in planned:
        est = estimate(p.config, p.resources)
        memory = _gib(est.memory_gib["total"]) if est.memory_gib else "unknown model"
        table.add_row(p.run_id, p.arm, str(p.seed), runs.folder(p.experiment, p.run_id).status,
                      _tokens(est.teacher_tokens), memory)
    out.print(table)
    _print_estimate_basis(planned[0])


def _gib(value: float) -> str:
    return f"{value:.1f} GiB" if value >= 1 else f"{value * 1024:.1f} MiB"


def _params(count: int) -> str:
    return f"{count / 1e9:.2f} B" if count >= 1e8 else f"{count / 1e6:.2f} M"


def _tokens(count: int) -> str:
    return f"{count / 1e9:.2f} B" if count >= 1e8 else f"{count / 1e6:.2f} M" if count >= 1e5 else str(count)


def _print_estimate_basis(first: Any) -> None:
    from brts.estimate import estimate

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
              "in the compute dtype, full-vocabulary log-probs of one micro-batch, bf16 layer activations"
              f"{vllm} (see brts/estimate.py).", highlight=False)


@exp_app.command("run")
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
) -> None:
    """Run every arm x seed of an experiment; finished runs are reused, interrupted ones resume."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # library bars (lm-eval, datasets) would tear our progress display
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the workers and exits as Ctrl-C does
    from brts.runs.cluster import ClusterUnavailable
    from brts.runs.executor import execute
    from brts.runs.plan import plan
    from brts.runs.reference import evaluate_references
    from brts.runs.store import RunStore
    from brts.runs.summary import collect, render

    with user_errors():
        spec = _load(name, set_)
        planned = plan(spec)
        runs = RunStore(store_root(store))
        if dry_run:
            _dry_run(planned, runs, executor, workers or spec.workers, retry_failed)
            return
        runs.check_writable()
        _ensure_models(spec)
    try:
        todo = [p for p in planned if runs.folder(p.experiment, p.run_id).status != "finished"]
        if spec.pool.enabled and spec.pool.prefill and todo:
            _prefill(spec, todo, runs.root)
        outcomes = execute(planned, runs, workers=workers or spec.workers, retry_failed=retry_failed, console=err,
                           executor=executor.value)
    except ClusterUnavailable as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume where it stopped", code=130)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    err.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())), highlight=False)
    for o in outcomes:
        if o.action in ("failed", "skipped-failed"):
            stage = " in evaluation (checkpoint kept; the next run evaluates again)" \
                if o.record.get("failed_stage") == "eval" else ""
            err.print(f"[red]{o.action}[/red] {o.planned.arm} seed {o.planned.seed} ({o.planned.run_id}){stage}: "
                      f"{o.record.get('error')}", highlight=False)
    try:
        references = evaluate_references(spec, runs.root, log=lambda line: err.print(line, highlight=False))
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume where it stopped", code=130)
    for role, record in references.items():
        if record.get("status") == "failed":
            err.print(f"[red]failed[/red] reference {role}: {record.get('error')}", highlight=False)
    frame = collect(planned, runs)
    out.print(render(frame, [a.name for a in spec.arms], list(spec.eval.tasks), title=spec.name,
                     references=references))
    failed_refs = any(r.get("status") == "failed" for r in references.values())
    if failed_refs or any(o.action in ("failed", "skipped-failed", "locked") for o in outcomes):
        raise typer.Exit(1)


@exp_app.command("status")
def exp_status(name: str, set_: SetOpt = None, store: StoreOpt = None) -> None:
    """Show each planned run's status, progress and final accuracy."""
    from brts.runs.plan import plan
    from brts.runs.store import RunStore

    with user_errors():
        spec = _load(name, set_)
        planned = plan(spec)
    from brts.evaluation.catalog import display_name

    runs = RunStore(store_root(store))
    tasks = spec.eval.tasks
    table = Table("run id", "arm", "seed", "status", "step", *map(display_name, tasks), "error", title=spec.name)
    for p in planned:
        record = runs.folder(p.experiment, p.run_id).record()
        evals = record.get("eval", {})
        step = _last_step(runs.folder(p.experiment, p.run_id).metrics_path)
        status = record.get("status", "planned")
        status += " (eval)" if record.get("failed_stage") == "eval" else ""
        table.add_row(p.run_id, p.arm, str(p.seed), status, f"{step}/{p.config.train.steps}",
                      *[f"{evals[t]:.1f}" if t in evals else "" for t in tasks],
                      (record.get("error") or "")[:80])
    out.print(table)


TasksOpt = Annotated[list[str] | None, typer.Option(
    "--tasks", help="lm-eval task names, comma-separated or repeated (brts_aime24, brts_synthetic_easy, gsm8k, ...)")]


@app.command("eval")
def eval_command(
    target: Annotated[str, typer.Argument(help="a model folder, an HF model id, builtin:teacher|student, or a run "
                                               "(folder, or id in the store)")],
    tasks: TasksOpt = None,
    k: Annotated[int | None, typer.Option(help="samples per problem")] = None,
    problems: Annotated[int | None, typer.Option(help="problems per task (default: all)")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    top_p: Annotated[float | None, typer.Option("--top-p")] = None,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens")] = None,
    seed: Annotated[int | None, typer.Option(help="lm-eval seed")] = None,
    backend: Annotated[str | None, typer.Option(help="hf, vllm or auto")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="folder of <task>.jsonl benchmark files")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="results folder (default: ./evals/<name>)")] = None,
    store: StoreOpt = None,
) -> None:
    """Evaluate a model through lm-eval and print avg@k, pass@k and maj@k per task (defaults: a run's own
    evaluation settings, else the spec defaults). Results are cached in the output folder."""
    from pydantic import ValidationError

    from brts.evaluation.catalog import display_name
    from brts.evaluation.evaluate import check_settings, evaluate_model
    from brts.evaluation.spec import EvalSpec
    from brts.evaluation.target import resolve_target

    given = {"k": k, "problems": problems, "temperature": temperature, "top_p": top_p,
             "max_new_tokens": max_new_tokens, "seed": seed, "backend": backend, "batch_size": batch_size,
             "data_dir": data_dir}
    overrides: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    if tasks:
        overrides["tasks"] = [t.strip() for item in tasks for t in item.split(",") if t.strip()]
    with user_errors():
        found = resolve_target(target, store_root(store))
        base = {key: value for key, value in found.base.items() if key not in overrides}
        try:
            spec = EvalSpec.model_validate({**base, **overrides})
        except ValidationError as exc:
            error = exc.errors()[0]
            option = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "options"
            fail(f"{option}: {error['msg'].removeprefix('Value error, ')}")
        check_settings(spec, found.task_seed)
        folder = out_dir or Path("evals") / found.name
        evaluation = evaluate_model(found.model, spec, folder, task_seed=found.task_seed,
                                    log=lambda line: err.print(line, highlight=False))
    table = Table("task", title=f"{found.name}: percent")
    for column in (f"avg@{spec.k}", f"pass@{spec.k}", f"maj@{spec.k}", "problems", "samples"):
        table.add_column(column, justify="right")
    for task in spec.tasks:
        entry = evaluation.tasks[task]
        cells = [f"{entry[m]:.1f}" if entry.get(m) is not None else "–" for m in ("avg@k", "pass@k", "maj@k")]
        table.add_row(display_name(task), *cells, str(entry["problems"]), str(entry["k"]))
    out.print(table)
    cached = len(spec.tasks) - len(evaluation.evaluated)
    err.print(f"{len(evaluation.evaluated)} evaluated, {cached} cached; results in {evaluation.folder}; "
              f"reproduce with: sh {evaluation.folder / 'lm_eval_command.txt'}", highlight=False, soft_wrap=True)


def _dry_run(planned: list[Any], runs: Any, executor: Executor, workers: int, retry_failed: bool) -> None:
    """What `exp run` would execute or submit, and nothing else."""
    from brts.runs.cluster import ray_options, submitit_plan
    from brts.runs.executor import skipped

    todo = [p for p in planned if skipped(p, runs.folder(p.experiment, p.run_id).record(), retry_failed) is None]
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


def _last_step(path: Path) -> int:
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    return int(json.loads(lines[-1])["step"]) if lines else 0


@sweep_app.command("run")
def sweep_run(
    name: str,
    set_: SetOpt = None,
    trials: Annotated[int | None, typer.Option(min=1, help="completed trials to reach (default: the spec's)")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="parallel worker processes (default: the spec's)")] = None,
    storage: StorageOpt = None,
    store: StoreOpt = None,
) -> None:
    """Run trials until the study holds the requested completed ones; kill and rerun it at any point to resume."""
    from brts.runs.store import RunStore
    from brts.sweep.runner import run_sweep
    from brts.sweep.spec import load_sweep
    from brts.sweep.study import load_existing, storage_url

    with user_errors():
        sweep = load_sweep(name, set_ or (), fields={"trials": trials, "workers": workers, "storage": storage})
        root = store_root(store)
        RunStore(root).check_writable()
        url = storage_url(sweep, root)
        _ensure_models(sweep.experiment)
        try:
            result = run_sweep(sweep, root, url, trials=sweep.spec.trials, workers=sweep.spec.workers, console=err)
        except KeyboardInterrupt:
            fail("interrupted; run the same command again to resume (the interrupted trial is retried)", code=130)
        _print_sweep_status(sweep, load_existing(sweep, url), url)
    minutes, seconds = divmod(round(result.seconds), 60)
    err.print(f"{result.done}/{result.target} completed trials; this invocation took {minutes} min {seconds} s",
              highlight=False)
    if result.reason == "failures":
        fail("stopped: as many trials failed as the budget holds; see the errors above", code=1)
    if result.reason == "grid" and result.done < result.target:
        err.print("the grid is exhausted (failed points are not retried)", highlight=False)


@sweep_app.command("status")
def sweep_status(name: str, set_: SetOpt = None, storage: StorageOpt = None, store: StoreOpt = None) -> None:
    """Trials so far, the best setting with its spread over seeds (or the Pareto front), running and failed trials."""
    from brts.sweep.spec import load_sweep
    from brts.sweep.study import load_existing, storage_url

    with user_errors():
        sweep = load_sweep(name, set_ or (), fields={"storage": storage})
        url = storage_url(sweep, store_root(store))
        study = load_existing(sweep, url)
    _print_sweep_status(sweep, study, url)


def _print_sweep_status(sweep: Any, study: Any, url: str) -> None:
    from brts.sweep.status import status_report

    for part in status_report(sweep, study, url):
        out.print(part, highlight=False, markup=False)


@sweep_app.command("show")
def sweep_show(name: str, set_: SetOpt = None, storage: StorageOpt = None, store: StoreOpt = None) -> None:
    """Print the resolved sweep spec, its search space, objectives and storage; execute and create nothing."""
    from brts.sweep.spec import load_sweep
    from brts.sweep.status import space_table
    from brts.sweep.study import storage_url, sweep_dir

    with user_errors():
        sweep = load_sweep(name, set_ or (), fields={"storage": storage})
    root = store_root(store)
    out.print(resolved_yaml(sweep.spec), highlight=False, markup=False)
    out.print(space_table(sweep))
    spec = sweep.spec
    lines = [
        f"base: experiment {sweep.experiment.name!r}, arm {sweep.arm.name!r} (preset {sweep.arm.preset!r}), "
        f"{sweep.experiment.train.steps} steps, seeds {list(sweep.seeds)} per trial",
        "objectives: " + "; ".join(f"{o.direction} {o.metric} ({o.reduce})" for o in sweep.objectives),
        f"sampler: {spec.sampler.name} (seed {spec.sampler.seed})"
        + (f", grid of {sweep.grid_size()} points" if spec.sampler.name == "grid" else ""),
        f"pruner: {spec.pruner.name}",
        f"budget: {spec.trials} completed trials, {spec.workers} worker(s)",
        f"study: {sweep.name!r} in {storage_url(sweep, root)}",
        f"runs: {sweep_dir(root, sweep.name)}/<run_id>/ (finished runs anywhere in {root} are reused)",
    ]
    out.print("\n".join(lines), highlight=False, markup=False)


def _ensure_models(spec: ExperimentSpec) -> None:
    """Build the built-in models once, in this process, and check the pair and the evaluation settings before
    any worker starts."""
    from brts.evaluation.evaluate import check_settings
    from brts.runs.run import preflight

    preflight(spec.models)
    check_settings(spec.eval, task_seed=spec.task.seed)


@app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="experiment or sweep name (as in the run store)")],
    store: StoreOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output folder (default: reports/NAME)")] = None,
    baseline: Annotated[str, typer.Option(help="arm the others are compared with")] = "opd",
    formats: Annotated[str, typer.Option("--format", help="comma-separated: md, html")] = "md,html",
) -> None:
    """Tables, figures and tidy data of an experiment or a sweep, from its run folders only."""
    from brts.report import ReportError, build_report
    from brts.report.build import parse_formats

    try:
        chosen = parse_formats(formats)
        with err.status("report") as status:  # transient: gone before the summary or the error line
            result = build_report(name, store_root(store), out_dir or Path("reports") / name, baseline=baseline,
                                  formats=chosen, progress=lambda msg: status.update(msg))
    except ReportError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted; nothing was written (a previous report in the folder is unchanged)", code=130)
    for line in result.summary:
        out.print(f"- {line}", highlight=False, markup=False, soft_wrap=True)
    pages = [str(result.out / f"index.{f}") for f in chosen]
    out.print(f"{result.kind} report written in {result.seconds:.1f} s: {', '.join(pages)}", highlight=False,
              soft_wrap=True)


def _prefill(spec: ExperimentSpec, planned: list[Any], root: Path) -> Any:
    """Draw every teacher sample of `planned` into the experiment's pool, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from brts.runs.prefill import plan_demand
    from brts.runs.run import open_pool

    pool = open_pool(spec.pool, root)
    columns = (TextColumn("pre-filling teacher samples (steps)"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err) as bar:
            task = bar.add_task("fill", total=None)
            demand = plan_demand(planned, pool, progress=lambda done, total: bar.update(task, completed=done, total=total))
    finally:
        if pool is not None:
            pool.close()
    return demand


def _pool_file(store: Path | None, path: Path | None) -> Path:
    from brts.runs.run import POOL_FILE

    return path or store_root(store) / POOL_FILE


@pool_app.command("show")
def pool_show(store: StoreOpt = None, path: PoolPathOpt = None) -> None:
    """Size of the teacher sample pool: samples, tokens, bytes on disk, samples per teacher."""
    from brts.rollout.pool import SamplePool

    file = _pool_file(store, path)
    if not file.exists():
        out.print(f"no pool at {file} (it is created by the first run that draws teacher samples)", highlight=False)
        return
    stats = SamplePool(file).stats()
    table = Table("pool", "samples", "tokens", "on disk", title="teacher sample pool")
    table.add_row(str(stats.path), str(stats.samples), str(stats.tokens), f"{stats.file_bytes / 2**20:.1f} MiB")
    out.print(table)
    for teacher, count in sorted(stats.teachers.items()):
        out.print(f"  teacher {teacher}: {count} samples", highlight=False)


@pool_app.command("clear")
def pool_clear(
    store: StoreOpt = None, path: PoolPathOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Delete every sample of the pool (runs then draw their teacher samples again, identically)."""
    from brts.rollout.pool import SamplePool

    file = _pool_file(store, path)
    if not file.exists():
        out.print(f"no pool at {file}", highlight=False)
        return
    if not yes and not typer.confirm(f"delete every teacher sample in {file}?"):
        raise typer.Exit(1)
    out.print(f"deleted {SamplePool(file).clear()} samples from {file}", highlight=False)


@pool_app.command("fill")
def pool_fill(name: str, set_: SetOpt = None, store: StoreOpt = None) -> None:
    """Draw every teacher sample an experiment's runs will use into its pool, in large batches, before
    training; print the teacher tokens its runs need with and without the pool."""
    from brts.runs.plan import plan
    from brts.runs.prefill import totals
    from brts.runs.store import RunStore

    with user_errors():
        spec = _load(name, set_)
        if not spec.pool.enabled:
            fail(f"{name}: pool.enabled is false; set pool.enabled: true (or --set pool.enabled=true) to fill it")
        planned = plan(spec)
        runs = RunStore(store_root(store))
        runs.check_writable()
        _ensure_models(spec)
    try:
        counted = totals(_prefill(spec, planned, runs.root))
    except KeyboardInterrupt:
        fail("interrupted; the samples drawn so far are kept: run the same command again to finish", code=130)
    out.print(f"{counted.samples} distinct teacher samples; teacher tokens the runs need: "
              f"{counted.with_pool} with the pool, {counted.without_pool} without", highlight=False)


@app.command("bench")
def bench(
    set_: SetOpt = None,
    steps: Annotated[int, typer.Option(min=1, help="timed steps per configuration")] = 15,
    count_steps: Annotated[int | None, typer.Option(min=1, help="training steps the token count covers "
                                                     "(default: the grid's)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write every figure to this JSON file")] = None,
) -> None:
    """Step times (opd, brts at N = 1, 2, 4, 8, pool cold and warm), teacher tokens of the default grid plus an
    N-sweep with and without the pool, and generation tokens/s per backend: one table."""
    import dataclasses

    from brts.bench import render, run_bench

    with user_errors():
        load_spec("ablation-grid", set_ or ())  # a bad --set fails here, before any work
        result = run_bench(set_ or (), steps=steps,
                           count_overrides=[f"train.steps={count_steps}"] if count_steps else (),
                           say=lambda line: err.print(line, highlight=False))
    out.print(render(result))
    if json_out is not None:
        json_out.write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")


@models_app.command("build")
def models_build(
    seed: Annotated[int, typer.Option(help="build seed")] = 0,
    cache: Annotated[Path | None, typer.Option(help="cache folder (default: $BRTS_CACHE or ~/.cache/brts)")] = None,
) -> None:
    """Build the tokenizer, teacher and student (cached) and print their measured accuracies."""
    from brts.zoo import build_default_models, default_cache_root

    built = build_default_models(cache or default_cache_root(), seed=seed, progress=True)
    table = Table("model", "setting", "accuracy", title="built-in models")
    for key, acc in built.accuracies.items():
        model, _, setting = key.partition("/")
        table.add_row(model, setting, f"{100 * acc:.1f}")
    out.print(table)
    out.print(f"teacher: {built.teacher_dir}\nstudent: {built.student_dir}", highlight=False)


def main(argv: list[str] | None = None) -> Any:
    return app(argv, standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
