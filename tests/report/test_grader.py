"""The authors' grader statistics in the report: per arm and task, means over seeds and problems with intervals,
checked on run folders whose `eval/grader.csv` holds hand-chosen values."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from brts.evaluation.parse import STATISTICS
from brts.report import build_report
from brts.store.integrity import Manifest
from tests.report.fake_runs import spec, write_experiment

TASK = "brts_synthetic_easy"
# opd: response tokens per seed and problem = seed part + problem part (no interaction)
OPD_TOKENS = {0: (100.0, 110.0), 1: (102.0, 112.0), 2: (104.0, 114.0)}
OPD_SOLVED_NONE = {0: (0.0, 100.0), 1: (0.0, 100.0), 2: (0.0, 0.0)}
TEACHER_DISTINCT = (90.0, 92.0, 94.0)  # the teacher, one evaluation on three problems


def _write_grader(folder: Path, task: str, rows: list[dict]) -> None:
    with open(folder / "eval" / "grader.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["task", "problem_id", *STATISTICS])
        writer.writeheader()
        writer.writerows([{"task": task, **r} for r in rows])
    Manifest(folder).seal("eval")  # as the evaluation that writes it does


def _row(problem: str, **values: float | str) -> dict:
    base: dict = {"problem_id": problem, "solved_none": 0.0, "solved_all": 0.0, "format_errors": 0.0,
                  "response_tokens": 50.0, "distinct_4gram": 80.0}
    return {**base, **values}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    exp = spec("graded", ["opd", "brts"], [0, 1, 2], steps=10, problems=2, k=2)
    planned = write_experiment(tmp_path / "store", exp, {"brts": 0.2})
    base = tmp_path / "store" / "graded"
    for p in planned:
        folder = base / p.run_id
        samples = pd.read_csv(folder / "eval" / "problems.csv", dtype={"problem_id": str})
        ids = samples.loc[samples["task"] == TASK, "problem_id"].unique()  # the other tasks: no grader rows
        if p.arm == "opd":
            rows = [_row(pid, response_tokens=OPD_TOKENS[p.seed][j], solved_none=OPD_SOLVED_NONE[p.seed][j],
                         format_errors="") for j, pid in enumerate(ids)]
        else:
            rows = [_row(pid, format_errors=25.0 * (j + 1)) for j, pid in enumerate(ids)]
        _write_grader(folder, TASK, rows)
    teacher = base / "reference" / "teacher"
    _write_grader(teacher, TASK, [_row(f"t{j}", distinct_4gram=v) for j, v in enumerate(TEACHER_DISTINCT)])
    (base / "reference" / "student_start" / "eval" / "grader.csv").unlink()
    Manifest(base / "reference" / "student_start").seal("eval")
    return tmp_path / "store"


def _t(df: int) -> float:
    return float(scipy_stats.t.isf(0.025, df))


def test_grader_statistics_are_means_over_seeds_and_problems_with_the_crossed_interval(store: Path,
                                                                                      tmp_path: Path) -> None:
    build_report("graded", store, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "grader.csv")
    got = table.set_index(["kind", "arm", "task", "statistic"])

    # opd's response tokens: rows (seeds) 105, 107, 109, columns (problems) 102, 112, mean 107, no interaction.
    # MS_seed = 2 * (4 + 0 + 4) / 2 = 8, MS_problem = 3 * (25 + 25) / 1 = 150; the mean's variance in a seed
    # part 8 / 6 (2 df) and a problem part 150 / 6 = 25 (1 df); Cochran & Cox's critical value weights their
    # t quantiles by those variances.
    tokens = got.loc[("arm", "opd", TASK, "response_tokens")]
    seed_part, problem_part = 8 / 6, 25.0
    crit = (seed_part * _t(2) + problem_part * _t(1)) / (seed_part + problem_part)
    half = crit * math.sqrt(seed_part + problem_part)
    assert (tokens["value"], tokens["low"], tokens["high"]) == pytest.approx((107.0, 107.0 - half, 107.0 + half))
    assert (tokens["seeds"], tokens["problems"], tokens["seed_sd"]) == (3, 2, pytest.approx(2.0))

    # opd's solved-by-none: 100 on the second problem for seeds 0 and 1 -> mean 200 / 6; cut at 0 below
    none = got.loc[("arm", "opd", TASK, "solved_none")]
    assert none["value"] == pytest.approx(100 * 2 / 6) and none["low"] == 0.0 and none["high"] <= 100.0

    # brts's format errors: 25 and 50 on every seed -> 37.5; the seeds agree, so only the problems' part (1 df)
    fmt = got.loc[("arm", "brts", TASK, "format_errors")]
    assert fmt["value"] == pytest.approx(37.5) and fmt["seed_sd"] == pytest.approx(0.0)
    assert fmt["low"] == pytest.approx(max(0.0, 37.5 - _t(1) * 12.5 / math.sqrt(3)))
    # opd measured no format errors (empty cells): no row
    assert ("arm", "opd", TASK, "format_errors") not in got.index

    # the teacher: one evaluation, 90, 92, 94: mean 92, sd 2 over three problems, t with 2 df
    distinct = got.loc[("reference", "teacher", TASK, "distinct_4gram")]
    half = _t(2) * 2.0 / math.sqrt(3)
    assert (distinct["value"], distinct["low"], distinct["high"]) == pytest.approx((92.0, 92.0 - half, 92.0 + half))
    assert distinct["seeds"] == 1 and math.isnan(distinct["seed_sd"])
    assert not (table["arm"] == "student_start").any()  # it has no grader.csv

    md = (tmp_path / "out" / "index.md").read_text()
    section = md[md.index("## Grader statistics"):]
    opd_line = next(line for line in section.splitlines() if line.startswith("| easy | opd |"))
    assert f"107 [{tokens['low']:.0f}, {tokens['high']:.0f}]" in opd_line
    assert "| – |" in opd_line  # format errors not measured
    teacher_line = next(line for line in section.splitlines() if line.startswith("| easy | teacher (reference) |"))
    assert f"92.0 [{92.0 - half:.1f}, {92.0 + half:.1f}]" in teacher_line
    assert "solved by all 2 (%)" in section
    assert "no eval/grader.csv" not in section


def test_runs_without_grader_csv_are_left_out_and_named(store: Path, tmp_path: Path) -> None:
    base = store / "graded"
    run = next(p for p in sorted(base.iterdir()) if (p / "record.json").is_file())
    (run / "eval" / "grader.csv").unlink()
    Manifest(run).seal("eval")
    build_report("graded", store, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "grader.csv")
    arm = pd.read_json(run / "record.json", typ="series")["arm"]
    assert set(table.loc[(table["arm"] == arm) & (table["kind"] == "arm"), "seeds"]) == {2}
    md = (tmp_path / "out" / "index.md").read_text()
    assert "1 finished run(s) have no eval/grader.csv" in md
