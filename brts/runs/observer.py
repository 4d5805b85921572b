"""What running an experiment reports as it goes: one observer interface for the progress display, sweep pruners
and trackers. Every method is a no-op here; a subclass overrides what it needs.

Order of calls in `brts.runs.experiment.run_experiment`: `prefill_progress` then `prefill_finished` (only when
teacher samples are drawn before training), `runs_started`, then per run its `stage`s ("train", "eval"), any
number of `step` and one `run_finished`, `runs_finished`, then `references_started`, `log` lines while the
reference models are evaluated, and `references_finished`. Every call happens in the caller's process: `step`
directly when runs execute one at a time (where raising `brts.runs.run.RunStopped` from it stops that run on
purpose), relayed from local worker processes otherwise, and not at all for cluster jobs (each job's own log
shows its progress). `producer_progress` comes from a relay thread while runs execute with a teacher producer
(`pool.producer`, brts.runs.producer), at most every few seconds and once when it stops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from brts.progress import Reporter
from brts.runs.plan import PlannedRun
from brts.runs.producer import ProducerStatus

# A run another process executed while this one waited for it; one that process still holds (not waited for).
RAN_ELSEWHERE, RUNNING_ELSEWHERE = "ran-elsewhere", "running-elsewhere"
WAIT_STAGE = "wait"  # the stage of a run this process waits for while another process executes it


@dataclass(frozen=True)
class Outcome:
    """What happened to one planned run in this invocation."""

    planned: PlannedRun
    # "cached", "ran", "evaluated" (trained before; evaluated now), "failed", "skipped-failed", RAN_ELSEWHERE,
    # RUNNING_ELSEWHERE
    action: str
    record: dict[str, Any]


class RunObserver:
    """Receives the events of an experiment's execution (see the module docstring)."""

    def prefill_progress(self, done: int, total: int | None) -> None:
        """Steps whose teacher samples are drawn, of `total` (None until known)."""

    def prefill_finished(self) -> None:
        """Every teacher sample of the pre-fill is drawn (or the pre-fill was interrupted)."""

    def producer_progress(self, status: ProducerStatus) -> None:
        """What a teacher producer has drawn ahead of the trainers so far (`status.done` when it stopped)."""

    def runs_started(self, todo: Sequence[PlannedRun], cached: Sequence[Outcome]) -> None:
        """Execution begins: the runs to execute, and those left alone (finished, or failed without retry)."""

    def stage(self, planned: PlannedRun, name: str) -> None:
        """A run begins a stage: "train" (not for a run trained before), then "eval"; "wait" while another
        process executes it (this one takes it over if that process stops without finishing it)."""

    def step(self, planned: PlannedRun, step: int, total: int, metrics: dict[str, Any]) -> None:
        """A run finished a training step; `metrics` is that step's record (empty from a multi-process run)."""

    def run_finished(self, outcome: Outcome) -> None:
        """A run ended (finished, failed, stopped, here or in a process this one waited for) or was left to the
        process that holds it."""

    def runs_finished(self, outcomes: Sequence[Outcome]) -> None:
        """Every run of the plan has its outcome."""

    def references_started(self) -> None:
        """The reference models' evaluations begin."""

    def log(self, line: str) -> None:
        """A line worth showing (a reference model being evaluated)."""

    def references_finished(self) -> None:
        """The reference models' evaluations ended (evaluated, cached, failed or interrupted)."""


