"""The teacher producer: what it draws ahead (a pure schedule), that it draws exactly the samples the trainer will
ask for, and that runs have the same results with it, without it, and with either side killed mid-run."""

from __future__ import annotations

import json
import threading

import pytest

from brts.errors import UserError
from brts.rollout.pool import SamplePool
from brts.runs.executor import execute
from brts.runs.plan import plan
from brts.runs.prefill import RunDemand, draw_steps, load_teacher_side
from brts.runs.producer import ProducerStatus, ahead, last_logged_step, produce, producer_groups, producers
from brts.spec import load_spec
from brts.store import RunStore

COST = ("teacher/tokens_generated", "teacher/tokens_from_pool")


# --- the schedule ---------------------------------------------------------------------------------------------


def test_a_run_not_started_gets_its_first_steps_and_a_running_one_the_steps_after_its_current_one():
    totals = {"a": 10, "b": 10}
    # b's trainer is on step 4 (3 finished): 4 is left to it; 5 and 6 are the 2 steps after it.
    assert ahead(totals, {"a": None, "b": 3}, {}, 2, 10) == [("a", 1), ("b", 5), ("a", 2), ("b", 6)]
    assert ahead(totals, {"a": None, "b": 3}, {}, 2, 3) == [("a", 1), ("b", 5), ("a", 2)]


def test_nothing_past_the_lookahead_the_last_step_or_what_is_drawn_already():
    assert ahead({"a": 10}, {"a": 2}, {"a": 5}, 3, 10) == [("a", 6)]
    assert ahead({"a": 10}, {"a": 2}, {"a": 6}, 3, 10) == []  # backpressure: 3 after step 3 is 6
    assert ahead({"a": 5}, {"a": 3}, {}, 8, 10) == [("a", 5)]
    assert ahead({"a": 5}, {"a": 4}, {}, 8, 10) == []  # on its last step
    assert ahead({"a": 10}, {"a": 7}, {"a": 3}, 2, 10) == [("a", 9), ("a", 10)]  # overtaken: from its step on
    assert ahead({"a": 10}, {"a": None}, {"a": 2}, 2, 10) == []


def test_the_nearest_steps_come_first_across_runs_and_at_most_the_limit():
    got = ahead({"a": 20, "b": 20, "c": 20}, {"a": 0, "b": 5, "c": 9}, {}, 4, 4)
    assert got == [("a", 2), ("b", 7), ("c", 11), ("a", 3)]


def test_the_last_logged_step_reads_the_tail_and_leaves_a_torn_line_out(tmp_path):
    log = tmp_path / "metrics.jsonl"
    assert last_logged_step(log) is None
    log.write_text("")
    assert last_logged_step(log) is None
    log.write_text("".join(json.dumps({"step": s, "pad": "x" * 300}) + "\n" for s in range(400)))
    assert last_logged_step(log) == 399
    with log.open("a") as f:
        f.write('{"step": 400, "loss')  # a write cut short
    assert last_logged_step(log) == 399


def test_a_producer_without_the_pool_is_refused_in_one_line(tiny_spec_file):
    with pytest.raises(UserError) as caught:
        load_spec(str(tiny_spec_file), ["pool.enabled=false", "pool.producer={threads: 1}"])
    assert "pool.producer" in str(caught.value) and "pool.enabled: true" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_producer_device_is_cpu_cuda_or_cuda_n_and_anything_else_one_line(tiny_spec_file):
    for device in ("cpu", "cuda", "cuda:1"):
        spec = load_spec(str(tiny_spec_file), [f"pool.producer={{device: '{device}'}}"])
        assert spec.pool.producer is not None and spec.pool.producer.device == device
    with pytest.raises(UserError) as caught:
        load_spec(str(tiny_spec_file), ["pool.producer={device: gpu1}"])
    assert "pool.producer.device" in str(caught.value) and "\n" not in str(caught.value)


def test_the_teacher_that_draws_for_a_trainer_runs_on_the_trainers_device_unless_told(tiny_spec_file, monkeypatch):
    """A pre-fill or producer teacher on the CPU beside a GPU trainer would key samples with other bits (and draw a
    7B teacher's on the CPU): it goes where the trainer's models go (`default_device`), or to the producer's
    `device`."""
    import torch

    from brts.runs import prefill

    config = plan(load_spec(str(tiny_spec_file), ["arms=[brts]"]))[0].config
    assert prefill.default_device() == torch.device("cpu")  # this machine: no GPU
    monkeypatch.setattr(prefill, "default_device", lambda: torch.device("meta"))  # stands in for a trainer's GPU
    assert next(load_teacher_side(config, None).sampler.generator.model.parameters()).device.type == "meta"
    assert next(load_teacher_side(config, None, device="cpu").sampler.generator.model.parameters()).device.type == "cpu"


