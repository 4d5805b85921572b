"""The conformance suite every executor passes: local (one run at a time, and a pool of worker processes),
Slurm (submitit; its local executor here, the same jobs as local subprocesses) and Ray (a local instance).
A member whose engine is not installed is skipped; a new executor joins by adding a member.

On the tiny grid, each member: leaves a run another process holds alone when told not to wait for it
("running-elsewhere"), records a failing run
without stopping the others (an empty `final/` fails its evaluation), then runs what is left with results
equal to one local process's, and finds everything finished the next time ("cached").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from brts.runs.executor import execute
from brts.runs.plan import plan
from brts.spec import load_spec
from brts.store import RunStore
from tests.conftest import SMALL_JOBS, tiny_spec_text


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@contextmanager
def _ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 2**20)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _submitit() -> Iterator[None]:
    pytest.importorskip("submitit")
    yield


# name -> (execute keyword arguments, what must hold around the calls)
MEMBERS = {
    "local": ({"workers": 1}, _nothing),
    "local_pool": ({"workers": 2}, _nothing),
    "slurm": ({"workers": 2, "executor": "slurm", "submitit_cluster": "local"}, _submitit),
    "ray": ({"executor": "ray"}, _ray),
}


@pytest.fixture(scope="module")
def grid(tmp_path_factory, tiny_models):
    """The tiny grid's plan and each run's final evaluation as one local process gives it."""
    folder = tmp_path_factory.mktemp("reference")
    spec = folder / "tiny.yaml"
    spec.write_text(tiny_spec_text(tiny_models))
    planned = plan(load_spec(str(spec), list(SMALL_JOBS)))
    outcomes = execute(planned, RunStore(folder / "store"))
    assert [o.action for o in outcomes] == ["ran", "ran"]
    return planned, [o.record["eval"] for o in outcomes]


@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_executor_conformance(member, grid, tmp_path):
    kwargs, around = MEMBERS[member]
    planned, expected = grid
    store = RunStore(tmp_path / "store")
    broken, held = (store.prepare(p) for p in planned)
    broken.final.mkdir()  # "trained", but nothing to evaluate: its evaluation fails
    with around():
        with held.lock():
            first = execute(planned, store, **kwargs, wait=False)
        assert [o.action for o in first] == ["failed", "running-elsewhere"], [o.record.get("error") for o in first]
        assert first[0].record["failed_stage"] == "eval" and broken.status == "failed"
        assert held.status == "planned" and not held.metrics_path.exists()

        broken.final.rmdir()
        second = execute(planned, store, **kwargs)
        assert [o.action for o in second] == ["ran", "ran"], [o.record.get("error") for o in second]
        assert [o.record["eval"] for o in second] == expected
        assert [o.action for o in execute(planned, store, **kwargs)] == ["cached", "cached"]