class Observers(RunObserver):
    """Several observers as one (a progress display and a tracker, say): each event goes to each, in order."""

    def __init__(self, *observers: RunObserver) -> None:
        self.observers = observers

    def prefill_progress(self, done: int, total: int | None) -> None:
        for o in self.observers:
            o.prefill_progress(done, total)

    def producer_progress(self, status: ProducerStatus) -> None:
        for o in self.observers:
            o.producer_progress(status)

    def prefill_finished(self) -> None:
        for o in self.observers:
            o.prefill_finished()

    def runs_started(self, todo: Sequence[PlannedRun], cached: Sequence[Outcome]) -> None:
        for o in self.observers:
            o.runs_started(todo, cached)

    def stage(self, planned: PlannedRun, name: str) -> None:
        for o in self.observers:
            o.stage(planned, name)

    def step(self, planned: PlannedRun, step: int, total: int, metrics: dict[str, Any]) -> None:
        for o in self.observers:
            o.step(planned, step, total, metrics)

    def run_finished(self, outcome: Outcome) -> None:
        for o in self.observers:
            o.run_finished(outcome)

    def runs_finished(self, outcomes: Sequence[Outcome]) -> None:
        for o in self.observers:
            o.runs_finished(outcomes)

    def references_started(self) -> None:
        for o in self.observers:
            o.references_started()

    def log(self, line: str) -> None:
        for o in self.observers:
            o.log(line)

    def references_finished(self) -> None:
        for o in self.observers:
            o.references_finished()


class ProgressObserver(RunObserver):
    """Shows an experiment on a `brts.progress` reporter (bars, plain lines, JSON lines or nothing): the pre-fill,
    the runs (done of planned, cached counted) and each running run with its stage and steps, a failed run as a
    note, the reference models with the model being evaluated as their stage."""

    def __init__(self, reporter: Reporter) -> None:
        self.shown = reporter
        self._prefilling = False

    def prefill_progress(self, done: int, total: int | None) -> None:
        if not self._prefilling:
            self._prefilling = True
            self.shown.start("prefill", "pre-filling teacher samples", total, keep=True)
        self.shown.update("prefill", done, total=total)

    def prefill_finished(self) -> None:
        if self._prefilling:
            self._prefilling = False
            self.shown.finish("prefill")

    def producer_progress(self, status: ProducerStatus) -> None:
        key = f"producer-{status.teacher}"
        if key not in self.shown.tasks:
            self.shown.start(key, f"teacher producer {status.teacher}", None, stage=status.line(), keep=True)
        self.shown.update(key, status.steps, stage=status.line())
        if status.done:
            self.shown.finish(key)

    def runs_started(self, todo: Sequence[PlannedRun], cached: Sequence[Outcome]) -> None:
        self.shown.start("runs", f"runs ({len(cached)} cached)", len(todo) + len(cached), unit="runs",
                         done=len(cached), keep=True)

    def _ensure(self, planned: PlannedRun, stage: str, done: int = 0, total: int | None = None) -> bool:
        """Start the run's task if it is not shown yet; True when it was started now."""
        if planned.run_id in self.shown.tasks:
            return False
        self.shown.start(planned.run_id, f"  {planned.arm} seed {planned.seed}", total or planned.config.train.steps,
                         stage=stage, done=done)
        return True

    def stage(self, planned: PlannedRun, name: str) -> None:
        if name == WAIT_STAGE:
            self.shown.note(f"{planned.arm} seed {planned.seed} ({planned.run_id}) is running in another process; "
                            "waiting for it to finish (--no-wait leaves it to that process)")
            name = "waiting for another process"
        if not self._ensure(planned, name):
            self.shown.update(planned.run_id, stage=name)

    def step(self, planned: PlannedRun, step: int, total: int, metrics: dict[str, Any]) -> None:
        if not self._ensure(planned, "train", step, total):
            self.shown.update(planned.run_id, step, total=total)

    def run_finished(self, outcome: Outcome) -> None:
        planned = outcome.planned
        if outcome.action == "failed":
            self.shown.note(f"failed {planned.arm} seed {planned.seed}: {outcome.record.get('error')}")
        self.shown.finish(planned.run_id, outcome.action)
        self.shown.update("runs", advance=1)

    def runs_finished(self, outcomes: Sequence[Outcome]) -> None:
        self.shown.finish("runs")

    def references_started(self) -> None:
        self.shown.start("references", "reference models")

    def log(self, line: str) -> None:
        if "references" in self.shown.tasks:
            self.shown.update("references", stage=line)
        else:
            self.shown.note(line)

    def references_finished(self) -> None:
        self.shown.finish("references")
