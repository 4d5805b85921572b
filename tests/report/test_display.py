"""The report's display tables: what a reader sees of the numbers."""

from __future__ import annotations

import math

import pandas as pd

from brts.report.display import detectable_text, power_display


def _comparison(arm: str, seeds: int, compared: int, detectable: float) -> dict:
    return {"kind": "arm", "arm": arm, "task": "brts_synthetic_hard", "seeds": seeds, "diff": 1.0, "se": 0.5,
            "compared_seeds": compared, "detectable": detectable, "var_seed": 1.0, "seeds_needed": 12.0}


def test_the_power_table_names_the_seeds_compared_and_no_detectable_difference_past_the_scale() -> None:
    table = pd.DataFrame([_comparison("brts", 3, 2, 417.0), _comparison("first_rollout", 3, 3, 8.25)])
    shown = power_display(table, "opd", 0.95, 0.8)
    assert list(shown.columns) == ["task", "arm", "Δ vs opd", "SE", "seeds compared", "detectable Δ (80% power)",
                                   "seeds to detect this Δ"]  # one header for every row, not the arm's seeds
    assert list(shown["seeds compared"]) == ["2", "3"]  # what the paired test used: the seeds both arms ran
    assert list(shown["detectable Δ (80% power)"]) == ["not detectable (> 100)", "±8.2"]


def test_detectable_text() -> None:
    assert detectable_text(math.nan) == "–"
    assert detectable_text(100.0) == "±100.0" and detectable_text(100.5) == "not detectable (> 100)"
