"""Running a sweep: worker processes ask the study for trials until it holds the requested completed trials.

Each worker holds a lock file for its life and tags the trials it runs with it; asking, counting and failing the
trials of dead workers happen under one lock per sweep folder, so local workers never overshoot the budget.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock
from optuna.trial import TrialState

from brts import progress
from brts.store import RunStore
from brts.sweep.spec import Sweep
from brts.sweep.study import (
    STUDY_FILE,
    WorkerLock,
    completed_states,
    counts,
    create_or_load,
    fail_stale,
    make_pruner,
    make_sampler,
    open_storage,
)
from brts.sweep.trial import execute_trial, tag_worker

POLL_SECONDS = 2.0
Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Job:
    """What a worker process needs (picklable)."""

    sweep: Sweep
    store_root: Path
    url: str
    target: int


@dataclass(frozen=True)
class SweepResult:
    done: int
    target: int
    reason: str  # "budget", "grid", "failures"
    seconds: float


def describe(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _points_left(study: optuna.Study, sweep: Sweep) -> list[dict[str, Any]]:
    """The grid's or the spec's points that no trial (in any state) holds yet, in order."""
    names = [p.name for p in sweep.params]
    covered = {tuple(t.params.get(n) for n in names) for t in study.get_trials(deepcopy=False)}
    return [pt for pt in sweep.points() if tuple(pt[n] for n in names) not in covered]


def _next_trial(study: optuna.Study, job: Job, tag: dict[str, Any], failures: int,
                emit: Emit) -> optuna.Trial | str | None:
    """Under the sweep's ask lock: a new trial, None to wait for running ones, or the reason to stop."""
    stale = fail_stale(study)
    if stale:
        emit({"event": "stale", "numbers": stale})
    c = counts(study, job.sweep)
    if c.done >= job.target:
        return "budget"
    if failures >= job.target:
        return "failures"
    sampler = job.sweep.spec.sampler.name
    left = _points_left(study, job.sweep) if sampler in ("grid", "points") and c.waiting == 0 else []
    if sampler in ("grid", "points") and c.waiting == 0 and not left:
        return None if c.running else "grid"
    if c.done + c.running >= job.target:
        return None  # the running trials may still fail; wait to see
    if sampler == "points" and c.waiting == 0:
        study.enqueue_trial(left[0])  # asked next, its values fixed (a retry waiting already goes first)
    study.sampler = make_sampler(job.sweep, draw=len(study.get_trials(deepcopy=False)))
    trial = study.ask()
    tag_worker(study, trial, tag)
    return trial


def worker_loop(job: Job, emit: Emit, watch_parent: bool = False) -> str:
    """Ask, run and tell trials until the study holds `job.target` completed ones; returns why it stopped.

    With `watch_parent` (a spawned worker), it takes no new trial once its parent `brts sweep run` is gone.
    """
    sweep = job.sweep
    storage = open_storage(job.url, create=True)
    study = optuna.load_study(study_name=sweep.name, storage=storage, sampler=make_sampler(sweep),
                              pruner=make_pruner(sweep))
    folder = RunStore(job.store_root).sweep_dir(sweep.name)
    worker = WorkerLock(folder / ".workers")
    ask_lock = FileLock(str(folder / ".ask.lock"))
    parent, failures = os.getppid(), 0
    try:
        while not watch_parent or os.getppid() == parent:
            with ask_lock:
                step = _next_trial(study, job, worker.tag(), failures, emit)
            if isinstance(step, str):
                return step
            if step is None:
                time.sleep(POLL_SECONDS)
                continue
            state = execute_trial(study, step, sweep, job.store_root, storage, emit)
            failures += state == TrialState.FAIL
        return "orphaned"
    finally:
        worker.release()


def _worker_main(job: Job, events: Any) -> None:
    try:
        reason = worker_loop(job, events.put, watch_parent=True)
        events.put({"event": "worker_done", "reason": reason})
    except KeyboardInterrupt:
        events.put({"event": "worker_done", "reason": "interrupted"})


