"""The arm x split table of final accuracy, mean and spread over training seeds."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from brts.runs.plan import PlannedRun
from brts.runs.store import RunStore


def collect(plan: Sequence[PlannedRun], store: RunStore) -> pd.DataFrame:
    """One row per (run, split) with the final avg@k, for finished runs; start accuracy from step 0."""
    rows: list[dict[str, Any]] = []
    for planned in plan:
        run = store.folder(planned.experiment, planned.run_id)
        record = run.record()
        if record.get("status") != "finished":
            continue
        start = _first_validation(run.metrics_path)
        for split, acc in record.get("eval", {}).items():
            rows.append({
                "arm": planned.arm, "seed": planned.seed, "run_id": planned.run_id, "split": split,
                "accuracy": acc, "start_val": start.get(f"val/{split}"), "end_val": _last_validation(run.metrics_path).get(f"val/{split}"),
            })
    return pd.DataFrame(rows, columns=["arm", "seed", "run_id", "split", "accuracy", "start_val", "end_val"])


def _validations(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = (json.loads(line) for line in path.read_text().splitlines() if line)
    return [m for m in lines if any(k.startswith("val/") for k in m)]


def _first_validation(path: Path) -> dict[str, Any]:
    found = _validations(path)
    return found[0] if found else {}


def _last_validation(path: Path) -> dict[str, Any]:
    found = _validations(path)
    return found[-1] if found else {}


def arm_split_table(frame: pd.DataFrame, arm_order: Sequence[str], split_order: Sequence[str]) -> pd.DataFrame:
    """mean, standard deviation over seeds and seed count per arm x split."""
    if frame.empty:
        return pd.DataFrame(columns=["arm", "split", "mean", "sd", "seeds"])
    grouped = frame.groupby(["arm", "split"])["accuracy"].agg(mean="mean", sd="std", seeds="count").reset_index()
    grouped["arm"] = pd.Categorical(grouped["arm"], [a for a in arm_order if a in set(grouped["arm"])])
    grouped["split"] = pd.Categorical(grouped["split"], [s for s in split_order if s in set(grouped["split"])])
    return grouped.sort_values(["arm", "split"]).reset_index(drop=True)


def _cell(mean: float, sd: float, seeds: int) -> str:
    spread = "" if seeds < 2 or math.isnan(sd) else f" ± {100 * sd:.1f}"
    return f"{100 * mean:.1f}{spread}"


def render(frame: pd.DataFrame, arm_order: Sequence[str], split_order: Sequence[str], title: str) -> Table:
    """A rich table: arms as rows, splits as columns, `mean ± sd` in accuracy points over seeds."""
    table = arm_split_table(frame, arm_order, split_order)
    out = Table(title=title, caption="final avg@k in points, mean ± sd over training seeds (n = seeds)")
    out.add_column("arm")
    splits = [s for s in split_order if s in set(table["split"])]
    for split in splits:
        out.add_column(split, justify="right")
    out.add_column("n", justify="right")
    if not frame.empty:
        start = frame.groupby("split")["start_val"].mean()
        out.add_row("[dim]student at start (val)[/dim]", *[f"[dim]{100 * start.get(s, float('nan')):.1f}[/dim]" for s in splits], "")
    for arm in [a for a in arm_order if a in set(table["arm"])]:
        cells = []
        seeds = 0
        for split in splits:
            row = table[(table["arm"] == arm) & (table["split"] == split)]
            if row.empty:
                cells.append("–")
                continue
            seeds = int(row["seeds"].iloc[0])
            cells.append(_cell(float(row["mean"].iloc[0]), float(row["sd"].iloc[0]), seeds))
        out.add_row(arm, *cells, str(seeds))
    return out
