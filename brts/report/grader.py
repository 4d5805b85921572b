"""The authors' grader statistics per arm and task, each a mean over seeds and problems with its interval.

The evaluation writes them per problem (`eval/grader.csv`: solved by none / by all k samples, the share of
samples without `boxed`, the mean response length in tokens, the distinct-4-gram ratio of the problem's
samples pooled); an arm's figure on a task is the mean of its (seed x problem) matrix, with the interval of
the accuracy table (`brts.report.stats.mean_interval`: seeds and problems both sampled).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from brts.report import stats
from brts.report.aggregate import STATISTICS

GRADER_TABLE_COLUMNS = ["kind", "arm", "task", "statistic", "seeds", "problems", "value", "low", "high", "seed_sd"]
PERCENT = (0.0, 100.0)
BOUNDS = {name: (0.0, math.inf) if name == "response_tokens" else PERCENT for name in STATISTICS}


def statistic_matrix(grader: pd.DataFrame, statistic: str) -> pd.DataFrame:
    """(seed x problem) values of one statistic; only problems every seed has a value for."""
    per = grader.groupby(["seed", "problem_id"], dropna=False)[statistic].mean()
    return per.unstack("problem_id").dropna(axis=1)


def _rows(kind: str, arm: str, task: str, frame: pd.DataFrame, level: float) -> list[dict]:
    rows = []
    for name in STATISTICS:
        m = statistic_matrix(frame, name)
        if m.shape[1] == 0:  # not measured (format errors of a task that asks for no \boxed{})
            continue
        ci = stats.mean_interval(m.to_numpy(), level=level, bounds=BOUNDS[name])
        rows.append({"kind": kind, "arm": arm, "task": task, "statistic": name, "seeds": m.shape[0],
                     "problems": m.shape[1], "value": ci.estimate, "low": ci.low, "high": ci.high,
                     "seed_sd": stats.seed_sd(m.to_numpy())})
    return rows


def grader_table(grader: pd.DataFrame, arms: Sequence[str], references: pd.DataFrame | None = None,
                 level: float = stats.DEFAULT_LEVEL) -> pd.DataFrame:
    """Per task, one row per arm and then per reference model x statistic: its mean over seeds and problems, the
    interval, and the sd of the per-seed means (NaN with one seed). Tidy; `display` pivots it."""
    refs = references if references is not None else grader.iloc[:0]
    rows: list[dict] = []
    for task in dict.fromkeys([*grader["task"], *refs["task"]]):
        for arm in arms:
            mine = grader[(grader["task"] == task) & (grader["arm"] == arm)]
            if not mine.empty:
                rows += _rows("arm", arm, task, mine, level)
        for role in dict.fromkeys(refs["arm"]):
            ref = refs[(refs["task"] == task) & (refs["arm"] == role)]
            if not ref.empty:  # one evaluation: its problems are the only sampled part
                rows += _rows("reference", str(role), str(task), ref.assign(seed=0), level)
    return pd.DataFrame(rows, columns=GRADER_TABLE_COLUMNS)
