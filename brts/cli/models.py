"""`brts models build`: the tiny built-in teacher and student, built once and cached."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from brts.cli.common import out

app = typer.Typer(help="The tiny built-in teacher and student.", no_args_is_help=True)


@app.command("build")
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
