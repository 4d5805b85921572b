"""Running a plan: skip what is finished, resume what was interrupted, run the rest on local workers."""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brts import progress as progress_display
from brts.evaluation.evaluate import settings_digest
from brts.runs.plan import PlannedRun
from brts.runs.run import execute_run
from brts.runs.store import RunLocked, RunStore


@dataclass(frozen=True)
class Outcome:
    """What happened to one planned run in this invocation."""

    planned: PlannedRun
    action: str  # "cached", "ran", "evaluated" (trained before; evaluated now), "failed", "skipped-failed", "locked"
    record: dict[str, Any]


def _worker(planned: PlannedRun, store_root: Path, updates: Any) -> tuple[str, dict[str, Any]]:
    def progress(run_id: str, step: int, total: int, metrics: dict[str, Any]) -> None:
        updates.put((run_id, step, total, None))

    def stage(run_id: str, name: str) -> None:
        updates.put((run_id, None, None, name))

    try:
        return "done", execute_run(planned, store_root, progress, stage=stage)
    except RunLocked:
        return "locked", {}


def skipped(planned: PlannedRun, record: dict[str, Any], retry_failed: bool) -> str | None:
    """Why `execute` leaves a run alone ("cached" or "skipped-failed"), or None when it (re)runs it."""
    if record.get("status") == "finished" and record.get("eval_key") == settings_digest(planned.config.eval):
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
    reporter: progress_display.Reporter | None = None,
    executor: str = "local",
    submitit_cluster: str = "slurm",
) -> list[Outcome]:
    """Execute every run of `plan` that is not finished with the current evaluation settings.

    A run that failed in training is retried only with `retry_failed`; one that failed in its evaluation (its
    checkpoint is kept) is evaluated again every time, and a finished run whose evaluation settings changed is
    evaluated again; neither is trained again.

    `executor`: `local` (a process pool of `workers`), `slurm` (job arrays through submitit, at most `workers`
    jobs at once; `submitit_cluster="local"` runs them as local subprocesses) or `ray` (brts.runs.cluster).
    `reporter` shows the progress (default: brts.progress.current(), bars in a terminal, lines otherwise).
    """
    outcomes: dict[str, Outcome] = {}
    todo: list[PlannedRun] = []
    trained: set[str] = set()
    for planned in plan:
        run = store.folder(planned.experiment, planned.run_id)
        record = run.record()
        skip = skipped(planned, record, retry_failed)
        if skip is not None:
            outcomes[planned.run_id] = Outcome(planned, skip, record)
        else:
            todo.append(planned)
            if (run.path / "final").exists():
                trained.add(planned.run_id)

    with reporter or progress_display.current() as shown:
        shown.start("runs", f"runs ({len(outcomes)} cached)", len(plan), unit="runs", done=len(outcomes), keep=True)
        labels = {p.run_id: (f"  {p.arm} seed {p.seed}", p.config.train.steps) for p in todo}

        def show(run_id: str, step: int | None, total: int | None, stage: str | None = None) -> None:
            if run_id not in shown.tasks:
                label, steps = labels[run_id]
                shown.start(run_id, label, total or steps, stage=stage or "train", done=step or 0)
            else:
                shown.update(run_id, step, total=total, stage=stage)

        def finish(planned: PlannedRun, status: str, record: dict[str, Any]) -> None:
            if status == "locked":
                outcomes[planned.run_id] = Outcome(planned, "locked", {"status": "running"})
            else:
                done = "evaluated" if planned.run_id in trained else "ran"
                action = done if record.get("status") == "finished" else "failed"
                outcomes[planned.run_id] = Outcome(planned, action, record)
                if action == "failed":
                    shown.note(f"[red]failed[/red] {planned.arm} seed {planned.seed}: {record.get('error')}")
            shown.finish(planned.run_id, outcomes[planned.run_id].action)
            shown.update("runs", advance=1)

        if executor == "slurm":
            from brts.runs.cluster import run_slurm

            run_slurm(todo, store.root, workers, finish, cluster=submitit_cluster)
        elif executor == "ray":
            from brts.runs.cluster import run_ray

            run_ray(todo, store.root, finish)
        elif workers <= 1 or len(todo) <= 1:
            for planned in todo:
                try:
                    record = execute_run(planned, store.root, lambda r, s, t, _m: show(r, s, t),
                                         stage=lambda r, name: show(r, None, None, name))
                    finish(planned, "done", record)
                except RunLocked:
                    finish(planned, "locked", {})
        else:
            _execute_parallel(todo, store, workers, show, finish)
        shown.finish("runs")
    return [outcomes[p.run_id] for p in plan]


def _execute_parallel(todo: Sequence[PlannedRun], store: RunStore, workers: int, show: Any, finish: Any) -> None:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        updates = manager.Queue()
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures: dict[Future[tuple[str, dict[str, Any]]], PlannedRun] = {
                pool.submit(_worker, planned, store.root, updates): planned for planned in todo
            }
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(updates, show)
                    for fut in done:
                        status, record = fut.result()
                        finish(futures[fut], status, record)
                _drain(updates, show)
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


def _drain(updates: Any, show: Any) -> None:
    while True:
        try:
            run_id, step, total, stage = updates.get_nowait()
        except queue.Empty:
            return
        show(run_id, step, total, stage)
