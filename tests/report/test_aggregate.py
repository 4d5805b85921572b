"""Reading run folders: which runs are usable, why the others are not, and what the frames hold."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from brts.report.aggregate import (
    ReportError,
    display_task,
    drop_superseded,
    read_eval,
    read_references,
    read_runs,
)
from brts.report.tables import arm_task_table, cost_table
from brts.store import DamagedFile
from brts.store.integrity import Manifest
from tests.report.fake_runs import spec, write_experiment


@pytest.fixture
def small(tmp_path):
    exp = spec("small", ["opd", "brts"], [0, 1], steps=10, problems=10, k=2)
    planned = write_experiment(tmp_path / "store", exp, {"brts": 0.2})
    return tmp_path / "store" / "small", planned


def _folders(base):
    return [p for p in sorted(base.iterdir()) if (p / "record.json").is_file()]


def test_finished_runs_are_read_with_their_samples_metrics_and_cost(small):
    base, planned = small
    data = read_runs(_folders(base))
    assert data.runs["usable"].all() and len(data.runs) == 4
    assert len(data.samples) == 4 * 3 * 10 * 2
    assert len(data.grader) == 4 * 3 * 10 and set(data.grader["run_id"]) == set(data.runs["run_id"])
    assert set(data.samples["task"]) == {"brts_synthetic_easy", "brts_synthetic_medium", "brts_synthetic_hard"}
    assert data.settings == {"k": 2, "settings": {"temperature": 0.7, "top_p": 0.95}}
    brts = data.runs[data.runs["arm"] == "brts"].iloc[0]
    assert (brts["teacher_samples"], brts["aux_weight"], brts["last_step"], brts["planned_steps"]) == (4, 0.5, 10, 10)
    opd = data.runs[data.runs["arm"] == "opd"].iloc[0]
    assert pd.isna(opd["teacher_samples"]) and opd["teacher_tokens"] == 0
    assert set(data.metrics["step"]) == set(range(11))
    cost = cost_table(data.runs, ["opd", "brts"]).set_index("arm")
    assert cost.loc["brts", "teacher_tokens"] == 10 * 40.0 * 4 * 8 and cost.loc["opd", "teacher_tokens"] == 0


def test_a_finished_run_without_problems_csv_is_listed_as_damaged(small):
    base, planned = small
    (base / planned[0].run_id / "eval" / "problems.csv").unlink()
    Manifest(base / planned[0].run_id).seal("eval")  # an evaluation that wrote no problems.csv, sealed so
    data = read_runs(_folders(base))
    row = data.runs.set_index("run_id").loc[planned[0].run_id]
    assert not row["usable"] and row["status"] == "damaged"
    assert row["note"].endswith("problems.csv: missing (the record holds its accuracies)")


def test_a_run_finished_without_a_final_evaluation_is_not_damaged(small):
    base, planned = small
    folder = base / planned[0].run_id
    shutil.rmtree(folder / "eval")
    Manifest(folder).seal("eval")
    record = json.loads((folder / "record.json").read_text())
    (folder / "record.json").write_text(json.dumps({**record, "eval": {}}))  # as eval.final: false leaves it
    data = read_runs(_folders(base))
    row = data.runs.set_index("run_id").loc[planned[0].run_id]
    assert row["status"] == "finished" and not row["usable"]
    assert row["note"] == "finished without a final evaluation (eval.final: false)"
    assert planned[0].run_id not in set(data.samples["run_id"])


def test_a_torn_last_metrics_line_is_ignored(small):
    base, planned = small
    with open(base / planned[1].run_id / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 11, "val/ea')
    data = read_runs(_folders(base))
    assert data.metrics[data.metrics["run_id"] == planned[1].run_id]["step"].max() == 10


def test_a_later_run_of_the_same_arm_and_seed_supersedes_an_earlier_one(small):
    base, planned = small
    old = base / "0123456789ab"
    shutil.copytree(base / planned[0].run_id, old)
    record = json.loads((old / "record.json").read_text())
    (old / "record.json").write_text(json.dumps({**record, "run_id": old.name, "ended": "2025-01-01T00:00:00+00:00"}))
    runs = drop_superseded(read_runs(_folders(base)).runs, None).set_index("run_id")
    assert not runs.loc[old.name, "usable"] and "later run" in runs.loc[old.name, "note"]
    assert runs.loc[planned[0].run_id, "usable"]
    planned_only = drop_superseded(read_runs(_folders(base)).runs, {p.run_id for p in planned}).set_index("run_id")
    assert planned_only.loc[old.name, "note"] == "not in the current spec (an older configuration)"


def test_references_are_read_by_role_and_become_reference_rows(small):
    base, _ = small
    records, samples, grader = read_references(base.parent, base.name)
    assert set(records) == {"teacher", "student_start"} and records["teacher"]["status"] == "finished"
    assert set(samples["run_id"]) == {"reference/teacher", "reference/student_start"}
    assert set(grader["run_id"]) == set(samples["run_id"]) and len(grader) == 2 * 3 * 10
    data = read_runs(_folders(base))
    table = arm_task_table(data.samples, ["opd", "brts"], "opd", samples)
    refs = table[table["kind"] == "reference"]
    assert len(refs) == 6 and refs["diff"].isna().all() and (refs["seeds"] == 1).all()
    hard = table[(table["arm"] == "brts") & (table["task"] == "brts_synthetic_hard")].iloc[0]
    assert hard["seed_pairing"] == "paired" and hard["seeds"] == 2 and hard["problems"] == 10


def test_a_run_killed_mid_write_is_read_without_its_torn_line(small):
    base, planned = small
    path = base / planned[0].run_id / "metrics.jsonl"
    whole = path.read_text()
    path.write_text(whole + '{"step": 11, "loss/to')  # a write cut short: no closing brace, no newline
    data = read_runs(_folders(base))
    steps = data.metrics[data.metrics["run_id"] == planned[0].run_id]["step"]
    assert steps.max() == 10 and len(steps) == len(whole.splitlines())


def test_a_problems_csv_with_missing_columns_is_damaged_naming_the_file(tmp_path):
    (tmp_path / "problems.csv").write_text("task,problem_id,correct\nx,1,1\n")
    (tmp_path / "summary.json").write_text('{"k": 1, "tasks": {"x": {"problems": 1, "avg@k": 100.0}}}')
    with pytest.raises(DamagedFile, match=r"problems.csv: header \['task', 'problem_id', 'correct'\] is not"):
        read_eval(tmp_path)


@pytest.mark.parametrize(("task", "shown"), [("brts_synthetic_hard", "hard"), ("brts_aime24", "aime24"),
                                              ("gsm8k", "gsm8k")])
def test_task_display_names(task, shown):
    assert display_task(task) == shown


def test_seeds_without_common_problems_are_a_user_error(small):
    base, planned = small
    data = read_runs(_folders(base))
    samples = data.samples.copy()
    first = samples["run_id"] == planned[0].run_id
    samples.loc[first, "problem_id"] = samples.loc[first, "problem_id"] + "-other"
    with pytest.raises(ReportError, match="share no evaluated problem ids"):
        arm_task_table(samples, ["opd", "brts"], "opd")


def _damage(folder, kind: str) -> str:
    """Damage one file of a run folder as the issue found them; returns the file's name."""
    if kind == "problems_cut_at_a_line":  # a valid CSV, fewer rows than summary.json counts
        table = folder / "eval" / "problems.csv"
        table.write_text("".join(table.read_text().splitlines(keepends=True)[:25]))
        return "problems.csv"
    if kind == "problems_cut_mid_line":
        table = folder / "eval" / "problems.csv"
        table.write_text(table.read_text()[:300])
        return "problems.csv"
    if kind == "problems_row_edited":  # a valid CSV of the right shape: one sample's grade flipped
        table = folder / "eval" / "problems.csv"
        lines = table.read_text().splitlines(keepends=True)
        fields = lines[1].split(",")
        fields[3] = "1" if fields[3] == "0" else "0"
        table.write_text("".join([lines[0], ",".join(fields), *lines[2:]]))
        return "problems.csv"
    if kind == "summary_garbage":
        (folder / "eval" / "summary.json").write_text("{garbage")
        return "summary.json"
    if kind == "metrics_middle_line":
        log = folder / "metrics.jsonl"
        lines = log.read_text().splitlines(keepends=True)
        log.write_text("".join([*lines[:3], "not json\n", *lines[4:]]))
        return "metrics.jsonl"
    (folder / "record.json").write_text((folder / "record.json").read_text()[:20])  # record_truncated
    return "record.json"


