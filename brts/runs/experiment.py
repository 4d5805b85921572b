"""The one path every run takes: `run_experiment` plans an experiment spec, pre-fills the store's teacher sample
pool, executes the runs and evaluates the reference models, and returns what happened.

`brts exp run`, each sweep trial (an experiment spec with one arm whose `set` carries the sampled values),
`brts pool fill` (its planning and pre-fill stage, `prefill_experiment`), `brts bench` (`fill_pool`) and the GPU
check call it; a RunObserver sees its progress (brts.runs.observer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brts.errors import UserError
from brts.evaluation.evaluate import check_settings
from brts.models.load import preflight
from brts.rollout.pool import open_pool
from brts.runs.executor import execute, skipped
from brts.runs.observer import RAN_ELSEWHERE, RUNNING_ELSEWHERE, Outcome, RunObserver
from brts.runs.plan import Kind, PlannedRun, plan
from brts.runs.prefill import RunDemand, TokenTotals, plan_demand, totals
from brts.runs.producer import producers
from brts.runs.reference import evaluate_references
from brts.spec import ExperimentSpec
from brts.store import RunStore
from brts.tasks.math import check_files

FAILED_ACTIONS = ("failed", "skipped-failed")
COUNT_LABELS = {"ran": "ran here", "evaluated": "evaluated here", RAN_ELSEWHERE: "ran in another process",
                RUNNING_ELSEWHERE: "running in another process", "cached": "cached", "failed": "failed",
                "skipped-failed": "skipped-failed"}


class PoolDisabled(UserError):
    """The pool is to be filled, but the spec switches it off."""


@dataclass
class ExperimentResult:
    """What `run_experiment` did: every planned run's outcome, the reference records and the pre-fill's totals."""

    spec: ExperimentSpec
    store: RunStore
    planned: list[PlannedRun]
    outcomes: list[Outcome] = field(default_factory=list)
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    prefilled: TokenTotals | None = None

    def counts(self) -> dict[str, int]:
        """How many runs had each action ("ran", "cached", "failed", ...)."""
        counted: dict[str, int] = {}
        for outcome in self.outcomes:
            counted[outcome.action] = counted.get(outcome.action, 0) + 1
        return counted

    def counts_line(self) -> str:
        """The counts in words, saying who ran what: "2 ran here, 1 ran in another process"."""
        counted = self.counts()
        order = [*COUNT_LABELS, *sorted(set(counted) - set(COUNT_LABELS))]
        return ", ".join(f"{counted[a]} {COUNT_LABELS.get(a, a)}" for a in order if a in counted) or "no runs"

    @property
    def running_elsewhere(self) -> list[Outcome]:
        """Runs another process holds, not waited for (`wait=False`)."""
        return [o for o in self.outcomes if o.action == RUNNING_ELSEWHERE]

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action in FAILED_ACTIONS]

    @property
    def ok(self) -> bool:
        """Every run finished (none failed or was held by another process) and every reference was evaluated."""
        runs_ok = all(o.action not in (*FAILED_ACTIONS, RUNNING_ELSEWHERE) for o in self.outcomes)
        return runs_ok and all(r.get("status") != "failed" for r in self.references.values())


def check_ready(spec: ExperimentSpec, store: RunStore, *, dry: bool = False) -> None:
    """Refuse, before anything runs, an unwritable store, evaluation settings that would fail every evaluation
    (unknown lm-eval tasks, missing data) or an incompatible model pair; builds the built-in models once, in this
    process, before any worker starts. Raises UserError (one line).

    `dry` (`brts exp show`): the same checks, but nothing is built, downloaded or written, and the evaluation
    backend is not looked for (show plans a GPU spec on any machine); a model pair that needs a build or a
    download (a hub model, built-in models not built yet) is checked by the real run only."""
    store.check_writable()
    check_files(spec.task)  # a problem row too large to use stops here, not in the tokenizer mid-run
    check_settings(spec.eval, task_spec=spec.task, backend=not dry)  # vLLM may be on the GPU machine only
    preflight(spec.models, build=not dry)


def pending(planned: Sequence[PlannedRun], store: RunStore, retry_failed: bool = False) -> list[PlannedRun]:
    """The runs `execute` would (re)run: not finished with the current evaluation settings, not failed in
    training unless `retry_failed`."""
    return [p for p in planned if skipped(p, store.run(p), retry_failed) is None]


def fill_pool(runs: Sequence[PlannedRun], store: RunStore, observer: RunObserver | None = None) -> list[RunDemand]:
    """Draw every teacher sample `runs` will use into the store's pool (their `pool` settings), in large
    batches; returns each run's demand (the samples it uses and their tokens). With the pool off, the samples
    are drawn and counted but kept nowhere. The runs must share their teacher, task and rollout backend."""
    if not runs:
        return []
    observer = observer or RunObserver()
    settings = runs[0].pool
    pool = open_pool(settings, store.pool_file(settings))
    try:
        return plan_demand(runs, pool, progress=observer.prefill_progress)
    finally:
        observer.prefill_finished()
        if pool is not None:
            pool.close()


def prefill_experiment(spec: ExperimentSpec, store: RunStore, observer: RunObserver | None = None) -> TokenTotals:
    """`brts pool fill`: the experiment's planning and pre-fill stage alone; raises PoolDisabled (one line)."""
    if not spec.pool.enabled:
        raise PoolDisabled(f"{spec.name}: pool.enabled is false; set pool.enabled: true (or --set pool.enabled=true) "
                           "to fill it")
    check_ready(spec, store)
    return totals(fill_pool(plan(spec), store, observer))


