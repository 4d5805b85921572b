"""Runs stopped from outside resume where they stopped: `brts exp run` killed (SIGKILL, SIGTERM) and run again
finishes the remaining work and nothing twice; a Slurm job preempted mid-run requeues and resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brts.runs.plan import plan
from brts.spec import load_spec
from tests.conftest import SMALL_JOBS, tiny_spec_text


def _brts(*args, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "brts.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _table(stdout: str) -> str:
    """stdout without its progress lines (stamped HH:MM:SS: stdout is not a terminal here)."""
    return "\n".join(line for line in stdout.splitlines() if not re.match(r"\d\d:\d\d:\d\d ", line))


def _mid_second_run(store) -> bool:
    """One run finished and another running past its first checkpoint."""
    records = {p.parent: json.loads(p.read_text())["status"] for p in store.glob("tiny/*/record.json")}
    running = [run for run, status in records.items() if status == "running"]
    return "finished" in records.values() and any(list(run.glob("checkpoints/step_*/checkpoint.pt")) for run in running)


def test_sigkill_then_rerun_finishes_and_matches_an_uninterrupted_grid(tmp_path, tiny_models):
    spec = tmp_path / "grid.yaml"
    spec.write_text(tiny_spec_text(tiny_models).replace("steps: 4,", "steps: 40,"))
    killed_store, clean_store = tmp_path / "killed", tmp_path / "clean"

    proc = _brts("exp", "run", str(spec), "--store", str(killed_store))
    deadline = time.time() + 240
    while time.time() < deadline and not _mid_second_run(killed_store):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    statuses = sorted(json.loads(p.read_text())["status"] for p in killed_store.glob("tiny/*/record.json"))
    assert statuses == ["finished", "running"]

    rerun = _brts("exp", "run", str(spec), "--store", str(killed_store))
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "1 cached" in err and "1 ran" in err
    clean = _brts("exp", "run", str(spec), "--store", str(clean_store))
    clean_out, clean_err = clean.communicate(timeout=300)
    assert clean.returncode == 0, clean_err
    assert _table(out) == _table(clean_out)  # the same final table

    for run in (record.parent for record in killed_store.glob("tiny/*/record.json")):
        twin = clean_store / "tiny" / run.name
        strip = lambda p: [{k: v for k, v in json.loads(x).items() if not k.startswith("time/")}  # noqa: E731
                           for x in p.read_text().splitlines()]
        assert strip(run / "metrics.jsonl") == strip(twin / "metrics.jsonl")


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def test_sigterm_stops_the_parallel_workers_too(tmp_path, tiny_models):
    spec = tmp_path / "grid.yaml"
    spec.write_text(tiny_spec_text(tiny_models).replace("steps: 4,", "steps: 200,"))
    store = tmp_path / "store"
    proc = _brts("exp", "run", str(spec), "--store", str(store), "--workers", "2")
    deadline = time.time() + 240
    while time.time() < deadline and not any(
        json.loads(p.read_text())["status"] == "running" for p in store.glob("tiny/*/record.json")
    ):
        time.sleep(0.05)
    children = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                    text=True).stdout.split()]
    assert children
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "run the same command again" in err
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(pid) for pid in children):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in children)


@pytest.mark.slow
def test_a_preempted_local_job_requeues_and_resumes_from_its_checkpoint(tmp_path, tiny_spec_file):
    """Preemption for real: SIGUSR2 to a running submitit job after its step-2 checkpoint; the job requeues
    and the run finishes with the metrics of an uninterrupted run."""
    submitit = pytest.importorskip("submitit")
    import json
    import signal
    import time

    import psutil

    from brts.models.load import load_pair
    from brts.runs.cluster import RunJob
    from brts.tasks.registry import make_task
    from brts.training.trainer import Trainer

    (planned,) = plan(load_spec(str(tiny_spec_file), [*SMALL_JOBS, "arms=[opd]", "train.steps=40",
                                                      "train.checkpoint_every=2"]))
    executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="local")
    executor.update_parameters(timeout_min=20)
    job = executor.submit(RunJob(planned, tmp_path / "store"))
    folder = tmp_path / "store" / planned.experiment / planned.run_id
    deadline = time.time() + 300
    while not (folder / "checkpoints" / "step_000002").exists():
        assert time.time() < deadline and not job.done(), "the job never reached its first checkpoint"
        time.sleep(0.1)
    for task in psutil.Process(job._process.pid).children(recursive=True):  # the job's python process
        task.send_signal(signal.SIGUSR2)
    status, record = job.result()
    assert status == "done" and record["status"] == "finished", record.get("error")
    assert record["attempts"] == 2  # preempted once, requeued, resumed

    reference = tmp_path / "reference"
    reference.mkdir()
    expected = Trainer(planned.config, load_pair(planned.config), make_task(planned.config.task), reference).run()
    got = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    drop_time = lambda log: [{k: v for k, v in m.items() if not k.startswith("time/")} for m in log]  # noqa: E731
    assert drop_time(got) == drop_time(expected)


def _counts(err: str) -> str:
    """The counts line of `brts exp run` ("1 ran here, 1 cached")."""
    return next(line for line in err.splitlines() if re.match(r"\d+ (ran|cached|evaluated|running|failed)", line))


def test_concurrent_invocations_wait_for_each_other_and_say_who_ran_what(tmp_path, tiny_models):
    """Three real `brts exp run`s of one grid: A holds a run (stopped mid-training with SIGSTOP), C (--no-wait) runs
    the other run and reports A's as running elsewhere, B waits for A; every run trains once, and each process's
    counts say who ran what, with the full table at the end."""
    spec = tmp_path / "grid.yaml"
    spec.write_text(tiny_spec_text(tiny_models).replace("steps: 4,", "steps: 12,"))
    store = tmp_path / "store"
    a = _brts("exp", "run", str(spec), "--store", str(store))
    deadline = time.time() + 240
    while time.time() < deadline and not any(
        list(p.parent.glob("checkpoints/step_*/checkpoint.pt")) for p in store.glob("tiny/*/record.json")
    ):
        time.sleep(0.05)
    a.send_signal(signal.SIGSTOP)  # A holds its first run's lock, mid-training
    try:
        c = _brts("exp", "run", str(spec), "--store", str(store), "--no-wait")
        c_out, c_err = c.communicate(timeout=300)
        b_log = tmp_path / "b.txt"
        with b_log.open("w") as log:
            b = subprocess.Popen([sys.executable, "-m", "brts.cli", "exp", "run", str(spec), "--store", str(store)],
                                 env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}, text=True, stdout=log,
                                 stderr=subprocess.PIPE)
        deadline = time.time() + 240
        while time.time() < deadline and "waiting for it to finish" not in b_log.read_text():
            assert b.poll() is None, b.stderr.read() if b.stderr else ""
            time.sleep(0.1)
    finally:
        a.send_signal(signal.SIGCONT)
    a_out, a_err = a.communicate(timeout=300)
    _, b_err = b.communicate(timeout=300)
    b_out = b_log.read_text()

    assert c.returncode == 1, c_err
    assert _counts(c_err) == "1 ran here, 1 running in another process", c_err
    assert f"running in another process (pid {a.pid})" in c_err
    assert a.returncode == 0, a_err
    assert _counts(a_err) == "1 ran here, 1 ran in another process", a_err
    assert b.returncode == 0, b_err
    assert _counts(b_err) == "1 ran in another process, 1 cached", b_err
    assert "is running in another process; waiting for it to finish" in b_out
    # The full table everywhere: both arms in C's (A's run still unfinished there), equal ones in A's and B's.
    assert all(f"│ {arm} " in c_out for arm in ("opd", "brts"))
    assert _table(a_out) == _table(b_out) and "–" not in _table(a_out).split("reference)")[-1]
    for record in store.glob("tiny/*/record.json"):  # each run trained once, by one process
        data = json.loads(record.read_text())
        assert data["status"] == "finished" and data["attempts"] == 1
        steps = [json.loads(line)["step"] for line in (record.parent / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(13))