def test_runs_share_one_producer_per_teacher_and_opd_needs_none(tiny_spec_file):
    planned = plan(load_spec(str(tiny_spec_file), ["arms=[opd, brts, first_rollout]", "seeds=[0, 1]",
                                                   "pool.producer={lookahead_steps: 2}"]))
    [group] = producer_groups(planned)
    assert sorted((p.arm, p.seed) for p in group) == [("brts", 0), ("brts", 1), ("first_rollout", 0),
                                                       ("first_rollout", 1)]
    assert producer_groups(plan(load_spec(str(tiny_spec_file), ["arms=[brts]"]))) == []  # not asked for


# --- what it draws --------------------------------------------------------------------------------------------


def _keys(path):
    import sqlite3

    with sqlite3.connect(path) as db:
        return {k for (k,) in db.execute("SELECT key FROM samples")}


def test_it_draws_exactly_the_samples_of_the_steps_ahead_of_the_trainer(tmp_path, tiny_spec_file):
    [planned] = plan(load_spec(str(tiny_spec_file), ["arms=[brts]", "train.steps=8"]))
    pool = SamplePool(tmp_path / "pool.sqlite")
    side = load_teacher_side(planned.config, pool)
    stop, seen = threading.Event(), []

    def report(status: ProducerStatus) -> None:
        seen.append(status.steps)
        if status.steps >= 2:
            stop.set()

    # The trainer finished step 2 and is on step 3: the producer draws steps 4 and 5, and nothing more.
    status = produce([planned], side, lambda: {planned.run_id: 2}, 2, stop, report, batch_steps=1, poll_s=0.01)
    assert status.done and status.steps == 2 and status.samples > 0 and seen[:2] == [1, 2]
    expected = RunDemand(planned)
    offline = load_teacher_side(planned.config, None)
    draw_steps([(expected, 4), (expected, 5)], offline.sampler, offline.task, offline.encode)
    assert _keys(tmp_path / "pool.sqlite") == set(expected.keys)
    assert status.samples == len(expected.keys) and status.tokens == sum(expected.tokens)
    # Every run done: it stops by itself.
    again = produce([planned], side, lambda: {planned.run_id: 8}, 2, threading.Event(), lambda _: None)
    assert again.done and again.steps == 0


# --- results, with either side killed ----------------------------------------------------------------------------


def _results(store, planned):
    log = [json.loads(line) for line in store.run(planned).metrics_path.read_text().splitlines()]
    return [{k: v for k, v in m.items() if not k.startswith("time/") and k not in COST} for m in log]


def _weights(store, planned):
    from brts.store.files import sha256_file

    final = store.run(planned).final
    return {p.name: sha256_file(p) for p in sorted(final.glob("*.safetensors"))}


def test_same_results_and_weights_with_and_without_a_producer_even_one_killed_mid_run(tmp_path, tiny_spec_file):
    """A producer ahead of a 24-step run, killed once the trainer is past step 3: the run finishes with the metrics
    and final weights of a run without a producer, having taken what the producer drew from the pool."""
    import time

    overrides = ["arms=[brts]", "train.steps=24", "train.max_new_tokens=16"]
    [planned] = plan(load_spec(str(tiny_spec_file), [*overrides, "pool.producer={lookahead_steps: 6}"]))
    [alone] = plan(load_spec(str(tiny_spec_file), overrides))
    assert planned.run_id == alone.run_id  # the producer is not in the run id

    with_store, alone_store = RunStore(tmp_path / "with"), RunStore(tmp_path / "alone")
    statuses: list[ProducerStatus] = []
    killed: list[int] = []
    with producers([planned], with_store.root, statuses.append) as [child]:
        deadline = time.monotonic() + 120
        while not statuses and time.monotonic() < deadline:  # it has drawn the run's first steps
            time.sleep(0.05)
        assert statuses and statuses[0].steps > 0

        def kill_mid_run() -> None:
            metrics = with_store.run(planned).metrics_path
            while (last_logged_step(metrics) or 0) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            killed.append(child.pid)
            child.kill()

        killer = threading.Thread(target=kill_mid_run)
        killer.start()
        assert [o.action for o in execute([planned], with_store)] == ["ran"]
        killer.join()
    assert killed and child.exitcode == -9
    assert [o.action for o in execute([alone], alone_store)] == ["ran"]
    assert _results(with_store, planned) == _results(alone_store, alone)
    assert _weights(with_store, planned) == _weights(alone_store, alone) != {}
    last = json.loads(with_store.run(planned).metrics_path.read_text().splitlines()[-1])
    alone_last = json.loads(alone_store.run(alone).metrics_path.read_text().splitlines()[-1])
    # What the producer drew the run took from the pool; the rest, after the kill, it drew itself.
    assert last["teacher/tokens_from_pool"] > 0 and last["teacher/tokens_generated"] > 0
    assert sum(last[k] for k in COST) == alone_last["teacher/tokens_generated"]
    assert SamplePool(with_store.pool_file(planned.pool)).stats().samples == \
        SamplePool(alone_store.pool_file(alone.pool)).stats().samples


