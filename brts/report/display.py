"""The report's tables as display strings: accuracy per arm and task, power, learning speed, cost, the
authors' grader statistics."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from brts.report.aggregate import display_task
from brts.report.speed import AREA, STEPS
from brts.report.tables import interval_text, signed


def fmt(x: float, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _ci(low: float, high: float, digits: int = 1) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _diff_cells(r: Any, baseline: str, pct: str, is_base: bool) -> dict[str, str]:
    """Δ [CI], p, p (Holm) and significant of one row; `baseline` / `–` where the row has no comparison."""
    has = not math.isnan(r.diff)
    return {
        f"Δ vs {baseline} [{pct} CI]": (f"{signed(r.diff)} {interval_text(r.diff_low, r.diff_high)}" if has
                                         else ("baseline" if is_base else "–")),
        "p": _p_text(r.p) if has else "–",
        "p (Holm)": _p_text(r.p_holm) if has else "–",
        "significant": ("yes" if r.significant else "no") if has else "–",
    }


def formatted_table(table: pd.DataFrame, baseline: str, gaps: dict[str, tuple[int, int]], level: float) -> pd.DataFrame:
    """The arm x task table as display strings, grouped by task, reference models after the arms."""
    pct = f"{level:.0%}"
    rows = []
    for task in dict.fromkeys(table["task"]):
        for r in table[table["task"] == task].itertuples():
            is_arm = r.kind == "arm"
            seeds = str(r.seeds) if r.arm not in gaps else f"{r.seeds} (of {gaps[r.arm][1]})"
            rows.append({
                "task": display_task(r.task), "arm": r.arm if is_arm else f"{r.arm} (reference)",
                f"avg@{r.k} [{pct} CI]": f"{r.avg:.1f} {_ci(r.low, r.high)}",
                "sd over seeds": fmt(r.seed_sd), "seeds": seeds if is_arm else "–", "problems": str(r.problems),
                f"pass@{r.k}": f"{r.pass_at_k:.1f}",
                **_diff_cells(r, baseline, pct, is_arm and r.arm == baseline),
            })
    return pd.DataFrame(rows).fillna("–")


def detectable_text(detectable: float, scale: float = 100.0) -> str:
    """A detectable difference as shown: none past the scale's range (a 0-100 accuracy cannot move by more)."""
    if math.isnan(detectable):
        return "–"
    return f"not detectable (> {scale:g})" if detectable > scale else f"±{detectable:.1f}"


def power_display(table: pd.DataFrame, baseline: str, level: float, power: float) -> pd.DataFrame:
    """Per comparison: Δ and its SE, the smallest difference the design detects, the seeds the observed Δ needs."""
    rows = table[(table["kind"] == "arm") & table["diff"].notna()]
    return pd.DataFrame([{
        "task": display_task(r.task), "arm": r.arm, f"Δ vs {baseline}": signed(r.diff), "SE": fmt(r.se),
        "seeds compared": "–" if math.isnan(r.compared_seeds) else str(int(r.compared_seeds)),
        f"detectable Δ ({power:.0%} power)": detectable_text(r.detectable),
        "seeds to detect this Δ": ("–" if math.isnan(r.var_seed) or r.diff == 0 else "more than 1000"
                                   if math.isnan(r.seeds_needed) else str(int(r.seeds_needed))),
    } for r in rows.itertuples()])


def speed_display(speed: pd.DataFrame, baseline: str, level: float, threshold: float) -> pd.DataFrame:
    """The learning-speed table as display strings: per measure and split, each arm's value and its Δ."""
    pct = f"{level:.0%}"
    names = {AREA: "area under the validation curve (%)", STEPS: f"first step with validation ≥ {threshold:g}%"}
    rows = []
    for r in speed.itertuples():
        digits = 1 if r.measure == AREA else 0
        rows.append({
            "measure": names[r.measure], "split": display_task(r.split), "arm": r.arm,
            f"value [{pct} CI]": f"{r.value:.{digits}f} {_ci(r.low, r.high, digits)}",
            "reached": r.reached or "–", "seeds": str(r.seeds), **_diff_cells(r, baseline, pct, r.arm == baseline),
        })
    return pd.DataFrame(rows).fillna("–")


def cost_display(costs: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "arm": costs["arm"], "seeds": costs["seeds"].astype(str),
        "teacher tokens": costs["teacher_tokens"].map(lambda v: f"{v:,.0f}"),
        "wall time (s)": costs["train_seconds"].map(lambda v: fmt(v, 0)),
        "steps": costs["steps"].map(lambda v: fmt(v, 0)),
    })


def grader_names(k: int) -> dict[str, str]:
    """Column heads of the grader statistics (brts.report.grader), `k` samples per problem."""
    return {"solved_none": "solved by none (%)", "solved_all": f"solved by all {k} (%)",
            "format_errors": "format errors (%)", "response_tokens": "response tokens",
            "distinct_4gram": "distinct 4-grams (%)"}


def grader_display(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """One row per arm (then reference model) and task: each statistic as `value [low, high]`."""
    names = grader_names(k)
    rows = []
    for (kind, arm, task), group in table.groupby(["kind", "arm", "task"], sort=False):
        row = {"task": display_task(str(task)), "arm": arm if kind == "arm" else f"{arm} (reference)",
               "seeds": str(int(group["seeds"].max())) if kind == "arm" else "–",
               "problems": str(int(group["problems"].max()))}
        values = {r.statistic: f"{r.value:.{_digits(r.statistic)}f} {_ci(r.low, r.high, _digits(r.statistic))}"
                  for r in group.itertuples()}
        row.update({head: values.get(name, "–") for name, head in names.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def _digits(statistic: str) -> int:
    return 0 if statistic == "response_tokens" else 1
