"""Resolve a report name to an experiment or a sweep, compose it, and write the report folder atomically.

The folder holds `index.md` / `index.html`, `figures/NAME.{png,svg}`, and the tidy data (`results`, `runs`,
`table`, `speed` and `grader`, or `trials`, each as .parquet and .csv). It is built beside its destination and
renamed into place, so an interrupted report leaves the previous one intact.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from brts.report import experiment, plots, render, sweep_report
from brts.report.aggregate import ReportError
from brts.report.tables import StatsSettings
from brts.store import RunStore

FORMATS = ("md", "html")
MARKER = ".brts-report"


@dataclass(frozen=True)
class ReportResult:
    kind: str  # "experiment" or "sweep"
    out: Path
    files: list[Path]
    summary: list[str]
    seconds: float


def resolve(store: Path, name: str) -> str:
    """'sweep' when `<store>/sweeps/<name>/` exists, else 'experiment' when `<store>/<name>/` has runs."""
    if not store.exists():
        raise ReportError(f"run store {store} does not exist; pass --store with the folder the runs were written to")
    if not store.is_dir():
        raise ReportError(f"run store {store} is not a folder; pass --store with the runs' folder")
    runs = RunStore(store)
    if runs.sweep_dir(name).is_dir():
        return "sweep"
    if runs.runs(name):
        return "experiment"
    raise ReportError(f"no experiment or sweep named {name!r} in {store} (experiments: "
                      f"{', '.join(runs.experiments()) or 'none'}; sweeps: {', '.join(runs.sweeps()) or 'none'})")


def parse_formats(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise ReportError(f"--format {text!r}: expected a comma-separated subset of {', '.join(FORMATS)}")
    return chosen


def build_report(name: str, store: Path, out: Path, baseline: str = "opd", formats: Sequence[str] = FORMATS,
                 stats: StatsSettings | None = None, progress: Callable[[str], None] | None = None) -> ReportResult:
    """Write the report of experiment or sweep `name` into `out`; ReportError (one line) for user mistakes."""
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    _check_out(out)
    kind = resolve(store, name)
    if kind == "sweep":
        composed = sweep_report.compose(store, name, say)
    else:
        composed = experiment.compose(store, name, baseline, stats or StatsSettings(), say)
    say(f"writing {out}")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        files = _write(composed, tmp, formats)
        _swap(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files = [out / f.relative_to(tmp) for f in files]
    return ReportResult(kind, out, files, composed.summary, time.perf_counter() - started)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file; pass a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise ReportError(f"--out {out} exists and is not a brts report folder; pass a new or empty folder")


def _write(composed: experiment.Composed, folder: Path, formats: Sequence[str]) -> list[Path]:
    folder.mkdir(parents=True)
    files = [folder / MARKER]
    files[0].write_text("written by `brts report`; the whole folder is replaced when the report is rebuilt\n")
    for fig_name, fig in composed.figures.items():
        files += plots.save(fig, folder / "figures", fig_name)  # type: ignore[arg-type]
    for stem, frame in composed.frames.items():
        frame.to_parquet(folder / f"{stem}.parquet", index=False)
        frame.to_csv(folder / f"{stem}.csv", index=False)
        files += [folder / f"{stem}.parquet", folder / f"{stem}.csv"]
    if "md" in formats:
        files.append(folder / "index.md")
        files[-1].write_text(render.to_markdown(composed.title, composed.blocks))
    if "html" in formats:
        files.append(folder / "index.html")
        files[-1].write_text(render.to_html(composed.title, composed.blocks))
    return files


def _swap(new: Path, out: Path) -> None:
    """Move the finished folder into place; the previous report is removed only after the new one is there."""
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)
