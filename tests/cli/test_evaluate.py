"""`brts eval` on the tiny models: a table, a cache, a run's own checkpoint and settings, one-line mistakes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from brts.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_eval_prints_a_table_and_caches(tmp_path, tiny_models):
    args = ("eval", str(tiny_models.student_dir), "--tasks", "brts_synthetic_easy,brts_synthetic_hard", "--k", "2",
            "--problems", "2", "--max-new-tokens", "8", "--out", str(tmp_path / "ev"))
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "avg@2" in first.output and "easy" in first.output and "hard" in first.output
    assert "2 evaluated, 0 cached" in first.output
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert summary["k"] == 2 and set(summary["tasks"]) == {"brts_synthetic_easy", "brts_synthetic_hard"}
    assert "0 evaluated, 2 cached" in invoke(*args).output


def test_eval_of_a_run_uses_its_final_checkpoint_and_settings(tmp_path, tiny_spec_file):
    store = tmp_path / "store"
    assert invoke("exp", "run", str(tiny_spec_file), "--store", str(store), "--set", "arms=[opd]").exit_code == 0
    [run] = [p.parent for p in store.glob("tiny/*/record.json")]
    result = invoke("eval", run.name, "--store", str(store), "--out", str(tmp_path / "ev"))
    assert result.exit_code == 0, result.output
    mine = json.loads((tmp_path / "ev" / "summary.json").read_text())
    recorded = json.loads((run / "eval" / "summary.json").read_text())
    assert mine["settings"]["model"] == str((run / "final").resolve())
    assert mine["tasks"] == recorded["tasks"]  # same checkpoint, same settings, same seed: same numbers

    weights = run / "final" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    damaged = invoke("eval", run.name, "--store", str(store), "--out", str(tmp_path / "ev2"))
    assert damaged.exit_code == 2 and len(damaged.output.strip().splitlines()) == 1
    assert str(weights) in "".join(damaged.output.split()) and "store check --repair" in damaged.output


def test_eval_reads_answers_in_the_format_asked_for(tmp_path, tiny_models):
    """A model that never writes \\boxed{} (SmolLM2-135M) is evaluated on its last number: the grader and the
    prompt's instruction follow `--answer-format`, and the results say which format they read."""
    args = ("eval", str(tiny_models.student_dir), "--tasks", "brts_synthetic_easy", "--k", "1", "--problems", "2",
            "--max-new-tokens", "8")
    result = invoke(*args, "--answer-format", "last_number", "--out", str(tmp_path / "last"))
    assert result.exit_code == 0, result.output
    entry = json.loads((tmp_path / "last" / "summary.json").read_text())["tasks"]["brts_synthetic_easy"]
    assert entry["answer_format"] == "last_number"
    boxed = invoke(*args, "--out", str(tmp_path / "boxed"))
    assert boxed.exit_code == 0, boxed.output
    assert json.loads((tmp_path / "boxed" / "summary.json").read_text())["tasks"]["brts_synthetic_easy"][
        "answer_format"] == "boxed"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--answer-format", "digits"), "--answer-format 'digits':"),
        (("--answer-format", "regex:(a)(b)"), "capture groups"),
        (("--tasks", "brts_aime23"), "unknown brts task 'brts_aime23'"),
        (("--tasks", "brts_aime24", "--data-dir", "/no/such/folder"), "data folder /no/such/folder not found"),
        (("--k", "0"), "--k:"),
        (("--backend", "tpu"), "--backend:"),
    ],
)
def test_eval_mistakes_are_one_line_exit_2(tmp_path, tiny_models, args, expected):
    result = invoke("eval", str(tiny_models.student_dir), *args, "--out", str(tmp_path / "ev"))
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and expected in result.output


def test_eval_refuses_what_is_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("eval", str(tmp_path / "empty"))
    assert result.exit_code == 2 and "no model at" in result.output
    missing_run = invoke("eval", "0123456789ab", "--store", str(tmp_path))
    assert missing_run.exit_code == 2 and "no run 0123456789ab" in missing_run.output
