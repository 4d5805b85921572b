"""`brts report`: tables, figures and tidy data of an experiment or a sweep, from its run folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from brts.cli.common import StoreOpt, err, fail, out, store_root, user_errors


def report(
    name: Annotated[str, typer.Argument(help="experiment or sweep name (as in the run store)")],
    store: StoreOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output folder (default: reports/NAME)")] = None,
    baseline: Annotated[str, typer.Option(help="arm the others are compared with")] = "opd",
    formats: Annotated[str, typer.Option("--format", help="comma-separated: md, html")] = "md,html",
) -> None:
    """Tables, figures and tidy data of an experiment or a sweep, from its run folders only."""
    from brts.report import build_report
    from brts.report.build import parse_formats

    with user_errors():
        try:
            chosen = parse_formats(formats)
            with err.status("report") as status:  # transient: gone before the summary or the error line
                result = build_report(name, store_root(store), out_dir or Path("reports") / name, baseline=baseline,
                                      formats=chosen, progress=lambda msg: status.update(msg))
        except KeyboardInterrupt:
            fail("interrupted; nothing was written (a previous report in the folder is unchanged)", code=130)
    for line in result.summary:
        out.print(f"- {line}", highlight=False, soft_wrap=True)
    pages = [str(result.out / f"index.{f}") for f in chosen]
    out.print(f"{result.kind} report written in {result.seconds:.1f} s: {', '.join(pages)}", highlight=False,
              soft_wrap=True)
