"""The teacher-context branch's selection per arm, over every training step and seed: the share of prompts each
tier took, how many Tier-2 retries recovered an answer, the hinted samples dropped for leaking the key, and the
alignment score of the chosen trajectories (METHOD.md sections 2 and 6)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

SELECTION_COLUMNS = ["arm", "steps", "tier 1 (%)", "tier 2 (%)", "tier 3 (%)", "skipped (%)",
                     "tier-2 recovered / retries", "leaks dropped", "alignment tier 1", "alignment tier 2",
                     "alignment tier 3"]
_TIER = "selection/frac_tier{}"


def selection_table(metrics: pd.DataFrame, arms: Sequence[str], prompts_per_step: int | None = None) -> pd.DataFrame:
    """One row per arm with the branch on: tier shares of all its prompts (every step has as many), retries (prompts
    no Tier-1 sample solved) and those Tier 2 recovered, in prompts when `prompts_per_step` is known (else as a
    fraction), leaks dropped (hinted samples, summed), and the mean alignment of the chosen trajectory per tier."""
    rows = []
    if metrics.empty or _TIER.format(1) not in metrics.columns:
        return pd.DataFrame(columns=SELECTION_COLUMNS)
    for arm in arms:
        steps = metrics[(metrics["arm"] == arm) & metrics[_TIER.format(1)].notna()]
        if steps.empty:
            continue
        shares = {t: 100 * float(_column(steps, _TIER.format(t)).mean()) for t in (1, 2, 3, 0)}
        retries = float((1 - _column(steps, "selection/tier1_any_correct")).sum())
        recovered = float(_column(steps, _TIER.format(2)).sum())
        if _column(steps, "selection/tier2_recovered_of_retries").isna().all():  # no retry ever made: Tier 2 off
            recovery = "–"
        elif prompts_per_step:
            recovery = f"{round(recovered * prompts_per_step)} / {round(retries * prompts_per_step)}"
        else:
            recovery = f"{recovered / retries:.2f}" if retries else "–"
        rows.append({"arm": arm, "steps": len(steps), "tier 1 (%)": shares[1], "tier 2 (%)": shares[2],
                     "tier 3 (%)": shares[3], "skipped (%)": shares[0], "tier-2 recovered / retries": recovery,
                     "leaks dropped": int(_column(steps, "selection/leaks_dropped").fillna(0).sum()),
                     **{f"alignment tier {t}": _column(steps, f"selection/alignment_tier{t}").mean() for t in (1, 2, 3)}})
    return pd.DataFrame(rows, columns=SELECTION_COLUMNS)


def _column(steps: pd.DataFrame, name: str) -> pd.Series:
    """A metric's values over the steps; NaN where a run's log lacks it (logs written before it existed)."""
    return pd.to_numeric(steps[name], errors="coerce") if name in steps.columns else pd.Series(float("nan"),
                                                                                                index=steps.index)


def selection_display(metrics: pd.DataFrame, arms: Sequence[str], scored: Sequence[str] | None = None) -> pd.DataFrame:
    """`selection_table` as the report prints it: shares to one decimal, alignment to two, blanks as dashes; an arm
    not in `scored` (it ranks by no alignment score: `first`, `random`) shows none (its log holds placeholders)."""
    table = selection_table(metrics, arms)
    if scored is not None:
        for t in (1, 2, 3):
            table.loc[~table["arm"].isin(scored), f"alignment tier {t}"] = float("nan")
    for column in SELECTION_COLUMNS:
        if column.endswith("(%)"):
            table[column] = table[column].map(lambda x: f"{x:.1f}")
        elif column.startswith("alignment"):
            table[column] = table[column].map(lambda x: "–" if pd.isna(x) else f"{x:.2f}")
    return table.astype(str)
