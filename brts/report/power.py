"""Power of a planned grid from a previous report: what it could detect, and how many seeds a difference needs.

A report's `table.csv` keeps each comparison's variance components (`var_seed`, `var_problem`,
`var_residual`; brts.report.stats). A planned design of S seeds x P problems has the grand mean's variance
var_seed / S + var_problem / P + var_residual / (S P), from which `brts exp show` prints, per comparison, the
smallest difference detected with 80% power and the seeds that would detect the difference last observed.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from brts.report import stats

POWER_COLUMNS = ["arm", "task", "observed", "seeds", "problems", "detectable", "seeds_needed"]


def read_previous(path: Path) -> pd.DataFrame | None:
    """The comparisons (rows with a difference and variance components) of a report's `table.csv`, or None."""
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    needed = {"kind", "arm", "task", "diff", "var_seed", "var_problem", "var_residual", "problems", "seeds"}
    if not needed <= set(table.columns):
        return None
    rows = table[(table["kind"] == "arm") & table["diff"].notna() & table["var_seed"].notna()]
    return rows if not rows.empty else None


def planned_power(previous: pd.DataFrame, seeds: int, problems: int | None, *,
                  level: float = stats.DEFAULT_LEVEL, target: float = stats.DEFAULT_POWER) -> pd.DataFrame:
    """Per comparison of `previous`: the smallest difference a design of `seeds` x `problems` (None: the
    previous report's problem count) detects with probability `target`, and the seeds the observed difference
    needs. POWER_COLUMNS; seeds_needed is NaN when no number of seeds reaches the target."""
    rows = []
    for r in previous.itertuples():
        c = stats.Components(seed=float(r.var_seed), problem=float(r.var_problem), residual=float(r.var_residual))
        p = int(problems or r.problems)
        needed = stats.seeds_needed(c, p, float(r.diff), alpha=1 - level, target=target)
        rows.append({"arm": r.arm, "task": r.task, "observed": float(r.diff), "seeds": seeds, "problems": p,
                     "detectable": stats.detectable_difference(c, seeds, p, alpha=1 - level, target=target),
                     "seeds_needed": math.nan if needed is None else float(needed)})
    return pd.DataFrame(rows, columns=POWER_COLUMNS)
