"""The executor's rule for failed runs (every backend's behaviour is in test_executor_conformance.py)."""

from __future__ import annotations

from brts.runs.executor import execute
from brts.runs.plan import plan
from brts.spec import load_spec
from brts.store import RunStore


def test_failed_run_is_retried_only_on_request(tmp_path, tiny_spec_file):
    planned = plan(load_spec(str(tiny_spec_file), ["arms=[opd]"]))
    store = RunStore(tmp_path / "store")
    store.prepare(planned[0]).update_record(status="failed", error="RuntimeError: boom")
    assert [o.action for o in execute(planned, store)] == ["skipped-failed"]
    assert [o.action for o in execute(planned, store, retry_failed=True)] == ["ran"]
    assert [o.action for o in execute(planned, store)] == ["cached"]

