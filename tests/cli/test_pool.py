"""`brts pool fill|show|clear` and `pool.prefill` through the CLI on the tiny models."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from brts.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_fill_then_runs_draw_nothing_show_and_clear(tmp_path, tiny_spec_file):
    store = str(tmp_path / "store")
    small = ["--set", "train.steps=2", "--set", "arms=[opd, brts]", "--store", store]
    filled = invoke("pool", "fill", str(tiny_spec_file), *small)
    assert filled.exit_code == 0, filled.output
    samples = int(re.search(r"(\d+) distinct teacher samples", filled.output).group(1))
    assert samples >= 2 * 2 * 4  # two steps of two prompts, N = 4 (and any hinted retries)

    shown = invoke("pool", "show", "--store", store)
    assert shown.exit_code == 0 and f"│ {samples} " in shown.output

    ran = invoke("exp", "run", str(tiny_spec_file), *small)
    assert ran.exit_code == 0, ran.output
    last = [json.loads(p.read_text().splitlines()[-1]) for p in (tmp_path / "store/tiny").glob("*/metrics.jsonl")]
    # opd uses no teacher samples; brts finds every one of its samples in the pool.
    assert sorted((m["teacher/tokens_generated"], m["teacher/tokens_from_pool"] > 0) for m in last) == [
        (0, False), (0, True)]

    cleared = invoke("pool", "clear", "--store", store, "--yes")
    assert cleared.exit_code == 0 and f"deleted {samples} samples" in cleared.output
    assert "│ 0 " in invoke("pool", "show", "--store", store).output


def test_fill_refuses_a_disabled_pool_and_show_without_pool(tmp_path, tiny_spec_file):
    result = invoke("pool", "fill", str(tiny_spec_file), "--set", "pool.enabled=false", "--store", str(tmp_path))
    assert result.exit_code == 2 and "pool.enabled is false" in result.output
    assert "no pool at" in invoke("pool", "show", "--store", str(tmp_path / "none")).output


def test_exp_run_with_prefill_draws_every_teacher_sample_before_training(tmp_path, tiny_spec_file):
    store = tmp_path / "store"
    result = invoke("exp", "run", str(tiny_spec_file), "--set", "train.steps=2", "--set", "arms=[brts]",
                    "--set", "pool.prefill=true", "--store", str(store))
    assert result.exit_code == 0, result.output
    assert "pre-filling teacher samples" in result.output
    (metrics,) = store.glob("tiny/*/metrics.jsonl")
    last = json.loads(metrics.read_text().splitlines()[-1])
    assert last["teacher/tokens_generated"] == 0 and last["teacher/tokens_from_pool"] > 0


def test_show_and_clear_work_on_a_damaged_pool(tmp_path):
    store = tmp_path / "store"
    pool = store / ".pool" / "teacher-samples.sqlite"
    pool.parent.mkdir(parents=True)
    pool.write_bytes(b"garbage" * 500)
    shown = invoke("pool", "show", "--store", str(store))
    assert shown.exit_code == 1
    assert len(shown.output.strip().splitlines()) == 1
    assert str(pool) in "".join(shown.output.split()) and "pool clear" in shown.output
    cleared = invoke("pool", "clear", "--store", str(store), "--yes")
    assert cleared.exit_code == 0 and "moved aside" in cleared.output
    [moved] = (pool.parent / ".quarantine").glob("*/teacher-samples.sqlite")
    assert moved.read_bytes() == b"garbage" * 500
    assert "no pool at" in invoke("pool", "show", "--store", str(store)).output