@pytest.mark.parametrize("kind", ["problems_cut_at_a_line", "problems_cut_mid_line", "problems_row_edited",
                                  "summary_garbage", "metrics_middle_line", "record_truncated"])
def test_a_run_with_a_damaged_file_is_listed_as_damaged_and_never_averaged(small, kind):
    from brts.report.overview import experiment_table

    base, planned = small
    damaged = planned[0].run_id
    name = _damage(base / damaged, kind)
    data = read_runs(_folders(base))
    row = data.runs.set_index("run_id").loc[damaged]
    assert row["status"] == "damaged" and not row["usable"] and name in row["note"]
    assert damaged not in set(data.samples["run_id"]) and damaged not in set(data.metrics.get("run_id", []))
    # exp run's table reads the same runs the same way: the damaged seed is not in its mean either.
    table = experiment_table(base.parent, base.name, _folders(base), ["opd", "brts"]).set_index(["arm", "task"])
    assert (table.loc[planned[0].arm, "seeds"] == 1).all()


def test_a_reference_with_damaged_evaluation_files_gives_no_rows(small):
    base, _ = small
    _damage(base / "reference" / "teacher", "problems_cut_at_a_line")
    records, samples, _ = read_references(base.parent, base.name)
    assert records["teacher"]["status"] == "damaged" and "problems.csv" in records["teacher"]["error"]
    assert set(samples["run_id"]) == {"reference/student_start"}


