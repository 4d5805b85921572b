"""A teacher producer: a process that draws the teacher samples of the steps to come into the pool while runs train.

Teacher samples do not depend on the student (keyed sampling: a sample is a function of its key, whoever draws it),
and which ones a step asks for follows from the run's config and the Tier-1 grades alone: Tier 1 for every prompt of
the step, Tier 2 for the prompts whose Tier-1 samples are all wrong. So while a run's trainer is at step s, a producer
can draw the samples of steps s+1 .. s+L into the pool (`brts.runs.prefill.draw_steps`, the pre-fill's own code); the
trainer's sampler takes what is in the pool and draws only what is missing. Its results are identical with or without
a producer, and whatever the producer managed to draw before the trainer got there.

- Schedule (`ahead`, pure): per run, the `lookahead_steps` steps after the one its trainer is on (steps 1 ..
  `lookahead_steps` for a run that has not started), nearest first across runs, one step a draw by default (each
  lands in the pool as soon as it is drawn).
- Backpressure: nothing more than `lookahead_steps` ahead of any trainer; with nothing to do it waits (polls).
- Several runs of one experiment share one producer per teacher (runs that share models, task, rollout backend and
  compute dtype, `brts.runs.prefill.shared_key`): runs with the same seed ask for the same samples, drawn once.
- Shutdown and kills: a producer stops between draws when told (`stop`), when its parent dies, or when every run is
  done. Each pool write is one SQLite transaction of whole samples (`INSERT OR IGNORE`: a key written by the trainer
  and the producer at once is stored once, and both wrote the same sample), so a killed producer loses at most the
  samples it was drawing, which the trainer (or a later producer) draws again, identically.
- Claims: what it draws it claims in the pool (brts.rollout.claims) until stored, so a trainer that reaches those
  samples first waits for them instead of drawing them too; a killed producer's claims stop holding at once.
- Progress: a `ProducerStatus` after each draw (steps drawn ahead, samples drawn and found), shown by the
  experiment's observer as one line.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from brts.runs.plan import PlannedRun
from brts.spec import PoolSpec, ProducerSpec

POLL_S = 0.2
REPORT_EVERY_S = 10.0  # the most often a producer's status reaches the observer (and its final one)
STOP_WAIT_S = 30.0
STOP_POLL_S = 0.05  # how often a waiting producer looks at its stop flag
At = int | None  # a trainer's last finished step; None: not started


def ahead(totals: Mapping[str, int], at: Mapping[str, At], produced: Mapping[str, int], lookahead: int,
          limit: int) -> list[tuple[str, int]]:
    """The (run, step) pairs to draw next, nearest to their trainer first (then by run name), at most `limit`.

    `totals`: each run's steps; `at`: its trainer's last finished step (it is on the next one, which the producer
    leaves to it), None when it has not started (then steps 1 .. `lookahead`); `produced`: the last step drawn for
    it. Backpressure: never a step more than `lookahead` past the one its trainer is on."""
    candidates: list[tuple[int, str, int]] = []
    for name, total in totals.items():
        done = at.get(name)
        current = 0 if done is None else done + 1  # the step its trainer is on (0: none yet)
        for step in range(max(produced.get(name, 0), current) + 1, min(total, current + lookahead) + 1):
            candidates.append((step - current, name, step))
    candidates.sort()
    return [(name, step) for _, name, step in candidates[:limit]]


@dataclass
class ProducerStatus:
    """What a producer has done so far."""

    teacher: str
    runs: int
    steps: int = 0  # (run, step) pairs drawn
    samples: int = 0  # drawn by the producer
    tokens: int = 0
    found: int = 0  # already in the pool
    ahead: int = 0  # the most steps it is ahead of a running trainer
    seconds: float = 0.0
    done: bool = False
    failed: str = ""  # how its process ended when it failed (its error is on the terminal above)

    def line(self) -> str:
        """What it has done, for a progress line beside the runs' bars."""
        if self.failed:
            return (f"failed ({self.failed}; its error is above) after {self.samples} samples: the trainers draw "
                    "what it would have, with the same results")
        return (f"{self.runs} run{'s' * (self.runs != 1)}, up to {self.ahead} step{'s' * (self.ahead != 1)} ahead; "
                f"{self.samples} samples ({self.tokens} tokens) drawn in {self.seconds:.0f} s, {self.found} found "
                "in the pool")


class Progress(Protocol):
    """Where each run's trainer is: run id -> last finished step (None: not started)."""

    def __call__(self) -> dict[str, At]: ...


