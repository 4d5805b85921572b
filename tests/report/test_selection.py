"""The report's selection table from hand-made step metrics."""

from __future__ import annotations

import pandas as pd
import pytest

from brts.report.selection import selection_display, selection_table


def _step(arm, t1, t2, t3, any_correct, leaks, a1=None, a2=None):
    return {"arm": arm, "selection/frac_tier1": t1, "selection/frac_tier2": t2, "selection/frac_tier3": t3,
            "selection/frac_tier0": 1 - t1 - t2 - t3, "selection/tier1_any_correct": any_correct,
            "selection/leaks_dropped": leaks, "selection/alignment_tier1": a1, "selection/alignment_tier2": a2,
            "selection/alignment_tier3": None, "selection/tier2_recovered_of_retries": t2 / (1 - any_correct)}


def test_shares_recoveries_leaks_and_alignment_per_arm():
    metrics = pd.DataFrame([
        _step("brts", 0.5, 0.25, 0.25, 0.5, 1, 0.8, 0.6),
        _step("brts", 0.25, 0.5, 0.25, 0.25, 2, 0.7, None),
        {"arm": "opd", **dict.fromkeys(_step("opd", 0, 0, 0, 0, 0))} | {"arm": "opd"},
    ])
    table = selection_table(metrics, ["opd", "brts"], prompts_per_step=4).set_index("arm")
    assert list(table.index) == ["brts"]  # opd has no branch
    row = table.loc["brts"]
    assert row["tier 1 (%)"] == pytest.approx(37.5) and row["tier 2 (%)"] == pytest.approx(37.5)
    assert row["tier-2 recovered / retries"] == "3 / 5"  # (0.25 + 0.5) * 4 of (0.5 + 0.75) * 4
    assert row["leaks dropped"] == 3 and row["alignment tier 1"] == pytest.approx(0.75)
    assert row["alignment tier 2"] == pytest.approx(0.6)
    shown = selection_display(metrics, ["brts"]).iloc[0]
    assert shown["tier 1 (%)"] == "37.5" and shown["alignment tier 3"] == "–"
    assert shown["tier-2 recovered / retries"] == "0.60"
    assert selection_display(metrics, ["brts"], scored=[]).iloc[0]["alignment tier 1"] == "–"
    off = metrics.assign(**{"selection/tier2_recovered_of_retries": None})
    assert selection_table(off, ["brts"]).iloc[0]["tier-2 recovered / retries"] == "–"
    assert selection_table(pd.DataFrame(), ["brts"]).empty