def _children(pid: int) -> list[int]:
    from pathlib import Path

    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, IndexError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_a_trainer_killed_mid_run_resumes_to_the_results_of_an_uninterrupted_run(tmp_path, tiny_models):
    """`brts exp run` with a producer, SIGKILLed past a checkpoint: its producer exits (its parent is gone), and
    the rerun (a new producer) finishes with the metrics of an uninterrupted run without a producer."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import tiny_spec_text

    text = tiny_spec_text(tiny_models).replace("steps: 4,", "steps: 40,").replace("arms: [opd, brts]", "arms: [brts]")
    with_producer, without = tmp_path / "producer.yaml", tmp_path / "plain.yaml"
    with_producer.write_text(text + "pool: {producer: {lookahead_steps: 4}}\n")
    without.write_text(text)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}

    def brts(spec, store):
        return subprocess.Popen([sys.executable, "-m", "brts.cli", "exp", "run", str(spec), "--store", str(store)],
                                env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    killed_store, clean_store = tmp_path / "killed", tmp_path / "clean"
    proc = brts(with_producer, killed_store)
    deadline = time.time() + 240
    children: list[int] = []
    past_step_ten = "tiny/*/checkpoints/step_0000[1-3][0-9]/checkpoint.pt"
    while time.time() < deadline and not list(killed_store.glob(past_step_ten)):
        children = _children(proc.pid) or children
        time.sleep(0.05)
    assert children, "the producer process was not seen"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.1)
    assert not any(_alive(c) for c in children)  # the producer saw its parent go and stopped
    [record] = killed_store.glob("tiny/*/record.json")
    assert json.loads(record.read_text())["status"] == "running"

    rerun = brts(with_producer, killed_store)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    clean = brts(without, clean_store)
    _, clean_err = clean.communicate(timeout=300)
    assert clean.returncode == 0, clean_err
    twin = clean_store / "tiny" / record.parent.name

    def strip(path):
        return [{k: v for k, v in json.loads(x).items() if not k.startswith("time/") and k not in COST}
                for x in path.read_text().splitlines()]

    assert strip(record.parent / "metrics.jsonl") == strip(twin / "metrics.jsonl")
    assert _weights(RunStore(killed_store), plan(load_spec(str(with_producer)))[0]) == \
        _weights(RunStore(clean_store), plan(load_spec(str(without)))[0]) != {}


def test_the_producer_shows_as_one_line_beside_the_runs():
    import io

    from brts.progress import LinesReporter
    from brts.runs.observer import ProgressObserver

    out = io.StringIO()
    with LinesReporter(out, heartbeat=False) as shown:
        observer = ProgressObserver(shown)
        observer.producer_progress(ProducerStatus("abc123", 2, steps=3, samples=48, tokens=2304, found=4, ahead=2,
                                                  seconds=12.4))
        observer.producer_progress(ProducerStatus("abc123", 2, steps=9, samples=144, tokens=6912, ahead=4,
                                                  seconds=40.0, done=True))
    lines = out.getvalue().splitlines()
    assert "teacher producer abc123: 2 runs, up to 2 steps ahead; 48 samples (2304 tokens) drawn in 12 s, 4 found " \
        "in the pool" in lines[0]
    assert "144 samples (6912 tokens)" in lines[1] and "done" in lines[-1] and len(lines) == 3


def _failing_producer(*_args):
    raise SystemExit(3)


def test_a_producer_that_fails_says_so_in_its_line(tmp_path, tiny_spec_file, monkeypatch):
    """A producer that dies of an error (not stopped, not killed) leaves the trainers to draw everything: its line
    says it failed, rather than ending as if it had drawn nothing."""
    from brts.runs import producer as module

    monkeypatch.setattr(module, "producer_main", _failing_producer)  # a forked child runs the patched target
    [planned] = plan(load_spec(str(tiny_spec_file), ["arms=[brts]", "pool.producer={threads: 1}"]))
    statuses: list[ProducerStatus] = []
    with producers([planned], tmp_path / "store", statuses.append, context="fork") as [child]:
        child.join(60)
    [status] = statuses
    assert status.done and status.failed == "exit code 3" and status.teacher == planned.config.models.teacher
    assert status.line().startswith("failed (exit code 3; its error is above)")