def _table(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"kind": k, "arm": a, "task": t, "avg": v} for k, a, t, v in rows])


def test_a_task_where_every_arm_is_at_the_ceiling_or_at_the_start_is_uninformative():
    from brts.report.tables import uninformative_tasks

    table = _table([
        ("arm", "opd", "easy", 98.0), ("arm", "brts", "easy", 97.5),      # ceiling: both within 3 of 100
        ("arm", "opd", "medium", 40.0), ("arm", "brts", "medium", 36.0),  # both within 3 of the start, 38
        ("arm", "opd", "hard", 30.0), ("arm", "brts", "hard", 45.0),      # one arm moved: informative
        ("reference", "student_start", "easy", 60.0), ("reference", "student_start", "medium", 38.0),
        ("reference", "student_start", "hard", 29.0),
    ])
    found = uninformative_tasks(table)
    assert set(found) == {"easy", "medium"}
    assert "100" in found["easy"] and "38.0" in found["medium"]
    assert uninformative_tasks(table.assign(avg=table["avg"].where(table["arm"] != "brts", 96.9))) == {}


def test_a_damaged_record_leaves_the_seed_column_whole_numbers_in_runs_csv(small, tmp_path):
    from brts.report import build_report

    base, planned = small
    damaged = base / planned[0].run_id / "record.json"
    damaged.write_text(damaged.read_text()[:20])
    data = read_runs(_folders(base))
    assert str(data.runs["seed"].dtype) == "Int64" and data.runs["seed"].isna().sum() == 1
    build_report("small", base.parent, tmp_path / "out")
    runs = pd.read_csv(tmp_path / "out" / "runs.csv", dtype=str, keep_default_na=False)
    assert set(runs["seed"]) == {"0", "1", ""}, runs["seed"].tolist()
