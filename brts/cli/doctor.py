"""`brts doctor`: what this machine can do (torch, devices, vLLM, lm-eval, memory, disk, caches, browser,
clusters, trackers), one line each with the command that fixes what is missing."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from brts.cli.common import UncheckedStoreOpt, out, store_path

STYLE = {"ok": "green", "missing": "yellow", "fail": "bold red"}


def doctor(
    store: UncheckedStoreOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="print the checks as JSON instead of lines")] = False,
) -> None:
    """Say what this machine can do for brts, one line per check: ok, missing (with the command that installs
    it) or fail. Exit status 1 when something brts needs is broken (a `fail` line); missing optional parts
    (vLLM, a GPU, Chromium, Slurm, Ray, trackers) leave it at 0."""
    from brts.ops.doctor import FAIL, as_json, run_checks

    checks = run_checks(store_path(store))
    if json_:
        out.print(as_json(checks), highlight=False, soft_wrap=True)
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            fix = f"  -> {c.fix}" if c.fix else ""
            out.print(Text.assemble((f"{c.status:<7}", STYLE[c.status]), f" {c.name:<{width}}  {c.detail}{fix}"),
                      highlight=False, soft_wrap=True)
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)
