"""Cross-check: a run's `eval/lm_eval_command.txt`, run with the plain `lm_eval` CLI from any folder, gives the
avg@k brts recorded (and the very same samples). Slow: each CLI call indexes all of lm-eval's tasks first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brts.cli import app


@pytest.mark.slow
def test_the_recorded_command_reproduces_the_recorded_numbers_from_any_folder(
        tmp_path: Path, tiny_spec_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`brts exp run` with a store relative to where it was launched; the run folder then moves, and its
    `sh .../eval/lm_eval_command.txt` runs from an unrelated folder."""
    launch = tmp_path / "launch"
    launch.mkdir()
    monkeypatch.chdir(launch)
    result = CliRunner().invoke(app, ["exp", "run", str(tiny_spec_file), "--store", "store", "--set", "arms=[opd]",
                                      "--set", "eval={tasks: [brts_synthetic_easy, brts_synthetic_medium], k: 3, "
                                      "problems: 5, max_new_tokens: 24}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [run] = [p.parent for p in (launch / "store").glob("tiny/*/record.json")]
    record = json.loads((run / "record.json").read_text())
    moved = tmp_path / "moved" / run.name
    shutil.move(run, moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # this environment's lm_eval
    env = {**os.environ, "PATH": path, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(["sh", str(moved / "eval" / "lm_eval_command.txt")], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(elsewhere.iterdir()), "the replay writes into the run folder, not the current one"
    for task, recorded in record["eval"].items():
        [results] = (moved / "eval" / "tasks" / task / "lm_eval_cli").glob("*/results_*.json")
        assert 100 * json.loads(results.read_text())["results"][task]["avg@k,boxed"] == pytest.approx(recorded)
        [samples] = results.parent.glob(f"samples_{task}_*.jsonl")
        theirs = sorted((json.loads(x) for x in samples.read_text().splitlines()), key=lambda s: s["doc_id"])
        ours = [json.loads(x) for x in (moved / "eval" / "tasks" / task / "samples.jsonl").read_text().splitlines()]
        assert [s["resps"] for s in theirs] == [s["resps"] for s in sorted(ours, key=lambda s: s["doc_id"])]