def run_experiment(
    spec: ExperimentSpec,
    store: RunStore | Path,
    *,
    workers: int | None = None,
    retry_failed: bool = False,
    executor: str = "local",
    observer: RunObserver | None = None,
    references: bool = True,
    check: bool = True,
    kind: Kind = "experiment",
    submitit_cluster: str = "slurm",
    wait: bool = True,
) -> ExperimentResult:
    """Plan `spec`, pre-fill the pool (when `pool.prefill`) or start a teacher producer per teacher (when
    `pool.producer`) for the time the runs train, execute every run that is not finished (resuming
    interrupted ones; failed ones only with `retry_failed`) and evaluate the reference models.

    `workers`: parallel runs (default: the spec's). `executor`: local, slurm or ray (brts.runs.executor).
    `references`: evaluate the teacher and the starting student (an experiment's reference rows). `check`:
    `check_ready` first (a caller that ran it already, such as each sweep trial, passes False). `kind`: where the
    runs' folders live in the store (an experiment's, or a sweep's trials). `wait`: a run (or reference model)
    another process is executing is waited for; off, it is left to that process (RUNNING_ELSEWHERE).

    Raises UserError for what the user can fix, KeyboardInterrupt when interrupted (everything resumes);
    a failed run is an outcome, not an exception.
    """
    store = store if isinstance(store, RunStore) else RunStore(store)
    observer = observer or RunObserver()
    result = ExperimentResult(spec=spec, store=store, planned=plan(spec, kind))
    if check:
        check_ready(spec, store)
    todo = [p for p in pending(result.planned, store, retry_failed) if not store.run(p).trained]
    if spec.pool.enabled and spec.pool.prefill and todo:
        result.prefilled = totals(fill_pool(todo, store, observer))
    # A producer draws ahead of the trainers only where nothing was pre-filled (brts.runs.producer).
    with producers([] if result.prefilled else todo, store.root, observer.producer_progress):
        result.outcomes = execute(result.planned, store, workers=workers or spec.workers, retry_failed=retry_failed,
                                  observer=observer, executor=executor, submitit_cluster=submitit_cluster, wait=wait)
    if references and spec.eval.final:
        observer.references_started()
        try:
            result.references = evaluate_references(spec, store, log=observer.log, wait=wait)
        finally:
            observer.references_finished()
    return result
