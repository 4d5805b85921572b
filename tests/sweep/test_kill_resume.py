"""Interrupt `brts sweep run` (SIGINT, then SIGKILL) mid-trial and rerun it: exactly the budget, nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tests.sweep.conftest import SWEEP, write_sweep


def _brts(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    # A shell's background job (`cmd &`, as CI may run the tests) ignores SIGINT and its children inherit that;
    # restore the default so the child's Python turns SIGINT into KeyboardInterrupt as a terminal's would.
    return subprocess.Popen([sys.executable, "-m", "brts.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _records(runs: Path) -> dict[Path, dict]:
    return {p.parent: json.loads(p.read_text()) for p in runs.glob("*/record.json")}


def _checkpointed(run: Path) -> list[Path]:
    return sorted(run.glob("checkpoints/step_*/checkpoint.pt"))


def _wait(condition, proc: subprocess.Popen[str], seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None and not condition():
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()


def test_interrupted_and_killed_sweeps_resume_to_exactly_the_budget(tmp_path, tiny_models):
    sweep = write_sweep(tmp_path, tiny_models, SWEEP.replace("grid: [0.1, 0.5]", "grid: [0.5]").replace(
        "trials: 4", "trials: 2"))
    (tmp_path / "tiny.yaml").write_text((tmp_path / "tiny.yaml").read_text().replace("steps: 4,", "steps: 40,"))
    store = tmp_path / "store"
    runs = store / "sweeps" / "sweep"
    args = ("sweep", "run", str(sweep), "--store", str(store))

    def mid_first_trial() -> bool:
        # While it trains (a wide window), not while its final evaluation runs.
        return any(r["status"] == "running" and _checkpointed(p) and not (p / "final").exists()
                   for p, r in _records(runs).items())

    first = _brts(*args)
    _wait(mid_first_trial, first)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130 and "interrupted" in err, err

    def mid_second_trial() -> bool:
        records = _records(runs)
        statuses = [r["status"] for r in records.values()]
        return "finished" in statuses and any(
            r["status"] == "running" and _checkpointed(p) and not (p / "final").exists() for p, r in records.items())

    second = _brts(*args)
    _wait(mid_second_trial, second)
    second.send_signal(signal.SIGKILL)
    second.wait()
    # Until the next `sweep run` fails it, the killed trial is RUNNING in the study: status says it is dead.
    status = _brts("sweep", "status", str(sweep), "--store", str(store))
    status_out, status_err = status.communicate(timeout=120)
    assert status.returncode == 0, status_err
    assert "1 dead" in status_out and "dead: trial 2" in status_out and "running on" not in status_out, status_out
    (killed_run,) = [p for p, r in _records(runs).items() if r["status"] == "running"]
    kept_step = int(_checkpointed(killed_run)[-1].parent.name.removeprefix("step_"))
    before = [line for line in (killed_run / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["step"] <= kept_step]

    third = _brts(*args)
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    # notes go with the progress lines (stdout, not a terminal here); the summary to stderr
    assert "left running by a stopped worker" in out and "2/2 completed trials" in err

    study = optuna.load_study(study_name="sweep",
                              storage=JournalStorage(JournalFileBackend(str(runs / "study.log"))))
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert study.trials[0].user_attrs["error"].startswith("interrupted")
    for failed, retry in ((0, 1), (2, 3)):
        assert study.trials[retry].user_attrs["retry_of"] == failed
        assert study.trials[retry].params == study.trials[failed].params
        assert study.trials[retry].user_attrs["run_id"] == study.trials[failed].user_attrs["run_id"]

    records = _records(runs)
    assert len(records) == 2 and all(r["status"] == "finished" for r in records.values())
    assert all(r["attempts"] == 2 for r in records.values())  # each resumed once, none trained from scratch twice
    for run in records:
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(41))
    # The killed run resumed from its checkpoint: the lines up to it (with their timings) were not recomputed.
    assert (killed_run / "metrics.jsonl").read_text().splitlines()[: len(before)] == before
