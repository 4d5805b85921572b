"""`brts pool show|clear|fill`: the run store's shared teacher sample pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from brts.cli.common import (
    JsonProgressOpt,
    QuietOpt,
    SetOpt,
    StoreOpt,
    fail,
    load_experiment,
    out,
    store_root,
    user_errors,
)

app = typer.Typer(help="The shared teacher sample pool: show, fill for an experiment, clear.", no_args_is_help=True)

PoolPathOpt = Annotated[
    Path | None, typer.Option("--path", help="pool file (default: <store>/.pool/teacher-samples.sqlite)",
                              show_default=False)
]


def _pool_file(store: Path | None, path: Path | None) -> Path:
    from brts.spec import PoolSpec
    from brts.store import RunStore

    return path or RunStore(store_root(store)).pool_file(PoolSpec())


@app.command("show")
def pool_show(store: StoreOpt = None, path: PoolPathOpt = None) -> None:
    """Size of the teacher sample pool: samples, tokens, bytes on disk, samples per teacher. A damaged pool is one
    line (exit 1) saying how to move it aside."""
    from brts.errors import UserError
    from brts.rollout.pool import PoolDamaged, SamplePool

    file = _pool_file(store, path)
    if not file.exists():
        out.print(f"no pool at {file} (it is created by the first run that draws teacher samples)", highlight=False)
        return
    try:
        pool = SamplePool(file, repair=False, read_only=True)
        try:
            stats = pool.stats()
        finally:
            pool.close()
    except PoolDamaged as exc:
        fail(f"{exc}; `brts pool clear` moves it aside (runs then start a new pool)", code=1)
    except UserError as exc:
        fail(str(exc))
    table = Table("pool", "samples", "tokens", "on disk", title="teacher sample pool")
    table.add_row(str(stats.path), str(stats.samples), str(stats.tokens), f"{stats.file_bytes / 2**20:.1f} MiB")
    out.print(table)
    for teacher, count in sorted(stats.teachers.items()):
        out.print(f"  teacher {teacher}: {count} samples", highlight=False)


@app.command("clear")
def pool_clear(
    store: StoreOpt = None, path: PoolPathOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False,
) -> None:
    """Delete every sample of the pool (runs then draw their teacher samples again, identically); a damaged pool
    file is moved aside instead (`<pool folder>/.quarantine/`)."""
    from brts.rollout.pool import clear_file

    file = _pool_file(store, path)
    if not file.exists():
        out.print(f"no pool at {file}", highlight=False)
        return
    if not yes and not typer.confirm(f"delete every teacher sample in {file}?"):
        raise typer.Exit(1)
    deleted, moved = clear_file(file)
    if moved is not None:
        out.print(f"{file} was damaged: moved aside to {moved}; runs start a new, empty pool", highlight=False)
    else:
        out.print(f"deleted {deleted} samples from {file}", highlight=False)


@app.command("fill")
def pool_fill(name: str, set_: SetOpt = None, store: StoreOpt = None, quiet: QuietOpt = False,
              json_progress: JsonProgressOpt = False) -> None:
    """Draw every teacher sample an experiment's runs will use into its pool, in large batches, before
    training; print the teacher tokens its runs need with and without the pool."""
    from brts import progress

    progress.configure(quiet, json_progress)
    from brts.runs.experiment import prefill_experiment
    from brts.runs.observer import ProgressObserver
    from brts.store import RunStore

    with user_errors():
        spec = load_experiment(name, set_)
        try:
            with progress.current() as shown:
                counted = prefill_experiment(spec, RunStore(store_root(store)), ProgressObserver(shown))
        except KeyboardInterrupt:
            fail("interrupted; the samples drawn so far are kept: run the same command again to finish", code=130)
    out.print(f"{counted.samples} distinct teacher samples; teacher tokens the runs need: "
              f"{counted.with_pool} with the pool, {counted.without_pool} without", highlight=False)
