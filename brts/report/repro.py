"""Whether an experiment gives the same table in several floating-point environments (`brts exp repro`).

Each environment's table is the one `brts exp run` prints (brts.report.overview over brts.report.tables: avg@k per
arm x task, its interval over seeds and problems); this module only sets them side by side: per row, the spread of
the means between environments (max - min) against a tolerance, and against the half-width of the reference
environment's own interval (a spread inside it is smaller than the uncertainty the table already states).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from brts.report.aggregate import display_task
from brts.report.overview import experiment_table
from brts.report.tables import StatsSettings
from brts.runs.plan import plan
from brts.spec import ExperimentSpec
from brts.store import RunStore, write_json_atomic, write_text_atomic

KEY = ["kind", "arm", "task"]
VERDICTS = ("ok", "over", "missing")  # within the tolerance; beyond it; not in every environment (same seeds)


def environment_table(store: Path, spec: ExperimentSpec) -> pd.DataFrame:
    """The arm x task table of `spec`'s planned runs and its reference models in `store`; empty when none is
    finished (the environment failed or has not run)."""
    runs = RunStore(store)
    folders = [runs.run(p).path for p in plan(spec)]
    return experiment_table(store, spec.name, folders, [a.name for a in spec.arms])


@dataclass
class Comparison:
    """The environments' tables side by side: one row per kind x arm x task, with each environment's mean (a column
    named after it), `spread`, `half_width` (the reference environment's), `within_tolerance`, `within_interval`,
    `verdict` (VERDICTS) and `missing` (the environments without the row at the reference's seeds)."""

    rows: pd.DataFrame
    environments: list[str]
    reference: str
    tolerance: float
    level: float

    @property
    def ok(self) -> bool:
        """Every row is in every environment and spreads at most `tolerance` points."""
        return not self.rows.empty and bool((self.rows["verdict"] == "ok").all())

    def verdict(self) -> str:
        """One line: reproducible or not, the largest spread and where, and how many rows stay inside the
        reference's interval."""
        rows, tol = self.rows, f"{self.tolerance:g}"
        if rows.empty:
            return "incomplete: no environment has a finished, evaluated run to compare"
        spread = rows["spread"].dropna()
        widest = rows.loc[spread.idxmax()] if not spread.empty else None
        largest = f"largest {widest['spread']:.1f}: {label(widest)}" if widest is not None else "no spread"
        inside = (f"{int(rows['within_interval'].sum())} of {len(rows)} rows within the {self.reference} "
                  f"environment's {self.level:.0%} interval")
        missing = rows[rows["verdict"] == "missing"]
        if not missing.empty:
            where = sorted({env for m in missing["missing"] for env in m.split(",")})
            return (f"incomplete: {len(missing)} of {len(rows)} rows have no result at the reference's seeds in "
                    f"{', '.join(where)} (failed or unfinished runs); {largest}; {inside}")
        over = rows[rows["verdict"] == "over"]
        if not over.empty:
            return (f"NOT reproducible within {tol} points: {len(over)} of {len(rows)} rows spread more ({largest}); "
                    f"{inside}")
        return f"reproducible within {tol} points: every row's spread is at most {tol} ({largest}); {inside}"


def label(row: Any) -> str:
    """`brts on hard`, `teacher (reference) on easy`."""
    who = f"{row['arm']} (reference)" if row["kind"] == "reference" else row["arm"]
    return f"{who} on {display_task(row['task'])}"


def compare(tables: Mapping[str, pd.DataFrame], reference: str, tolerance: float,
            level: float = StatsSettings().level) -> Comparison:
    """Set the environments' tables (name -> experiment_table's frame) side by side; `reference` names the one
    whose interval the spreads are read against. A row counts in an environment only at the reference's number
    of seeds (a mean over fewer seeds is another quantity). At least two environments."""
    environments = list(tables)
    if len(environments) < 2:
        raise ValueError(f"a comparison needs two environments or more, got {environments}")
    indexed = {env: {tuple(r[k] for k in KEY): r for r in t.to_dict("records")} for env, t in tables.items()}
    keys = list(dict.fromkeys(k for env in (reference, *environments) for k in indexed.get(env, {})))
    arms, tasks = (list(dict.fromkeys(k[i] for k in keys)) for i in (1, 2))
    keys.sort(key=lambda k: (k[0] != "arm", arms.index(k[1]), tasks.index(k[2])))  # an arm's tasks together
    rows = []
    for key in keys:
        found = {env: indexed[env].get(key) for env in environments}
        base = found.get(reference)
        seeds = base["seeds"] if base else max(r["seeds"] for r in found.values() if r)
        counted = [env for env in environments if found[env] and found[env]["seeds"] == seeds]
        means = [found[env]["avg"] for env in counted]
        spread = max(means) - min(means) if len(means) >= 2 else math.nan
        half = (base["high"] - base["low"]) / 2 if base else math.nan
        within = spread <= tolerance  # False when there is no spread to judge
        missing = [env for env in environments if env not in counted]
        rows.append({
            **dict(zip(KEY, key, strict=True)), "seeds": int(seeds),
            **{env: (found[env]["avg"] if found[env] else math.nan) for env in environments},
            "spread": spread, "half_width": half, "within_tolerance": within, "within_interval": spread <= half,
            "verdict": "missing" if missing else "ok" if within else "over",
            "missing": ",".join(missing),
        })
    columns = [*KEY, "seeds", *environments, "spread", "half_width", "within_tolerance", "within_interval",
               "verdict", "missing"]
    return Comparison(pd.DataFrame(rows, columns=columns), environments, reference, tolerance, level)


def write(comparison: Comparison, csv_path: Path, json_path: Path, environments: Sequence[dict[str, Any]]) -> None:
    """The rows as CSV at full precision; the same with the settings, the verdict and `environments` (what each
    set, its store, its exit status) as JSON."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(csv_path, comparison.rows.to_csv(index=False))
    rows = comparison.rows.astype(object).where(comparison.rows.notna(), None).to_dict("records")
    write_json_atomic(json_path, {
        "reference": comparison.reference, "tolerance": comparison.tolerance, "level": comparison.level,
        "ok": comparison.ok, "verdict": comparison.verdict(), "environments": list(environments), "rows": rows,
    })
