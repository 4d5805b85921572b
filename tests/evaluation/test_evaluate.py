"""Evaluating the tiny models through lm-eval: the contract's files, the cache, and the benchmark tasks."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from brts.evaluation.evaluate import evaluate_model
from brts.evaluation.parse import GRADER_COLUMNS, PROBLEM_COLUMNS, STATISTICS
from brts.evaluation.runner import EvaluationError
from brts.spec.evaluation import EvalSpec
from brts.tasks.sources import TaskDataError

SYNTHETIC = ("brts_synthetic_easy", "brts_synthetic_medium", "brts_synthetic_hard")


def read_problems(folder: Path) -> list[dict[str, str]]:
    with open(folder / "problems.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == PROBLEM_COLUMNS
        return list(reader)


def stamps(folder: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in folder.glob("tasks/*/results.json")}


def test_synthetic_evaluation_writes_the_contract_files(tmp_path: Path, tiny_models) -> None:
    spec = EvalSpec(tasks=SYNTHETIC, problems=3, k=2, max_new_tokens=12)
    out = tmp_path / "eval"
    evaluation = evaluate_model(str(tiny_models.student_dir), spec, out)
    assert evaluation.evaluated == SYNTHETIC

    summary = json.loads((out / "summary.json").read_text())
    assert summary["k"] == 2 and set(summary["tasks"]) == set(SYNTHETIC)
    assert summary["settings"]["backend"] == "hf" and summary["settings"]["temperature"] == 0.7
    rows = read_problems(out)
    assert len(rows) == 3 * 3 * 2
    for task in SYNTHETIC:
        entry = summary["tasks"][task]
        assert entry["problems"] == 3 and entry["k"] == 2
        mine = [r for r in rows if r["task"] == task]
        assert sorted({r["sample"] for r in mine}) == ["0", "1"]
        assert all(sum(r["problem_id"] == p for r in mine) == 2 for p in {r["problem_id"] for r in mine})
        # lm-eval's aggregate equals the mean of the per-sample table, in percent
        assert entry["avg@k"] == pytest.approx(100 * sum(int(r["correct"]) for r in mine) / len(mine))
        assert 0 <= entry["avg@k"] <= entry["pass@k"] <= 100
        include = out / "tasks" / task / "include"
        assert "repeats: 2" in (include / "_brts_synthetic_yaml").read_text()
        assert len((include / "data" / f"{task.removeprefix('brts_')}.jsonl").read_text().splitlines()) == 200
        assert (out / "tasks" / task / "samples.jsonl").is_file()
        assert json.loads((out / "tasks" / task / "results.json").read_text())["config"]["gen_kwargs"]["top_p"] == 0.95
    assert all(int(r["response_tokens"]) > 0 for r in rows)
    header, *commands = (out / "lm_eval_command.txt").read_text().split(" && \\\n")
    assert header.endswith('cd "$(dirname -- "$0")"')
    assert [c.split("--tasks ")[1].split()[0] for c in commands] == list(SYNTHETIC)
    assert all(" lm_eval run --model hf" in c and "--seed 0" in c and "--limit 3" in c for c in commands)
    # the model lies outside the folder that holds eval/: named by its absolute path
    assert all(f"pretrained={tiny_models.student_dir.resolve()} " in c for c in commands)
    assert all(f"--include_path tasks/{t}/include " in c for t, c in zip(SYNTHETIC, commands, strict=True))
    assert evaluation.avg_at_k() == {t: summary["tasks"][t]["avg@k"] for t in SYNTHETIC}
    for task in SYNTHETIC:  # the authors' grader statistics, against the per-sample table
        entry, mine = summary["tasks"][task], [r for r in rows if r["task"] == task]
        assert entry["response_tokens"] == pytest.approx(sum(int(r["response_tokens"]) for r in mine) / len(mine))
        per_problem = [[r["correct"] == "1" for r in mine if r["problem_id"] == p] for p in dict.fromkeys(
            r["problem_id"] for r in mine)]
        assert entry["solved_none"] == pytest.approx(100 * sum(not any(c) for c in per_problem) / 3)
        assert entry["solved_all"] == pytest.approx(100 * sum(all(c) for c in per_problem) / 3)
        assert 0 <= entry["format_errors"] <= 100 and 0 <= entry["distinct_4gram"] <= 100
    with open(out / "grader.csv", newline="") as fh:  # per problem; summary.json's figures are their means
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == GRADER_COLUMNS
        grader = list(reader)
    assert [(r["task"], r["problem_id"]) for r in grader] == list(dict.fromkeys(
        (r["task"], r["problem_id"]) for r in rows))
    for task in SYNTHETIC:
        mine = [r for r in grader if r["task"] == task]
        for name in STATISTICS:
            assert summary["tasks"][task][name] == pytest.approx(sum(float(r[name]) for r in mine) / len(mine))


def test_the_cache_reevaluates_only_what_changed(tmp_path: Path, tiny_models) -> None:
    model, out = str(tiny_models.student_dir), tmp_path / "eval"
    two = EvalSpec(tasks=SYNTHETIC[:2], problems=2, k=2, max_new_tokens=8)
    assert evaluate_model(model, two, out).evaluated == SYNTHETIC[:2]
    before = stamps(out)
    assert evaluate_model(model, two, out).evaluated == ()
    assert stamps(out) == before
    three = two.model_copy(update={"tasks": SYNTHETIC})
    assert evaluate_model(model, three, out).evaluated == (SYNTHETIC[2],)
    assert {k: v for k, v in stamps(out).items() if k in before} == before
    more_samples = three.model_copy(update={"k": 3})
    evaluation = evaluate_model(model, more_samples, out)
    assert evaluation.evaluated == SYNTHETIC
    assert len(read_problems(out)) == 3 * 2 * 3
    other_model = evaluate_model(str(tiny_models.teacher_dir), more_samples, out)
    assert other_model.evaluated == SYNTHETIC  # the model's files are part of the key


@pytest.mark.parametrize("name", ["summary.json", "results.json", "problems.csv"])
def test_a_cached_task_with_an_unreadable_file_is_evaluated_again(tmp_path: Path, tiny_models, name: str) -> None:
    model, out = str(tiny_models.student_dir), tmp_path / "eval"
    spec = EvalSpec(tasks=SYNTHETIC[:2], problems=2, k=2, max_new_tokens=8)
    first = evaluate_model(model, spec, out)
    (out / "tasks" / SYNTHETIC[1] / name).write_bytes(b"\xff\x00{garbage")
    again = evaluate_model(model, spec, out)
    assert again.evaluated == (SYNTHETIC[1],) and again.tasks == first.tasks


def test_a_cached_task_without_the_grader_statistics_gets_them_without_reevaluating(tmp_path: Path,
                                                                                   tiny_models) -> None:
    model, out = str(tiny_models.student_dir), tmp_path / "eval"
    spec = EvalSpec(tasks=SYNTHETIC[:1], problems=2, k=2, max_new_tokens=8)
    fresh = evaluate_model(model, spec, out).tasks[SYNTHETIC[0]]
    cached = out / "tasks" / SYNTHETIC[0] / "summary.json"
    old = {k: v for k, v in json.loads(cached.read_text()).items() if k not in STATISTICS}
    per_problem = (out / "grader.csv").read_text()
    cached.write_text(json.dumps(old))  # as an evaluation cached before brts recorded them
    for stale in (out / "grader.csv", out / "tasks" / SYNTHETIC[0] / "grader.csv"):
        stale.unlink()
    again = evaluate_model(model, spec, out)
    assert again.evaluated == () and again.tasks[SYNTHETIC[0]] == fresh
    assert json.loads(cached.read_text())["distinct_4gram"] == fresh["distinct_4gram"]
    assert (out / "grader.csv").read_text() == per_problem


def test_benchmarks_ask_every_local_problem_k_times(tmp_path: Path, tiny_models, benchmarks_dir: Path) -> None:
    tasks = ("brts_aime24", "brts_aime25", "brts_amc23")
    folder = tmp_path / "data"  # a user's own folder (the packaged copies are the default source)
    shutil.copytree(benchmarks_dir, folder)
    spec = EvalSpec(tasks=tasks, k=2, max_new_tokens=6, data_dir=str(folder))
    out = tmp_path / "eval"
    evaluation = evaluate_model(str(tiny_models.student_dir), spec, out)
    rows = read_problems(out)
    for task in tasks:
        source = folder / f"{task.removeprefix('brts_')}.jsonl"
        ids = [json.loads(line)["id"] for line in source.read_text().splitlines()]
        mine = [r for r in rows if r["task"] == task]
        assert sorted((r["problem_id"], r["sample"]) for r in mine) == sorted((i, s) for i in ids for s in "01")
        assert {r["correct"] for r in mine} <= {"0", "1"}
        assert evaluation.tasks[task]["problems"] == len(ids) and evaluation.tasks[task]["avg@k"] == 0.0
        logged = [json.loads(line) for line in (out / "tasks" / task / "samples.jsonl").read_text().splitlines()]
        assert len(logged) == len(ids) and all(len(s["correct"]) == 2 and len(s["resps"][0]) == 2 for s in logged)
        frozen = out / "tasks" / task / "include" / "data" / source.name
        assert [json.loads(x)["id"] for x in frozen.read_text().splitlines()] == ids
        assert evaluation.tasks[task]["data"] == str(source)
    assert {task: len(ids) for task, ids in [(t, [r for r in rows if r["task"] == t]) for t in tasks]} == {
        "brts_aime24": 60, "brts_aime25": 60, "brts_amc23": 80}


def test_failures_are_one_line_and_leave_no_half_written_task(tmp_path: Path, tiny_models) -> None:
    out = tmp_path / "eval"
    with pytest.raises(TaskDataError, match="data folder .* not found"):
        evaluate_model(str(tiny_models.student_dir),
                       EvalSpec(tasks=("brts_aime24",), data_dir=str(tmp_path / "none")), out)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no_such_architecture"}')
    with pytest.raises(EvaluationError, match="cannot load model"):
        evaluate_model(str(broken), EvalSpec(tasks=SYNTHETIC[:1], problems=1, k=1), out)
    assert not any(p.name.startswith(".") for p in (out / "tasks").iterdir())
    assert not (out / "summary.json").exists()



def test_the_recorded_command_names_paths_relative_to_its_own_folder(
        tmp_path: Path, tiny_models, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run folder (final/ beside eval/) evaluated through a cwd-relative model path: the command changes into its
    own folder and names the model, the task folder and the output from there (tests/evaluation/test_cross_check.py
    runs it with the lm_eval CLI from an unrelated folder)."""
    launch = tmp_path / "launch"
    shutil.copytree(tiny_models.student_dir, launch / "runs" / "r1" / "final")
    monkeypatch.chdir(launch)
    spec = EvalSpec(tasks=("brts_synthetic_easy",), problems=2, k=1, max_new_tokens=8)
    evaluate_model("runs/r1/final", spec, Path("runs/r1/eval"))
    eval_dir = launch / "runs" / "r1" / "eval"
    header, command = (eval_dir / "lm_eval_command.txt").read_text().split(" && \\\n")
    assert header.startswith("#") and header.endswith('cd "$(dirname -- "$0")"')
    assert str(tmp_path) not in command
    assert "--model_args pretrained=../final " in command
    assert "--include_path tasks/brts_synthetic_easy/include " in command
    assert command.rstrip().endswith("--output_path tasks/brts_synthetic_easy/lm_eval_cli")
    task_command = (eval_dir / "tasks" / "brts_synthetic_easy" / "command.txt").read_text()
    assert task_command == f'cd "$(dirname -- "$0")/../.." && {command}'