@dataclass(frozen=True)
class FolderProgress:
    """Trainers' progress read from their run folders: the last step in `metrics.jsonl` (every step in all for a
    trained run; None before its first line)."""

    store_root: Path
    runs: tuple[PlannedRun, ...]

    def __call__(self) -> dict[str, At]:
        from brts.store import RunStore

        store = RunStore(self.store_root)
        out: dict[str, At] = {}
        for planned in self.runs:
            folder = store.run(planned)
            out[planned.run_id] = planned.config.train.steps if folder.trained else last_logged_step(
                folder.metrics_path)
        return out


@dataclass(frozen=True)
class SharedProgress:
    """One trainer's progress in a shared integer (the bench): -1 before its first step."""

    run_id: str
    value: Any  # a multiprocessing Value('i')

    def __call__(self) -> dict[str, At]:
        step = int(self.value.value)
        return {self.run_id: None if step < 0 else step}


def last_logged_step(path: Path, tail: int = 1 << 16) -> At:
    """The `step` of the last whole line of a metrics log (None when it has none), reading only its tail."""
    import json

    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - tail))
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return None
    for raw in reversed(lines[1:] if len(lines) > 1 else lines):
        try:
            return int(json.loads(raw)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def produce(runs: Sequence[PlannedRun], side: Any, progress: Progress, lookahead: int, stop: Any,
            report: Callable[[ProducerStatus], None], *, batch_steps: int = 1, poll_s: float = POLL_S,
            alive: Callable[[], bool] = lambda: True) -> ProducerStatus:
    """Draw the samples of `runs`' coming steps through `side` (a `brts.runs.prefill.TeacherSide` over the pool)
    until every run is done, `stop` is set or `alive()` turns false; `report` sees the status after each draw."""
    from brts import timing
    from brts.runs.prefill import RunDemand, draw_steps

    branch = [p for p in runs if p.config.method.teacher_context]
    by_id = {p.run_id: p for p in branch}
    totals = {p.run_id: p.config.train.steps for p in branch}
    status = ProducerStatus(branch[0].config.models.teacher if branch else side.sampler.teacher_id, len(branch))
    produced: dict[str, int] = {}
    problems = side.task.train_problems()
    while not stop.is_set() and alive():
        at = progress()
        live = {k: t for k, t in totals.items() if (at.get(k) or 0) < t}
        if not live:
            break
        work = ahead(live, at, produced, lookahead, batch_steps)
        if not work:
            stop.wait(poll_s)
            continue
        demands = {name: RunDemand(by_id[name]) for name, _ in work}
        before = side.sampler.total.generated_samples, side.sampler.total.generated_tokens, \
            side.sampler.total.pool_samples
        started = timing.now()
        with side.autocast():
            draw_steps([(demands[name], step) for name, step in work], side.sampler, side.task, side.encode,
                       problems)
        for name, step in work:
            produced[name] = max(produced.get(name, 0), step)
        total = side.sampler.total
        status.steps += len(work)
        status.samples += total.generated_samples - before[0]
        status.tokens += total.generated_tokens - before[1]
        status.found += total.pool_samples - before[2]
        status.seconds += timing.now() - started
        status.ahead = max((step - (0 if at.get(name) is None else at[name] + 1) for name, step in work), default=0)
        report(status)
    status.done = True
    report(status)
    return status


def producer_main(runs: Sequence[PlannedRun], pool: PoolSpec, pool_path: Path, progress: Progress, stop: Any,
                  statuses: Any, threads: int, lookahead: int, parent: int) -> None:
    """A producer process: its threads, the pool, the teacher; produces until stopped, its parent (pid `parent`,
    which may be gone before this process has started) gone or the runs done. Interrupted (Ctrl-C reaches the whole
    process group), it exits quietly: nothing it wrote is partial."""
    import torch

    from brts.rollout.pool import open_pool
    from brts.runs.prefill import load_teacher_side

    statuses.cancel_join_thread()  # exiting never waits on a reader that may be gone
    if os.getppid() != parent:
        return
    try:
        torch.set_num_threads(threads)
        store = open_pool(pool, pool_path)
        if store is None:
            return
        try:
            branch = [p for p in runs if p.config.method.teacher_context]
            side = load_teacher_side(branch[0].config, store, claims=True,
                                     device=pool.producer.device if pool.producer is not None else None)
            produce(runs, side, progress, lookahead, stop, statuses.put, alive=lambda: os.getppid() == parent)
        finally:
            store.close()
    except KeyboardInterrupt:
        return


def producer_groups(runs: Sequence[PlannedRun]) -> list[list[PlannedRun]]:
    """The runs that want a producer (teacher branch on, pool on with `pool.producer` set), one group per teacher."""
    from brts.runs.prefill import shared_key

    groups: list[list[PlannedRun]] = []
    for p in runs:
        if not (p.config.method.teacher_context and p.pool.enabled and p.pool.producer is not None):
            continue
        group = next((g for g in groups if (shared_key(g[0].config), g[0].pool.path) == (shared_key(p.config),
                                                                                        p.pool.path)), None)
        if group is None:
            groups.append([p])
        else:
            group.append(p)
    return groups


class StopFlag:
    """Tells a producer to stop: a shared byte it polls. Unlike a `multiprocessing.Event`, whose `set` waits for
    every waiter to wake, a flag is safe to set after a producer was killed while waiting on it."""

    def __init__(self, ctx: Any) -> None:
        self._flag = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._flag.value = 1

    def is_set(self) -> bool:
        return bool(self._flag.value)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.is_set() and time.monotonic() < deadline:
            time.sleep(min(STOP_POLL_S, max(0.0, deadline - time.monotonic())))
        return self.is_set()


@contextmanager
def producers(runs: Sequence[PlannedRun], store_root: Path, on_status: Callable[[ProducerStatus], None],
              progress: Callable[[Sequence[PlannedRun]], Progress] | None = None,
              context: str = "spawn") -> Iterator[list[Any]]:
    """One producer process per teacher group of `runs` (`producer_groups`) while the block runs; each is told to
    stop after it (and killed if it has not stopped within STOP_WAIT_S). Statuses reach `on_status` from a relay
    thread."""
    import multiprocessing as mp

    from brts.store import RunStore

    groups = producer_groups(runs)
    if not groups:
        yield []
        return
    ctx = mp.get_context(context)
    stop, statuses = StopFlag(ctx), ctx.Queue()
    store = RunStore(store_root)
    children, teachers = [], []
    for group in groups:
        spec = group[0].pool
        assert spec.producer is not None
        source = progress(group) if progress is not None else FolderProgress(Path(store_root), tuple(group))
        child = ctx.Process(target=producer_main, name="brts-teacher-producer", args=(
            group, spec, store.pool_file(spec), source, stop, statuses, spec.producer.threads,
            spec.producer.lookahead_steps, os.getpid()))
        child.start()
        children.append(child)
        teachers.append((group[0].config.models.teacher, len(group)))
    relay_done = threading.Event()
    shown = [0.0]

    def forward(status: ProducerStatus) -> None:
        if status.done or time.monotonic() - shown[0] >= REPORT_EVERY_S:
            shown[0] = time.monotonic()
            on_status(status)

    def relay() -> None:
        while not relay_done.is_set():
            try:
                forward(statuses.get(timeout=POLL_S))
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return

    relayer = threading.Thread(target=relay, name="brts-producer-status", daemon=True)
    relayer.start()
    interrupted = False
    try:
        yield children
    except BaseException:
        interrupted = True  # Ctrl-C, SIGTERM, an error: no waiting for a draw to end
        raise
    finally:
        stop.set()
        deadline = time.monotonic() + (0.0 if interrupted else STOP_WAIT_S)
        failed = []
        for child, (teacher, count) in zip(children, teachers, strict=True):
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()  # whatever it wrote is whole (one transaction per write); the rest is drawn again
                child.join()
            elif child.exitcode and not interrupted:
                failed.append(ProducerStatus(teacher, count, done=True, failed=f"exit code {child.exitcode}"))
        relay_done.set()
        relayer.join()
        while True:  # what the producers said after the relay's last look (their final status)
            try:
                forward(statuses.get(timeout=0.05))
            except (queue.Empty, EOFError, OSError):
                break
        for status in failed:
            on_status(status)


def one_run_producer(planned: PlannedRun, pool_path: Path, spec: ProducerSpec) -> tuple[Any, Callable[[], int]]:
    """A producer process ahead of one trainer in this process (the bench), spawned (this process may have torch's
    threads running): returns the shared counter the trainer sets to its last finished step (0 once it is on step 1)
    and a function that stops the producer and gives the teacher tokens it drew."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    at, stop, statuses = ctx.Value("i", -1), StopFlag(ctx), ctx.Queue()
    pool = PoolSpec(path=str(pool_path), producer=spec)
    child = ctx.Process(target=producer_main, name="brts-teacher-producer", args=(
        [planned], pool, pool_path, SharedProgress(planned.run_id, at), stop, statuses, spec.threads,
        spec.lookahead_steps, os.getpid()))
    child.start()

    def stopped() -> int:
        stop.set()
        tokens = 0
        while child.is_alive() or not statuses.empty():
            try:
                status = statuses.get(timeout=1.0)
            except queue.Empty:
                continue
            tokens = status.tokens
            if status.done:
                break
        child.join()
        if child.exitcode:  # a producer row without a producer would be a wrong figure
            raise RuntimeError(f"the teacher producer failed (exit code {child.exitcode}; its error is above)")
        return tokens

    return at, stopped
