"""Comparing an experiment's tables across environments: spread, the reference's interval, verdicts, files."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from brts.report.repro import compare, write


def table(*rows: tuple) -> pd.DataFrame:
    """experiment_table's frame from (kind, arm, task, avg, low, high, seeds) rows."""
    return pd.DataFrame(rows, columns=["kind", "arm", "task", "avg", "low", "high", "seeds"])


REF = table(("arm", "opd", "brts_synthetic_easy", 50.0, 44.0, 56.0, 2),
            ("arm", "brts", "brts_synthetic_easy", 60.0, 50.0, 70.0, 2),
            ("reference", "teacher", "brts_synthetic_easy", 90.0, 85.0, 95.0, 1))


def test_spread_half_width_and_verdicts_per_row():
    other = table(("arm", "opd", "brts_synthetic_easy", 52.0, 0, 0, 2),
                  ("arm", "brts", "brts_synthetic_easy", 51.0, 0, 0, 2),
                  ("reference", "teacher", "brts_synthetic_easy", 90.0, 0, 0, 1))
    third = table(("arm", "opd", "brts_synthetic_easy", 47.5, 0, 0, 2),
                  ("arm", "brts", "brts_synthetic_easy", 60.0, 0, 0, 2),
                  ("reference", "teacher", "brts_synthetic_easy", 90.0, 0, 0, 1))
    result = compare({"reference": REF, "avx2": other, "plain-x86": third}, "reference", tolerance=8.0)
    rows = result.rows.set_index("arm")
    assert list(result.rows.columns[:7]) == ["kind", "arm", "task", "seeds", "reference", "avx2", "plain-x86"]
    assert rows.loc["opd", "spread"] == pytest.approx(4.5) and rows.loc["opd", "half_width"] == pytest.approx(6.0)
    assert rows.loc["opd", "verdict"] == "ok" and rows.loc["opd", "within_interval"]
    assert rows.loc["brts", "spread"] == pytest.approx(9.0) and rows.loc["brts", "verdict"] == "over"
    assert not rows.loc["brts", "within_tolerance"] and rows.loc["brts", "within_interval"]  # 9 <= 10
    assert rows.loc["teacher", "spread"] == 0.0 and rows.loc["teacher", "verdict"] == "ok"
    assert not result.ok
    assert result.verdict() == ("NOT reproducible within 8 points: 1 of 3 rows spread more (largest 9.0: brts on "
                                "easy); 3 of 3 rows within the reference environment's 95% interval")
    assert compare({"reference": REF, "avx2": other, "plain-x86": third}, "reference", tolerance=9.0).ok


def test_every_spread_within_tolerance_is_reproducible_and_a_spread_beyond_the_interval_is_said():
    other = table(("arm", "opd", "brts_synthetic_easy", 57.0, 0, 0, 2),
                  ("arm", "brts", "brts_synthetic_easy", 61.0, 0, 0, 2),
                  ("reference", "teacher", "brts_synthetic_easy", 89.0, 0, 0, 1))
    result = compare({"reference": REF, "mkl-compatible": other}, "reference", tolerance=8.0)
    assert result.ok and list(result.rows["verdict"]) == ["ok", "ok", "ok"]
    assert list(result.rows["within_interval"]) == [False, True, True]  # opd: 7 > 6
    assert result.verdict() == ("reproducible within 8 points: every row's spread is at most 8 (largest 7.0: opd "
                                "on easy); 2 of 3 rows within the reference environment's 95% interval")


def test_a_row_missing_or_at_other_seeds_in_an_environment_is_incomplete():
    other = table(("arm", "opd", "brts_synthetic_easy", 50.0, 0, 0, 1),  # one of the two seeds finished
                  ("reference", "teacher", "brts_synthetic_easy", 90.0, 0, 0, 1))  # brts: no row at all
    result = compare({"reference": REF, "avx2": other}, "reference", tolerance=8.0)
    rows = result.rows.set_index("arm")
    assert list(rows["verdict"]) == ["missing", "missing", "ok"] and list(rows["missing"]) == ["avx2", "avx2", ""]
    assert math.isnan(rows.loc["opd", "spread"]) and math.isnan(rows.loc["brts", "avx2"])
    assert rows.loc["opd", "avx2"] == 50.0  # shown, not counted
    assert not result.ok and result.verdict().startswith("incomplete: 2 of 3 rows have no result at the "
                                                         "reference's seeds in avx2")


def test_nothing_to_compare_is_not_reproducible():
    empty = table()
    result = compare({"reference": empty, "avx2": empty}, "reference", tolerance=8.0)
    assert result.rows.empty and not result.ok and result.verdict().startswith("incomplete: no environment")
    with pytest.raises(ValueError, match="two environments"):
        compare({"reference": REF}, "reference", tolerance=8.0)


def test_write_saves_csv_and_json(tmp_path):
    result = compare({"reference": REF, "avx2": REF.iloc[:2]}, "reference", tolerance=8.0)
    csv, js = tmp_path / "repro" / "grid.csv", tmp_path / "repro" / "grid.json"
    write(result, csv, js, [{"name": "reference", "exit_status": 0}, {"name": "avx2", "exit_status": 1}])
    saved = pd.read_csv(csv, keep_default_na=False)
    assert list(saved["arm"]) == ["opd", "brts", "teacher"] and list(saved["verdict"]) == ["ok", "ok", "missing"]
    data = json.loads(js.read_text())
    assert data["ok"] is False and data["tolerance"] == 8.0 and data["reference"] == "reference"
    assert data["environments"][1] == {"name": "avx2", "exit_status": 1}
    assert data["rows"][2]["avx2"] is None and data["rows"][0]["within_tolerance"] is True
    assert data["verdict"] == result.verdict()