class Display:
    """The sweep's progress (brts.progress: bars in a terminal, else lines): completed trials, each running trial,
    and one line per finished trial."""

    def __init__(self, job: Job, done: int, reporter: progress.Reporter | None = None) -> None:
        self.job = job
        self.steps = job.sweep.experiment.train.steps
        self.shown = reporter or progress.current()
        self.shown.start("sweep", f"{job.sweep.name}: completed trials", job.target, unit="trials", done=done,
                         keep=True)
        self.done_states = {s.name for s in completed_states(job.sweep)}

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shown.close()

    def note(self, line: str) -> None:
        self.shown.note(line)

    def handle(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        key = f"trial {event.get('number')}"
        if kind == "start":
            total = self.steps * event["runs"]
            self.shown.start(key, f"  trial {event['number']} {describe(event['params'])}", total)
        elif kind == "step":
            stage = f"seed {event['seed']}" if len(self.job.sweep.arms) == 1 else f"{event['arm']} seed {event['seed']}"
            self.shown.update(key, event["run"] * self.steps + event["step"], stage=stage)
        elif kind == "end":
            self.shown.finish(key, event["state"].lower())
            if event["state"] in self.done_states:
                self.shown.update("sweep", advance=1)
            self.shown.note(trial_line(self.job.sweep, event))
        elif kind == "stale":
            numbers = ", ".join(map(str, event["numbers"]))
            self.shown.note(f"trials {numbers} were left running by a stopped worker: failed, enqueued again")


def trial_line(sweep: Sweep, event: dict[str, Any]) -> str:
    """One line for a finished trial: its values with the spread over seeds, or why it did not complete."""
    attrs, state = event["attrs"], event["state"]
    head = f"trial {event['number']} {describe(event['params'])}:"
    if state == "COMPLETE":
        parts = []
        for objective, value in zip(sweep.objectives, event["values"], strict=True):
            sd = (attrs.get("seed_sd") or {}).get(objective.metric)
            parts.append(f"{objective.metric} {value:.4g}" + (f" ± {sd:.2g}" if sd is not None else ""))
        reused = sum(attrs.get("reused", []))
        over = f"{len(sweep.seeds)} seeds" + (f" x {len(sweep.arms)} arms" if len(sweep.arms) > 1 else "")
        return f"{head} {', '.join(parts)} over {over}" + (f" ({reused} reused)" if reused else "")
    if state == "PRUNED":
        arm = f"arm {attrs['pruned_arm']}, " if "pruned_arm" in attrs else ""
        return f"{head} pruned at step {attrs.get('pruned_step')} of {arm}seed {attrs.get('pruned_seed')}"
    return f"{head} failed: {attrs.get('error')}"


def run_sweep(sweep: Sweep, store_root: Path, url: str, *, trials: int, workers: int,
              reporter: progress.Reporter | None = None) -> SweepResult:
    """Create or load the study and run workers until it holds `trials` completed trials (or the grid is done)."""
    started = time.perf_counter()
    folder = RunStore(store_root).sweep_dir(sweep.name)
    if url == str(folder / STUDY_FILE):
        folder.mkdir(parents=True, exist_ok=True)
    study = create_or_load(sweep, open_storage(url, create=True), url)
    folder.mkdir(parents=True, exist_ok=True)
    job = Job(sweep=sweep, store_root=store_root, url=url, target=trials)
    done = counts(study, sweep).done
    reasons: list[str] = []
    with Display(job, done, reporter) as display:
        if workers <= 1:
            reasons.append(worker_loop(job, display.handle))
        else:
            reasons += _run_workers(job, workers, display)
    final = counts(study, sweep).done
    reason = "failures" if "failures" in reasons else ("grid" if "grid" in reasons else "budget")
    return SweepResult(done=final, target=trials, reason=reason, seconds=time.perf_counter() - started)


def _run_workers(job: Job, workers: int, display: Display) -> list[str]:
    ctx = mp.get_context("spawn")
    events = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(job, events), daemon=False) for _ in range(workers)]
    for proc in procs:
        proc.start()
    reasons: list[str] = []
    try:
        while (len(reasons) < workers and any(p.is_alive() for p in procs)) or not events.empty():
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if event["event"] == "worker_done":
                reasons.append(event["reason"])
            else:
                display.handle(event)
    except KeyboardInterrupt:
        # Each worker fails and re-enqueues its own trial on SIGINT (a terminal's Ctrl-C already sent it one).
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGINT)
        raise
    finally:
        for proc in procs:
            proc.join()
    crashed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if "interrupted" in reasons:
        raise KeyboardInterrupt
    if crashed:
        display.note(f"{len(crashed)} worker process(es) ended with an error "
                     f"(exit codes {crashed}); their trials are retried on the next run")
    return reasons
