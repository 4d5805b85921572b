"""Power of a planned grid from a previous report's table.csv."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from brts.report import stats
from brts.report.power import planned_power, read_previous

ROWS = [
    {"kind": "arm", "arm": "opd", "task": "hard", "seeds": 3, "problems": 100, "diff": math.nan,
     "var_seed": math.nan, "var_problem": math.nan, "var_residual": math.nan},
    {"kind": "arm", "arm": "brts", "task": "hard", "seeds": 3, "problems": 100, "diff": 3.8,
     "var_seed": 60.0, "var_problem": 20.0, "var_residual": 900.0},
    {"kind": "reference", "arm": "teacher", "task": "hard", "seeds": 1, "problems": 100, "diff": math.nan,
     "var_seed": math.nan, "var_problem": math.nan, "var_residual": math.nan},
]


def test_previous_comparisons_are_read_and_other_files_are_not(tmp_path):
    assert read_previous(tmp_path / "table.csv") is None
    (tmp_path / "table.csv").write_text("kind,arm,task,diff\narm,brts,hard,1.0\n")  # a report without components
    assert read_previous(tmp_path / "table.csv") is None
    pd.DataFrame(ROWS).to_csv(tmp_path / "table.csv", index=False)
    previous = read_previous(tmp_path / "table.csv")
    assert previous is not None and list(previous["arm"]) == ["brts"]


def test_more_seeds_detect_smaller_differences_and_the_seed_count_matches_the_stats(tmp_path):
    previous = pd.DataFrame(ROWS[1:2])
    three, ten = planned_power(previous, 3, None), planned_power(previous, 10, 200)
    assert three.loc[0, "problems"] == 100 and ten.loc[0, "problems"] == 200
    assert ten.loc[0, "detectable"] < three.loc[0, "detectable"]
    c = stats.Components(seed=60.0, problem=20.0, residual=900.0)
    assert three.loc[0, "detectable"] == pytest.approx(stats.detectable_difference(c, 3, 100))
    assert three.loc[0, "seeds_needed"] == stats.seeds_needed(c, 100, 3.8)
