"""`brts exp` end to end on the tiny models: run, cache, status, and one-line errors with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brts.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_exp_run_trains_then_reuses_finished_runs(tmp_path, tiny_spec_file):
    store = tmp_path / "store"
    first = invoke("exp", "run", str(tiny_spec_file), "--store", str(store))
    assert first.exit_code == 0, first.output
    assert "2 ran" in first.output and "opd" in first.output and "brts" in first.output
    records = [json.loads(p.read_text()) for p in store.glob("tiny/*/record.json")]
    assert sorted(r["status"] for r in records) == ["finished", "finished"]
    assert "teacher (reference)" in first.output and "student at start (reference)" in first.output
    for role in ("teacher", "student_start"):
        reference = json.loads((store / "tiny" / "reference" / role / "record.json").read_text())
        assert reference["status"] == "finished" and set(reference["eval"]) == set(records[0]["eval"])
    stamps = {p: p.stat().st_mtime_ns for p in store.glob("tiny/*/metrics.jsonl")}

    second = invoke("exp", "run", str(tiny_spec_file), "--store", str(store))
    assert second.exit_code == 0 and "2 cached" in second.output
    assert {p: p.stat().st_mtime_ns for p in store.glob("tiny/*/metrics.jsonl")} == stamps
    table = lambda out: out[out.index("tiny") :]  # noqa: E731
    assert table(second.output) == table(first.output)

    status = invoke("exp", "status", str(tiny_spec_file), "--store", str(store))
    assert status.exit_code == 0 and status.output.count("finished") == 2


BAD_SPECS = {
    "malformed": "arms: [opd\nseeds: [0]\n",
    "not_mapping": "- opd\n- brts\n",
    "unknown_key": "arms: [opd]\nseeds: [0]\ntrian: {}\n",
    "wrong_type": "arms: [opd]\nseeds: [0]\ntrain: {steps: many}\n",
    "empty_seeds": "arms: [opd]\nseeds: []\n",
    "n_below_1": "arms: [{name: b, preset: brts, set: {teacher_samples: 0}}]\nseeds: [0]\n",
    "negative_lambda": "arms: [brts]\nseeds: [0]\nmethod: {aux_weight: -0.1}\n",
    "chunk_below_1": "arms: [opd]\nseeds: [0]\ntrain: {logprob_chunk: 0}\n",
    "unknown_arm": "arms: [best_arm]\nseeds: [0]\n",
    "unknown_extends": "extends: nowhere\narms: [opd]\nseeds: [0]\n",
    "python_tag": "arms: !!python/object/apply:os.system ['true']\nseeds: [0]\n",
    "missing_model": "arms: [opd]\nseeds: [0]\nmodels: {teacher: ./no/such/folder}\n",
    "not_a_model_folder": "arms: [opd]\nseeds: [0]\nmodels: {teacher: /}\n",
    "shared_preset_field": "arms: [first_rollout]\nseeds: [0]\nmethod: {teacher_samples: 4}\n",
    "aux_weight_inf": "arms: [brts]\nseeds: [0]\nmethod: {aux_weight: .inf}\n",
    "aux_weight_1e400": "arms: [brts]\nseeds: [0]\nmethod: {aux_weight: 1e400}\n",
    "teacher_temperature_inf": "arms: [brts]\nseeds: [0]\nmethod: {teacher_temperature: .inf}\n",
    "eval_seed_negative": "arms: [opd]\nseeds: [0]\neval: {seed: -1}\n",
    "eval_seed_1e20": "arms: [opd]\nseeds: [0]\neval: {seed: 1.0e+20}\n",
    "teacher_samples_true": "arms: [{name: b, preset: brts, set: {teacher_samples: true}}]\nseeds: [0]\n",
    "unknown_lm_eval_task": "arms: [opd]\nseeds: [0]\neval: {tasks: [gsm8kk]}\n",
    "model_is_a_file": "arms: [opd]\nseeds: [0]\nmodels: {teacher: /etc/passwd}\n",
    "markup_in_a_value": "name: 'a[/x]'\narms: [opd]\nseeds: [0]\n",
    "markup_and_emoji_in_a_value": "arms: [opd]\nseeds: [0]\ntrain: {steps: '[bold]x[/bold] :x:'}\n",
    "integer_of_5001_digits": f"arms: [opd]\nseeds: [0]\ntrain: {{steps: {'9' * 5001}}}\n",
    "seed_of_5001_digits": f"arms: [opd]\nseeds: [-{'1' * 5000}]\n",
    "integer_of_101_digits_in_a_free_mapping": f"arms: [opd]\nseeds: [0]\nresources: {{slurm: {{x: {'1' * 101}}}}}\n",
}


@pytest.mark.parametrize("command", ["show", "run"])
@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_is_one_line_exit_2_nothing_written(tmp_path, command, case):
    spec = tmp_path / f"{case}.yaml"
    spec.write_text(BAD_SPECS[case])
    store = tmp_path / "store"
    result = invoke("exp", command, str(spec), "--store", str(store))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and f"{case}.yaml" in lines[0]
    assert "Traceback" not in result.output
    assert not store.exists()


@pytest.mark.parametrize(("item", "literal"), [
    ("method.aux_weight=.inf", "got inf"),
    ("description=[/x]", '["/x"]'),
    ("train.steps=[bold]", '["bold"]'),
    ("train.steps=:x:", ":x:"),
    ("train.steps='[red]n[/red] :x:'", "'[red]n[/red] :x:'"),
])
def test_user_text_in_an_error_is_printed_as_it_is(tmp_path, item, literal):
    """Markup and emoji codes in a value are the user's text: printed literally, one line, exit 2 (show and run)."""
    spec = tmp_path / "plain.yaml"
    spec.write_text("arms: [brts]\nseeds: [0]\n")
    for command in ("show", "run"):
        result = invoke("exp", command, str(spec), "--set", item, "--store", str(tmp_path / "store"))
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and literal in lines[0], lines
        assert "❌" not in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("digits", [50, 5001])
