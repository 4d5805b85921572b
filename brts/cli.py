"""The `brts` command line: parse, call inward, print. User mistakes end in one line and exit status 2."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from brts.spec import ExperimentSpec, SpecError, list_specs, load_spec, resolved_yaml

app = typer.Typer(help="On-policy distillation with Best-of-N teacher rollout selection: run, sweep, report.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
exp_app = typer.Typer(help="Experiments: declarative grids of arms x seeds.", no_args_is_help=True)
models_app = typer.Typer(help="The tiny built-in teacher and student.", no_args_is_help=True)
app.add_typer(exp_app, name="exp")
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="run store folder (default: $BRTS_STORE or ./runs)", show_default=False)
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a spec field: dotted.key=value")]


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line and exit status 2."""
    from brts.models import IncompatibleModelsError, ModelLoadError
    from brts.runs.store import StoreError

    try:
        yield
    except (SpecError, StoreError, ModelLoadError, IncompatibleModelsError) as exc:
        fail(str(exc))


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
    """Print the resolved spec and the planned runs; execute nothing."""
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
    table = Table("run id", "arm", "seed", "status", title=f"{len(planned)} planned runs")
    for p in planned:
        table.add_row(p.run_id, p.arm, str(p.seed), runs.folder(p.experiment, p.run_id).status)
    out.print(table)


@exp_app.command("run")
def exp_run(
    name: str,
    set_: SetOpt = None,
    workers: Annotated[int | None, typer.Option(min=1, help="parallel runs (default: the spec's `workers`)")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="run failed runs again")] = False,
    store: StoreOpt = None,
) -> None:
    """Run every arm x seed of an experiment; finished runs are reused, interrupted ones resume."""
    from brts.runs.executor import execute
    from brts.runs.plan import plan
    from brts.runs.store import RunStore
    from brts.runs.summary import collect, render

    with user_errors():
        spec = _load(name, set_)
        planned = plan(spec)
        runs = RunStore(store_root(store))
        runs.check_writable()
        _ensure_models(spec)
    try:
        outcomes = execute(planned, runs, workers=workers or spec.workers, retry_failed=retry_failed, console=err)
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume where it stopped", code=130)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    err.print(", ".join(f"{v} {k}" for k, v in sorted(counts.items())), highlight=False)
    for o in outcomes:
        if o.action in ("failed", "skipped-failed"):
            err.print(f"[red]{o.action}[/red] {o.planned.arm} seed {o.planned.seed} ({o.planned.run_id}): "
                      f"{o.record.get('error')}", highlight=False)
    frame = collect(planned, runs)
    out.print(render(frame, [a.name for a in spec.arms], list(spec.eval.splits), title=spec.name))
    if any(o.action in ("failed", "skipped-failed", "locked") for o in outcomes):
        raise typer.Exit(1)


@exp_app.command("status")
def exp_status(name: str, set_: SetOpt = None, store: StoreOpt = None) -> None:
    """Show each planned run's status, progress and final accuracy."""
    from brts.runs.plan import plan
    from brts.runs.store import RunStore

    with user_errors():
        spec = _load(name, set_)
        planned = plan(spec)
    runs = RunStore(store_root(store))
    table = Table("run id", "arm", "seed", "status", "step", *spec.eval.splits, "error", title=spec.name)
    for p in planned:
        record = runs.folder(p.experiment, p.run_id).record()
        evals = record.get("eval", {})
        step = _last_step(runs.folder(p.experiment, p.run_id).metrics_path)
        table.add_row(p.run_id, p.arm, str(p.seed), record.get("status", "planned"), f"{step}/{p.config.train.steps}",
                      *[f"{100 * evals[s]:.1f}" if s in evals else "" for s in spec.eval.splits],
                      (record.get("error") or "")[:80])
    out.print(table)


def _last_step(path: Path) -> int:
    if not path.exists():
        return 0
    lines = path.read_text().splitlines()
    return int(json.loads(lines[-1])["step"]) if lines else 0


def _ensure_models(spec: ExperimentSpec) -> None:
    """Build the built-in models once, in this process, and check the pair before any worker starts."""
    from brts.runs.run import preflight

    preflight(spec.models)


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
