"""What every `brts` command shares: the consoles, the one-line user error, the store and spec options."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from brts.spec import ExperimentSpec, SpecError, load_spec

out = Console()
err = Console(stderr=True)

StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="run store folder (default: $BRTS_STORE or ./runs)", show_default=False)
]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a spec field: dotted.key=value")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="no progress display (errors and results still print)")]
JsonProgressOpt = Annotated[bool, typer.Option(
    "--json-progress", help="progress as one JSON object a line on stdout, for tools")]


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


def store_root(store: Path | None) -> Path:
    return store or Path(os.environ.get("BRTS_STORE", "runs"))


def load_experiment(name: str, overrides: list[str] | None) -> ExperimentSpec:
    """The spec, its warnings (brts.spec.spec_warnings) printed to stderr, one line each."""
    from brts.spec import spec_warnings

    spec = load_spec(name, overrides or ())
    for line in spec_warnings(spec):
        err.print(f"warning: {spec.name}: {line}", highlight=False, markup=False, soft_wrap=True)
    return spec


def ensure_models(spec: ExperimentSpec) -> None:
    """Build the built-in models once, in this process, and check the pair and the evaluation settings before
    any worker starts."""
    from brts.evaluation.evaluate import check_settings
    from brts.runs.run import preflight

    preflight(spec.models)
    check_settings(spec.eval, task_seed=spec.task.seed)