def test_an_integer_beyond_every_range_is_one_line_from_text_of_any_length(tmp_path, digits):
    spec = tmp_path / "plain.yaml"
    spec.write_text("arms: [brts]\nseeds: [0]\n")
    items = [f"train.steps={'9' * digits}", f"seeds=[{'9' * digits}]"]
    for item in items + ([f"method.aux_weight={'9' * digits}"] if digits > 4300 else []):  # 50 digits: a real number
        result = invoke("exp", "show", str(spec), "--set", item)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
        assert len(lines[0]) < 400 and ("5001 characters" in lines[0] if digits == 5001 else "expected" in lines[0])


@pytest.mark.parametrize("where", ["eval.data_dir", "task.train"])
@pytest.mark.parametrize("size", ["long problem", "10 MB problem"])
def test_a_problem_too_large_is_refused_by_exp_show_and_run_naming_file_and_line(tmp_path, where, size):
    """Before anything runs (not in the tokenizer after training): exit 2, one line, the file and the line."""
    data = tmp_path / "data"
    data.mkdir()
    problem = "x" * (30_000 if size == "long problem" else 10 << 20)
    rows = [{"id": "a", "problem": "1+1?", "answer": "2"}, {"id": "b", "problem": problem, "answer": "3"}]
    path = data / ("aime24.jsonl" if where == "eval.data_dir" else "train.jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "data_spec.yaml"
    spec.write_text("arms: [opd]\nseeds: [0]\n" + (f"eval: {{tasks: [brts_aime24], data_dir: {data}}}\n"
                    if where == "eval.data_dir" else f"task: {{name: math, train: {path}}}\neval: {{tasks: [brts_aime24]}}\n"))
    for command in ("show", "run"):
        result = invoke("exp", command, str(spec), "--store", str(tmp_path / "store"))
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1, result.output[-2000:]
        assert f"{path}: line 2" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "store").exists()


