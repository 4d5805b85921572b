"""The executor: cached, locked, failed-and-retried, and parallel runs."""

from __future__ import annotations

from brts.progress import Reporter  # shows nothing
from brts.runs.executor import execute
from brts.runs.plan import plan
from brts.runs.store import RunStore
from brts.spec import load_spec


def test_locked_run_is_left_to_its_owner(tmp_path, tiny_spec_file):
    planned = plan(load_spec(str(tiny_spec_file), ["arms=[opd]"]))
    store = RunStore(tmp_path / "store")
    run = store.prepare(planned[0])
    with run.lock():
        outcomes = execute(planned, store, reporter=Reporter())
    assert [o.action for o in outcomes] == ["locked"]
    assert not run.metrics_path.exists()


def test_failed_run_is_retried_only_on_request(tmp_path, tiny_spec_file):
    planned = plan(load_spec(str(tiny_spec_file), ["arms=[opd]"]))
    store = RunStore(tmp_path / "store")
    store.prepare(planned[0]).update_record(status="failed", error="RuntimeError: boom")
    assert [o.action for o in execute(planned, store, reporter=Reporter())] == ["skipped-failed"]
    assert [o.action for o in execute(planned, store, retry_failed=True, reporter=Reporter())] == ["ran"]
    assert [o.action for o in execute(planned, store, reporter=Reporter())] == ["cached"]


def test_parallel_workers_finish_every_run_like_one_worker(tmp_path, tiny_spec_file):
    planned = plan(load_spec(str(tiny_spec_file)))
    parallel = execute(planned, RunStore(tmp_path / "a"), workers=2, reporter=Reporter())
    serial = execute(planned, RunStore(tmp_path / "b"), workers=1, reporter=Reporter())
    assert [o.action for o in parallel] == ["ran", "ran"]
    assert [o.record["eval"] for o in parallel] == [o.record["eval"] for o in serial]
