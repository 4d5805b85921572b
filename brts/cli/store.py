"""`brts store check [--repair]`: every damaged or inconsistent artefact of a run store, one line each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brts.cli.common import StoreOpt, out, store_root, user_errors

app = typer.Typer(help="The run store: check every artefact, move damaged ones aside.", no_args_is_help=True)


@app.command("check")
def store_check(
    store: StoreOpt = None,
    repair: Annotated[bool, typer.Option("--repair", help="move what is damaged aside (never deleted), so the next "
                                         "`brts exp run` redoes exactly that work")] = False,
    pool: Annotated[Path | None, typer.Option("--pool", help="the pool file to check (default: the store's own)",
                                              show_default=False)] = None,
) -> None:
    """Check runs, reference models, sweep trials and journals, and the teacher sample pool against their manifests
    and digests: one line per damaged artefact and exit 1, or one line and exit 0 when everything is intact."""
    from brts.ops.store_check import check_store

    root = store_root(store)
    with user_errors():
        result = check_store(root, repair=repair, pool_file=pool)
    for line in result.damaged:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    for line in result.interrupted:
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    for line in result.repaired:
        out.print(f"repaired: {line}", highlight=False, markup=False, soft_wrap=True)
    out.print(result.summary(), highlight=False, markup=False, soft_wrap=True)
    if not result.ok:
        raise typer.Exit(1)
