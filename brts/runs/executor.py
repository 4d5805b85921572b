"""Executing a plan: skip what is finished, resume what was interrupted, run the rest on local workers or a
cluster (brts.runs.cluster), reporting to a RunObserver."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import socket
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_any
from pathlib import Path
from typing import Any

from brts.evaluation.evaluate import settings_digest
from brts.runs.integrity import reusable
from brts.runs.observer import RAN_ELSEWHERE, RUNNING_ELSEWHERE, WAIT_STAGE, Outcome, RunObserver
from brts.runs.plan import PlannedRun
from brts.runs.run import execute_run
from brts.store import RunFolder, RunLocked, RunStore

__all__ = ["Outcome", "execute", "skipped"]


def execute_or_wait(planned: PlannedRun, store_root: Path, progress: Any, stage: Any, *, wait: bool,
                    retry_failed: bool) -> tuple[str, dict[str, Any]]:
    """Execute one run here, or, when another process holds it, wait for that process (or, without `wait`,
    leave it). -> ("done", record) executed here; ("elsewhere", record) finished or failed by the other process
    while this one waited; ("locked", record) held by another process and not waited for.

    When the other process stops without finishing (killed), or fails and `retry_failed` is on, this one takes the
    run over and resumes it."""
    folder = RunStore(store_root).run(planned)
    while True:
        try:
            record = execute_run(planned, store_root, progress, stage=stage)
            # Finished by another process between this invocation's planning and taking the lock: not run here.
            return ("done" if _executed_here(record) else "elsewhere"), record
        except RunLocked:
            if not wait:
                return "locked", folder.record()
        stage(planned.run_id, WAIT_STAGE)
        folder.wait_unlocked()
        record = folder.record()
        if skipped(planned, folder, retry_failed) == "cached" or (record.get("status") == "failed"
                                                                  and not retry_failed):
            return "elsewhere", record


def _executed_here(record: dict[str, Any]) -> bool:
    """Whether this process wrote the record's last execution (execute_run records its host and pid)."""
    host = (record.get("environment") or {}).get("host")
    return record.get("pid") == os.getpid() and host == socket.gethostname()


def trained_here(record: dict[str, Any]) -> bool:
    """Whether the record's last execution trained the run (not only evaluated a checkpoint trained before)."""
    return record.get("trained_attempt") is not None and record.get("trained_attempt") == record.get("attempts")


def _worker(planned: PlannedRun, store_root: Path, updates: Any, wait: bool, retry_failed: bool
            ) -> tuple[str, dict[str, Any]]:
    def progress(run_id: str, step: int, total: int, metrics: dict[str, Any]) -> None:
        updates.put((run_id, step, total, metrics, None))

    def stage(run_id: str, name: str) -> None:
        updates.put((run_id, None, None, None, name))

    return execute_or_wait(planned, store_root, progress, stage, wait=wait, retry_failed=retry_failed)


def skipped(planned: PlannedRun, run: RunFolder, retry_failed: bool) -> str | None:
    """Why `execute` leaves a run alone ("cached" or "skipped-failed"), or None when it (re)runs it: a finished
    run whose folder holds something damaged is run again (brts.runs.integrity)."""
    record = run.record()
    if reusable(run, record, settings_digest(planned.config.eval)):
        return "cached"
    if record.get("status") == "failed" and record.get("failed_stage") != "eval" and not retry_failed:
        return "skipped-failed"
    return None


def execute(
    plan: Sequence[PlannedRun],
    store: RunStore,
    *,
    workers: int = 1,
    retry_failed: bool = False,
    observer: RunObserver | None = None,
    executor: str = "local",
    submitit_cluster: str = "slurm",
    wait: bool = True,
) -> list[Outcome]:
    """Execute every run of `plan` that is not finished with the current evaluation settings.

    A run another process is executing is waited for (its stage "wait"), and counted as run elsewhere when that
    process finishes it; with `wait` off it is left to that process ("running-elsewhere").

    A run that failed in training is retried only with `retry_failed`; one that failed in its evaluation (its
    checkpoint is kept) is evaluated again every time, and a finished run whose evaluation settings changed is
    evaluated again; neither is trained again.

    `executor`: `local` (a process pool of `workers`; one run at a time in this process when `workers` is 1),
    `slurm` (job arrays through submitit, at most `workers` jobs at once; `submitit_cluster="local"` runs them as
    local subprocesses) or `ray` (brts.runs.cluster).
    """
    observer = observer or RunObserver()
    outcomes: dict[str, Outcome] = {}
    todo: list[PlannedRun] = []
    for planned in plan:
        run = store.run(planned)
        record = run.record()
        skip = skipped(planned, run, retry_failed)
        if skip is not None:
            outcomes[planned.run_id] = Outcome(planned, skip, record)
        else:
            todo.append(planned)
    observer.runs_started(todo, list(outcomes.values()))
    by_id = {p.run_id: p for p in todo}

    def show(run_id: str, step: int, total: int, metrics: dict[str, Any]) -> None:
        observer.step(by_id[run_id], step, total, metrics)

    def announce(run_id: str, name: str) -> None:
        observer.stage(by_id[run_id], name)

    def finish(planned: PlannedRun, status: str, record: dict[str, Any]) -> None:
        if status == "locked":
            outcome = Outcome(planned, RUNNING_ELSEWHERE, {**record, "status": "running"})
        elif status == "elsewhere":
            outcome = Outcome(planned, RAN_ELSEWHERE if record.get("status") == "finished" else "failed", record)
        else:
            done = "ran" if trained_here(record) else "evaluated"
            outcome = Outcome(planned, done if record.get("status") == "finished" else "failed", record)
        outcomes[planned.run_id] = outcome
        observer.run_finished(outcome)

    if executor == "slurm":
        from brts.runs.cluster import run_slurm

        run_slurm(todo, store, workers, finish, cluster=submitit_cluster)
    elif executor == "ray":
        from brts.runs.cluster import run_ray

        run_ray(todo, store, finish)
    elif workers <= 1 or len(todo) <= 1:
        for planned in todo:
            finish(planned, *execute_or_wait(planned, store.root, show, announce, wait=wait,
                                             retry_failed=retry_failed))
    else:
        _execute_parallel(todo, store, workers, show, announce, finish, wait_others=wait, retry_failed=retry_failed)
    result = [outcomes[p.run_id] for p in plan]
    observer.runs_finished(result)
    return result


def _execute_parallel(todo: Sequence[PlannedRun], store: RunStore, workers: int, show: Any, announce: Any,
                      finish: Any, *, wait_others: bool, retry_failed: bool) -> None:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        updates = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures: dict[Future[tuple[str, dict[str, Any]]], PlannedRun] = {
                pool.submit(_worker, planned, store.root, updates, wait_others, retry_failed): planned
                for planned in todo
            }
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait_any(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(updates, show, announce)
                    for fut in done:
                        status, record = fut.result()
                        finish(futures[fut], status, record)
                _drain(updates, show, announce)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                _stop_workers(pool)
                raise


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the workers now: a SIGTERM reaches only this process (Ctrl-C reaches the whole group), and waiting
    would let them train on unseen. A killed run resumes from its last checkpoint next time."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public API before 3.14
        process.terminate()


def _drain(updates: Any, show: Any, announce: Any) -> None:
    while True:
        try:
            run_id, step, total, metrics, stage = updates.get_nowait()
        except queue.Empty:
            return
        if stage is not None:
            announce(run_id, stage)
        else:
            show(run_id, step, total, metrics)
