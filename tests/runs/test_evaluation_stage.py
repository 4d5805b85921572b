"""A run's evaluation stage: failures keep the checkpoint, retries and changed settings evaluate only."""

from __future__ import annotations

import json
from pathlib import Path

from brts.runs.executor import execute
from brts.runs.plan import plan
from brts.runs.reference import evaluate_references
from brts.spec import load_spec
from brts.store import RunStore


def test_an_evaluation_failure_keeps_the_run_and_only_the_evaluation_is_retried(tmp_path, tiny_spec_file):
    data = tmp_path / "data"
    data.mkdir()
    aime = data / "aime24.jsonl"
    aime.write_text('{"id": "a1", "problem": "1+1", "answer": "2"}\n')
    spec = load_spec(str(tiny_spec_file), ["arms=[opd]", f"eval.data_dir={data}",
                                           "eval.tasks=[brts_synthetic_easy, brts_aime24]"])
    planned = plan(spec)
    store = RunStore(tmp_path / "store")
    aime.unlink()  # gone after the spec was checked: the evaluation fails, training does not

    [failed] = execute(planned, store)
    run = store.run(planned[0])
    assert failed.action == "failed" and failed.record["failed_stage"] == "eval"
    assert "aime24.jsonl not found" in failed.record["error"]
    assert (run.path / "final" / "config.json").is_file() and failed.record["trained"]
    metrics = run.metrics_path.stat().st_mtime_ns

    aime.write_text('{"id": "a1", "problem": "1+1", "answer": "2"}\n')
    [retried] = execute(planned, store)  # no --retry-failed needed for an evaluation failure
    assert retried.action == "evaluated" and retried.record["status"] == "finished"
    assert run.metrics_path.stat().st_mtime_ns == metrics  # not trained again
    assert set(retried.record["eval"]) == {"brts_synthetic_easy", "brts_aime24"}
    assert [o.action for o in execute(planned, store)] == ["cached"]


def test_changing_k_evaluates_finished_runs_again_without_training(tmp_path, tiny_spec_file):
    store = RunStore(tmp_path / "store")
    first = plan(load_spec(str(tiny_spec_file), ["arms=[opd]"]))
    assert [o.action for o in execute(first, store)] == ["ran"]
    run = store.run(first[0])
    metrics = run.metrics_path.stat().st_mtime_ns
    second = plan(load_spec(str(tiny_spec_file), ["arms=[opd]", "eval.k=2"]))
    assert second[0].run_id == first[0].run_id
    [outcome] = execute(second, store)
    assert outcome.action == "evaluated" and run.metrics_path.stat().st_mtime_ns == metrics
    assert json.loads((run.path / "eval" / "summary.json").read_text())["k"] == 2
    assert "k: 2" in (run.path / "config.yaml").read_text()


def test_reference_rows_are_evaluated_once_per_experiment(tmp_path, tiny_spec_file):
    spec = load_spec(str(tiny_spec_file), ["eval.tasks=[brts_synthetic_easy]"])
    logged: list[str] = []
    records = evaluate_references(spec, RunStore(tmp_path), log=logged.append)
    assert set(records) == {"teacher", "student_start"} and len(logged) == 2
    for role, record in records.items():
        folder = Path(tmp_path / spec.name / "reference" / role)
        saved = json.loads((folder / "record.json").read_text())
        assert saved["role"] == role and saved["status"] == "finished" and saved["model"] == record["model"]
        assert set(saved["eval"]) == {"brts_synthetic_easy"}
        assert json.loads((folder / "eval" / "summary.json").read_text())["tasks"]["brts_synthetic_easy"]["problems"] == 2
    assert evaluate_references(spec, RunStore(tmp_path), log=logged.append) == records and len(logged) == 2  # cached


def test_without_the_final_evaluation_a_run_finishes_after_training_and_is_evaluated_later_untrained(tmp_path,
                                                                                                       tiny_spec_file):
    from typer.testing import CliRunner

    from brts.cli import app

    store = RunStore(tmp_path / "store")
    args = ["exp", "run", str(tiny_spec_file), "--store", str(store.root), "--set", "arms=[opd]", "--set",
            "eval.final=false"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "tiny: no final evaluation (eval.final: false)" in " ".join(result.output.split())
    spec = load_spec(str(tiny_spec_file), ["arms=[opd]", "eval.final=false"])
    [planned] = plan(spec)
    run = store.run(planned)
    record = run.record()
    assert record["status"] == "finished" and record["eval"] == {} and record["trained"]
    assert not (run.path / "eval" / "summary.json").exists()
    assert not (store.root / spec.name / "reference").exists()  # nothing read the test split
    assert run.metrics()[-1]["val/hard"] is not None  # validation still ran
    assert [o.action for o in execute([planned], store)] == ["cached"]

    metrics = run.metrics_path.stat().st_mtime_ns
    evaluated = plan(load_spec(str(tiny_spec_file), ["arms=[opd]"]))
    assert evaluated[0].run_id == planned.run_id
    [again] = execute(evaluated, store)
    assert again.action == "evaluated" and run.metrics_path.stat().st_mtime_ns == metrics  # not trained again
    assert set(again.record["eval"]) == set(spec.eval.tasks)
