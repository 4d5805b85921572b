"""Running a plan on a cluster: Slurm job arrays through submitit, or tasks on a Ray cluster.

Every run is the same `execute_run` call as on the local pool, in a job that asks for the spec's `resources`
(GPUs, CPUs, memory, time, partition). A run is resumable, so a job that Slurm preempts or times out is
requeued by submitit (`RunJob.checkpoint`) and a Ray task lost with its node is retried; either way the run
continues from its last checkpoint. The run store must be on a file system every node sees.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from brts.errors import UserError
from brts.runs.plan import PlannedRun
from brts.runs.run import execute_run
from brts.spec import ResourcesSpec
from brts.store import RunLocked, RunStore

Finish = Callable[[PlannedRun, str, dict[str, Any]], None]
RAY_RETRIES = 3  # a task lost with its node is started again this many times (it resumes)


class ClusterUnavailable(UserError, RuntimeError):
    """The chosen executor's engine is not installed or cannot be reached; the message names the fix."""


def _run(planned: PlannedRun, store_root: Path) -> tuple[str, dict[str, Any]]:
    """One run in a cluster job; its progress goes to the job's own log (plain lines: its stdout is a file)."""
    from brts import progress

    key = planned.run_id
    with progress.current() as shown:
        shown.start(key, f"{planned.arm} seed {planned.seed} ({key})", planned.config.train.steps)
        try:
            record = execute_run(planned, store_root, lambda _r, step, total, _m: shown.update(key, step, total=total),
                                 stage=lambda _r, name: shown.update(key, stage=name))
        except RunLocked:
            shown.finish(key, "locked by another process")
            return "locked", {}
        shown.finish(key, str(record.get("status")))
        return "done", record


class RunJob:
    """One run as a submitit job. On preemption or timeout submitit calls `checkpoint` and requeues the
    returned submission, which resumes the run from its last checkpoint."""

    def __init__(self, planned: PlannedRun, store_root: Path) -> None:
        self.planned, self.store_root = planned, store_root

    def __call__(self) -> tuple[str, dict[str, Any]]:
        return _run(self.planned, self.store_root)

    def checkpoint(self) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(RunJob(self.planned, self.store_root))


def slurm_parameters(resources: ResourcesSpec, name: str, parallelism: int) -> dict[str, Any]:
    """submitit `update_parameters` for one job array; `slurm_*` keys are ignored by non-Slurm clusters."""
    params: dict[str, Any] = {
        "name": name, "nodes": 1, "tasks_per_node": 1, "cpus_per_task": resources.cpus,
        "gpus_per_node": resources.gpus, "mem_gb": resources.memory_gb, "timeout_min": resources.time_min,
        "slurm_array_parallelism": parallelism,
    }
    if resources.partition:
        params["slurm_partition"] = resources.partition
    if resources.slurm:
        params["slurm_additional_parameters"] = dict(resources.slurm)
    return params


def _groups(todo: Sequence[PlannedRun]) -> list[tuple[ResourcesSpec, list[PlannedRun]]]:
    """Runs grouped by equal resources, one job array each, in plan order of first appearance."""
    groups: dict[str, list[PlannedRun]] = {}
    for p in todo:
        groups.setdefault(json.dumps(p.resources.model_dump(mode="json"), sort_keys=True), []).append(p)
    return [(runs[0].resources, runs) for runs in groups.values()]


def submitit_plan(todo: Sequence[PlannedRun], parallelism: int) -> list[dict[str, Any]]:
    """What `run_slurm` submits: per job array, its parameters and its runs (for --dry-run)."""
    return [
        {"parameters": slurm_parameters(res, f"brts-{runs[0].experiment}", parallelism),
         "runs": [{"run_id": p.run_id, "arm": p.arm, "seed": p.seed,
                   "processes": p.resources.world_size} for p in runs]}
        for res, runs in _groups(todo)
    ]


def run_slurm(
    todo: Sequence[PlannedRun], store: RunStore, parallelism: int, finish: Finish, cluster: str = "slurm",
    poll_s: float = 2.0,
) -> None:
    """Submit one job array per resource group and wait for every job; `cluster="local"` runs the same jobs
    as local subprocesses (submitit's LocalExecutor), which is how the path is tested without Slurm."""
    try:
        import submitit
    except ImportError:
        raise ClusterUnavailable("--executor slurm needs submitit: pip install 'brts[cluster]'") from None
    if not todo:
        return
    folder = store.submitit_dir(todo[0].experiment) / "%j"
    jobs: dict[Any, PlannedRun] = {}
    for resources, runs in _groups(todo):
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        executor.update_parameters(**slurm_parameters(resources, f"brts-{runs[0].experiment}", parallelism))
        with executor.batch():
            submitted = [executor.submit(RunJob(p, store.root)) for p in runs]
        jobs.update(zip(submitted, runs, strict=True))
    pending = dict(jobs)
    while pending:
        for job in [j for j in pending if j.done()]:
            planned = pending.pop(job)
            try:
                status, record = job.result()
            except Exception as exc:  # the job itself died (cancelled, node failure): record what Slurm said
                line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                status, record = "done", {"status": "failed", "error": f"job {job.job_id}: {line}"}
            finish(planned, status, record)
        if pending:
            time.sleep(poll_s)


def ray_options(resources: ResourcesSpec) -> dict[str, Any]:
    """`ray.remote(...).options` for one run's task."""
    return {"num_cpus": resources.cpus, "num_gpus": resources.gpus, "memory": int(resources.memory_gb * 2**30),
            "max_retries": RAY_RETRIES}


def run_ray(todo: Sequence[PlannedRun], store: RunStore, finish: Finish, address: str | None = None) -> None:
    """One Ray task per run, on the cluster at `address` (or $RAY_ADDRESS, or a local instance started here and
    shut down afterwards); an instance already initialised in this process is used as it is."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable("--executor ray needs ray: pip install 'brts[cluster]'") from None
    if not todo:
        return
    started = not ray.is_initialized()
    if started:
        address = address or os.environ.get("RAY_ADDRESS")
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ClusterUnavailable(f"cannot start or reach Ray (address {address or 'local'}): {first}; "
                                     "check $RAY_ADDRESS") from None
    try:
        task = ray.remote(_run)
        refs = {task.options(**ray_options(p.resources)).remote(p, store.root): p for p in todo}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                planned = refs.pop(ref)
                try:
                    status, record = ray.get(ref)
                except Exception as exc:  # the task failed after its retries
                    status, record = "done", {"status": "failed", "error": f"ray: {type(exc).__name__}: {exc}"}
                finish(planned, status, record)
    finally:
        if started:
            ray.shutdown()
