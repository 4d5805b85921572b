"""The arm x task table of final avg@k (percent), mean and spread over training seeds, with reference rows."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
from rich.table import Table

from brts.evaluation.catalog import display_name
from brts.runs.plan import PlannedRun
from brts.runs.store import RunStore

REFERENCE_LABELS = {"teacher": "teacher (reference)", "student_start": "student at start (reference)"}


def collect(plan: Sequence[PlannedRun], store: RunStore) -> pd.DataFrame:
    """One row per (finished run, task) with its final avg@k in percent (the record's `eval`)."""
    rows: list[dict[str, Any]] = []
    for planned in plan:
        record = store.folder(planned.experiment, planned.run_id).record()
        if record.get("status") != "finished":
            continue
        for task, acc in record.get("eval", {}).items():
            rows.append({"arm": planned.arm, "seed": planned.seed, "run_id": planned.run_id, "task": task,
                         "accuracy": float(acc)})
    return pd.DataFrame(rows, columns=["arm", "seed", "run_id", "task", "accuracy"])


def arm_task_table(frame: pd.DataFrame, arm_order: Sequence[str], task_order: Sequence[str]) -> pd.DataFrame:
    """mean, standard deviation over seeds and seed count per arm x task."""
    if frame.empty:
        return pd.DataFrame(columns=["arm", "task", "mean", "sd", "seeds"])
    grouped = frame.groupby(["arm", "task"])["accuracy"].agg(mean="mean", sd="std", seeds="count").reset_index()
    grouped["arm"] = pd.Categorical(grouped["arm"], [a for a in arm_order if a in set(grouped["arm"])])
    grouped["task"] = pd.Categorical(grouped["task"], [t for t in task_order if t in set(grouped["task"])])
    return grouped.sort_values(["arm", "task"]).reset_index(drop=True)


def _cell(mean: float, sd: float, seeds: int) -> str:
    spread = "" if seeds < 2 or math.isnan(sd) else f" ± {sd:.1f}"
    return f"{mean:.1f}{spread}"


def render(frame: pd.DataFrame, arm_order: Sequence[str], task_order: Sequence[str], title: str,
           references: Mapping[str, Mapping[str, Any]] | None = None) -> Table:
    """A rich table: reference rows (teacher, starting student), then arms; tasks as columns; `mean ± sd`."""
    table = arm_task_table(frame, arm_order, task_order)
    out = Table(title=title, caption="final avg@k in percent, mean ± sd over training seeds (n = seeds)")
    out.add_column("arm")
    tasks = list(task_order)
    for task in tasks:
        out.add_column(display_name(task), justify="right")
    out.add_column("n", justify="right")
    for role, record in (references or {}).items():
        evals = record.get("eval", {}) if record.get("status") == "finished" else {}
        label = REFERENCE_LABELS.get(role, role)
        cells = [f"[dim]{evals[t]:.1f}[/dim]" if t in evals else "–" for t in tasks]
        out.add_row(f"[dim]{label}[/dim]", *cells, "")
    for arm in [a for a in arm_order if a in set(table["arm"])]:
        cells = []
        seeds = 0
        for task in tasks:
            row = table[(table["arm"] == arm) & (table["task"] == task)]
            if row.empty:
                cells.append("–")
                continue
            seeds = int(row["seeds"].iloc[0])
            cells.append(_cell(float(row["mean"].iloc[0]), float(row["sd"].iloc[0]), seeds))
        out.add_row(arm, *cells, str(seeds))
    return out