def test_exp_show_marks_fields_off_the_preset_and_plans_power_from_a_previous_report(tmp_path, monkeypatch):
    spec = tmp_path / "own.yaml"
    spec.write_text("name: own\narms: [{name: first_rollout, preset: first_rollout, set: {teacher_samples: 4}}, brts]\n"
                    "seeds: [0, 1, 2, 3, 4, 5]\nmethod: {aux_weight: 0.5}\neval: {problems: 100}\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("exp", "show", str(spec))
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())  # rich wraps the table's cells
    assert "teacher_samples=4*" in text and "aux_weight=0.5*" in text and "alignment=first," in text
    assert "no previous report" in result.output
    report = tmp_path / "reports" / "own"
    report.mkdir(parents=True)
    report.joinpath("table.csv").write_text(
        "kind,arm,task,seeds,problems,diff,var_seed,var_problem,var_residual\n"
        "arm,brts,brts_synthetic_hard,3,100,3.8,40.0,20.0,900.0\n"
        "arm,opd,brts_synthetic_hard,3,100,,,,\n")
    result = invoke("exp", "show", str(spec))
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("│ brts") and "hard" in line)
    assert "6 x 100" in line and "+3.8" in line and "±" in line, result.output
    report.joinpath("table.csv").write_text(  # seeds that disagree wildly: no difference on 0-100 is detectable
        "kind,arm,task,seeds,problems,diff,var_seed,var_problem,var_residual\n"
        "arm,brts,brts_synthetic_hard,3,100,3.8,90000.0,20.0,900.0\n")
    result = invoke("exp", "show", str(spec))
    text = "".join(result.output.split())
    assert result.exit_code == 0 and "notdetectable" in text, result.output


def test_non_utf8_and_cyclic_extends(tmp_path):
    bad = tmp_path / "latin.yaml"
    bad.write_bytes("description: caf\xe9\narms: [opd]\nseeds: [0]\n".encode("latin-1"))
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\narms: [opd]\nseeds: [0]\n")
    b.write_text("extends: a.yaml\n")
    for path in (bad, a):
        result = invoke("exp", "show", str(path))
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["show", "run"])
def test_unwritable_store_is_refused(tmp_path, tiny_spec_file, command):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = invoke("exp", command, str(tiny_spec_file), "--store", str(blocker / "runs"))
    assert result.exit_code == 2 and "not writable" in result.output


@pytest.mark.parametrize("command", ["show", "run"])  # show checks a pair of local folders too (nothing downloaded)
def test_mismatched_tokenizers_are_refused(tmp_path, tiny_models, command):
    from transformers import AutoTokenizer

    other = tmp_path / "other-student"
    model_dir = Path(tiny_models.student_dir)
    other.mkdir()
    for f in model_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    config = json.loads((other / "config.json").read_text())
    config["vocab_size"] += 3
    (other / "config.json").write_text(json.dumps(config))
    assert AutoTokenizer.from_pretrained(other) is not None
    spec = tmp_path / "mismatch.yaml"
    spec.write_text(f"models: {{teacher: {tiny_models.teacher_dir}, student: {other}}}\narms: [opd]\nseeds: [0]\n")
    result = invoke("exp", command, str(spec), "--store", str(tmp_path / "s"))
    assert result.exit_code == 2, result.output
    assert "vocab" in result.output and len(result.output.strip().splitlines()) == 1


def test_exp_run_into_a_file_writes_progress_lines_while_it_runs(tmp_path, tiny_spec_file):
    """`brts exp run ... > log.txt`: nobody watches, so plain progress lines go to the file as the work goes on,
    not only when it ends."""
    import os
    import subprocess
    import sys
    import time

    log = tmp_path / "log.txt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("BRTS_PROGRESS", None)
    brts = Path(sys.executable).parent / "brts"
    with open(log, "w") as out:
        proc = subprocess.Popen([str(brts), "exp", "run", str(tiny_spec_file), "--store", str(tmp_path / "store")],
                                stdout=out, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        sizes_while_running = []
        while proc.poll() is None:
            sizes_while_running.append(log.stat().st_size)
            time.sleep(0.1)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.returncode == 0, stderr[-2000:]
    grew = [b for a, b in zip(sizes_while_running, sizes_while_running[1:], strict=False) if b > a]
    assert len(grew) >= 2, "the file grew at least twice before the command ended"
    text = log.read_text()
    lines = [line for line in text.splitlines() if line[:2].isdigit() and line[2] == ":"]  # HH:MM:SS stamped
    assert any("runs (0 cached): 0/2 runs" in line for line in lines), text
    for arm in ("opd", "brts"):
        assert any(f"{arm} seed 0: train 0/4 steps" in line for line in lines), text
        assert any(f"{arm} seed 0: eval 4/4 steps" in line for line in lines), text
        assert any(f"{arm} seed 0: ran after" in line for line in lines), text
    assert any("reference models: evaluating the reference teacher" in line for line in lines), text
    before_table = text[:text.index(lines[-1])]
    assert "\x1b[" not in before_table and "━" not in before_table, "no terminal bars or colour codes in a file"
    assert "tiny" in text[text.index(lines[-1]):], "the results table follows the progress lines"
