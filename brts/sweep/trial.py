"""One trial: sample the values, run one ordinary run per seed (reusing finished ones), report, prune, tell."""

from __future__ import annotations

import statistics
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from brts.runs.experiment import run_experiment
from brts.runs.observer import RAN_ELSEWHERE, RunObserver
from brts.runs.plan import PlannedRun
from brts.runs.run import RunStopped
from brts.store import RunFolder, RunStore
from brts.sweep.spec import ObjectiveSpec, Sweep
from brts.sweep.study import HEARTBEAT_SECONDS, WORKER_ATTR

Emit = Callable[[dict[str, Any]], None]


class MetricMissing(RuntimeError):
    """A finished run has no value of the objective's metric."""


def suggest(trial: optuna.Trial, sweep: Sweep) -> dict[str, Any]:
    """The trial's value of every parameter, drawn by the study's sampler (or fixed by an enqueued retry)."""
    values: dict[str, Any] = {}
    for p in sweep.params:
        s = p.spec
        if p.kind == "categorical":
            assert s.choices is not None
            values[p.name] = trial.suggest_categorical(p.name, list(s.choices))
        elif p.kind == "int":
            assert s.low is not None and s.high is not None
            values[p.name] = trial.suggest_int(p.name, int(s.low), int(s.high), step=int(s.step or 1), log=s.log)
        else:
            assert s.low is not None and s.high is not None
            values[p.name] = trial.suggest_float(p.name, float(s.low), float(s.high), step=s.step, log=s.log)
    return values


def metric_value(run: RunFolder, objective: ObjectiveSpec) -> float:
    """The objective's metric of one finished run, reduced over its recorded steps (`eval/<split>`: final eval)."""
    if objective.metric.startswith("eval/"):
        split = objective.metric.removeprefix("eval/")
        evals = run.record().get("eval") or {}
        # The evaluation may key splits by lm-eval task name (brts_synthetic_hard).
        found = [v for k, v in evals.items() if k in (split, f"brts_{split}", f"brts_synthetic_{split}")]
        values = [float(found[0])] if found else []
    else:
        values = [float(r[objective.metric]) for r in run.metrics() if r.get(objective.metric) is not None]
    if not values:
        raise MetricMissing(f"run {run.path.name} recorded no value of {objective.metric}")
    reduce: dict[str, Callable[[list[float]], float]] = {
        "last": lambda v: v[-1], "mean": statistics.fmean, "max": max, "min": min}
    return reduce[objective.reduce](values)


class PruneReporter:
    """Reports a trial's intermediate validation results to Optuna and asks its pruner.

    `wilcoxon`: one value per (seed, step, problem) -- the fraction of validation samples correct -- so the
    pruner pairs problems with the best trial's at equal training progress. `median`: the split's accuracy per
    (seed, step). Step 0 (the untrained student, equal in every trial) is left out.
    """

    def __init__(self, trial: optuna.Trial, sweep: Sweep) -> None:
        self.trial, self.kind = trial, sweep.spec.pruner.name
        self.split = sweep.spec.objective.metric.removeprefix("val/")
        train = sweep.experiment.train
        self.steps_stride = train.steps + 1
        self.problems_stride = train.validation_problems
        self.reported: set[int] = set()

    @property
    def enabled(self) -> bool:
        return self.kind != "none"

    def _report(self, value: float, step: int) -> None:
        if step not in self.reported:
            self.trial.report(value, step)
            self.reported.add(step)

    def catch_up(self, seed_index: int, run: RunFolder) -> None:
        """Report every validation step of the run not reported yet (also those before a resume)."""
        if not self.enabled:
            return
        base = seed_index * self.steps_stride
        if self.kind == "median":
            for row in run.metrics():
                value = row.get(f"val/{self.split}")
                if row["step"] > 0 and value is not None:
                    self._report(float(value), base + row["step"])
            return
        for row in run.validation():
            problems = row["problems"].get(self.split, {})
            if row["step"] > 0:
                for j, pid in enumerate(sorted(problems)):
                    self._report(float(problems[pid]), (base + row["step"]) * self.problems_stride + j)

    def should_prune(self) -> bool:
        return self.enabled and self.trial.should_prune()


@contextmanager
def heartbeat(storage: Any, trial: optuna.Trial) -> Iterator[None]:
    """Record the trial's heartbeat while it runs, where the storage keeps them (RDB), so other hosts see it live."""
    if not isinstance(storage, RDBStorage):
        yield
        return
    trial_id = trial._trial_id  # Optuna's Trial has no public id; its own heartbeat thread uses this one
    storage.record_heartbeat(trial_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{trial.number}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class _Pruning(RunObserver):
    """Shows a trial's steps and asks the pruner at each validation step; stops the run when it says so."""

    def __init__(self, trial: optuna.Trial, reporter: PruneReporter, store: RunStore, run_index: int,
                 emit: Emit) -> None:
        self.trial, self.reporter, self.store, self.run_index, self.emit = trial, reporter, store, run_index, emit

    def step(self, planned: PlannedRun, step: int, total: int, metrics: dict[str, Any]) -> None:
        self.emit({"event": "step", "number": self.trial.number, "run": self.run_index, "arm": planned.arm,
                   "seed": planned.seed, "step": step, "total": total})
        reporter = self.reporter
        if reporter.enabled and metrics.get(f"val/{reporter.split}") is not None:
            reporter.catch_up(self.run_index, self.store.run(planned))
            if reporter.should_prune():
                raise RunStopped(step, f"pruned by the sweep's {reporter.kind} pruner")


def _execute(sweep: Sweep, values: dict[str, Any], run: PlannedRun, store: RunStore,
             observer: RunObserver) -> tuple[dict[str, Any], RunFolder, bool]:
    """Run (or resume) the trial's run of one arm and seed through `run_experiment`; when another process holds
    it, wait for it and reuse its result. -> (record, folder, reused)."""
    # A failed run is tried again: the study asks for this run now (a retried trial, a repeated point).
    result = run_experiment(sweep.trial_spec(values, [run.seed], [run.arm]), store, workers=1, observer=observer,
                            retry_failed=True, references=False, check=False, kind="sweep")
    [outcome] = result.outcomes
    return outcome.record, store.run(outcome.planned), outcome.action == RAN_ELSEWHERE


def _finished(sweep: Sweep, store: RunStore, run: PlannedRun) -> RunFolder | None:
    """A finished run of the store to reuse for `run`: not one finished without the final evaluation
    (`eval.final: false`, as another sweep's) when an objective reads that evaluation."""
    found = store.find_finished(run.run_id)
    needs_eval = any(o.metric.startswith("eval/") for o in sweep.objectives)
    return None if found is None or (needs_eval and not found.record().get("eval")) else found


def execute_trial(study: optuna.Study, trial: optuna.Trial, sweep: Sweep, store_root: Path, storage: Any,
                  emit: Emit) -> TrialState:
    """Run one asked trial to its end and tell the study: COMPLETE, PRUNED (with its step) or FAIL (with its error).

    A KeyboardInterrupt fails the trial, enqueues it again (its runs resume), and propagates.
    """
    store = RunStore(store_root)
    try:
        with heartbeat(storage, trial):
            state, values = _run_seeds(trial, sweep, store, emit)
    except KeyboardInterrupt:
        trial.set_user_attr("error", "interrupted (Ctrl-C); enqueued again")
        study.tell(trial, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        raise
    except Exception as exc:  # one broken trial must not stop the sweep
        trial.set_user_attr("error", f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}".rstrip(": "))
        state, values = TrialState.FAIL, None
    study.tell(trial, values if state == TrialState.COMPLETE else None, state=state)
    emit({"event": "end", "number": trial.number, "state": state.name, "values": values,
          "params": trial.params, "attrs": trial.user_attrs})
    return state


def _run_seeds(trial: optuna.Trial, sweep: Sweep, store: RunStore, emit: Emit) -> tuple[TrialState, list[float] | None]:
    """Every run of the trial (arm-major); each objective is the mean over the arms per seed (`seed_values`),
    then over the seeds."""
    values = suggest(trial, sweep)
    planned = sweep.trial_runs(values)
    paths = [str(store.run(p).path) for p in planned]
    trial.set_user_attr("seeds", list(sweep.seeds))
    if len(sweep.arms) > 1:
        trial.set_user_attr("arms", [a.name for a in sweep.arms])
    trial.set_user_attr("run_ids", [p.run_id for p in planned])
    _link_runs(trial, planned[0].run_id, paths)
    emit({"event": "start", "number": trial.number, "params": values, "runs": len(planned)})
    reporter = PruneReporter(trial, sweep)
    reused: list[bool] = []
    per_run: dict[str, list[float]] = {o.metric: [] for o in sweep.objectives}

    for i, run in enumerate(planned):
        folder = _finished(sweep, store, run)
        if folder is not None:
            was_reused = True
        else:
            observer = _Pruning(trial, reporter, store, i, emit)
            record, folder, was_reused = _execute(sweep, values, run, store, observer)
            if record.get("status") == "failed":
                trial.set_user_attr("error", f"run {run.run_id} ({_which(sweep, run)}) failed: {record.get('error')}")
                return TrialState.FAIL, None
            if record.get("status") == "stopped":
                _pruned(trial, sweep, run, record.get("stopped_at"))
                return TrialState.PRUNED, None
        reused.append(was_reused)
        paths[i] = str(folder.path)
        _link_runs(trial, planned[0].run_id, paths)
        trial.set_user_attr("reused", reused)
        for objective in sweep.objectives:
            per_run[objective.metric].append(metric_value(folder, objective))
        _record_values(trial, sweep, planned[: i + 1], per_run)
        reporter.catch_up(i, folder)
        if i < len(planned) - 1 and reporter.should_prune():  # a reused run costs nothing; the next one would
            _pruned(trial, sweep, run, folder.last_step())
            return TrialState.PRUNED, None

    per_seed = _record_values(trial, sweep, planned, per_run)
    means = [statistics.fmean(per_seed[o.metric]) for o in sweep.objectives]
    if len(sweep.seeds) > 1:
        trial.set_user_attr("seed_sd", {m: statistics.stdev(v) for m, v in per_seed.items()})
    return TrialState.COMPLETE, means


def _which(sweep: Sweep, run: PlannedRun) -> str:
    return f"seed {run.seed}" if len(sweep.arms) == 1 else f"arm {run.arm}, seed {run.seed}"


def _pruned(trial: optuna.Trial, sweep: Sweep, run: PlannedRun, step: Any) -> None:
    trial.set_user_attr("pruned_step", step)
    trial.set_user_attr("pruned_seed", run.seed)
    if len(sweep.arms) > 1:
        trial.set_user_attr("pruned_arm", run.arm)


def _record_values(trial: optuna.Trial, sweep: Sweep, done: list[PlannedRun],
                   per_run: dict[str, list[float]]) -> dict[str, list[float]]:
    """`seed_values` ({metric: per seed, the mean over the arms}) of the runs done so far, and with several arms
    `arm_values` ({metric: {arm: per seed}}); returns the former."""
    by_seed: dict[str, dict[int, list[float]]] = {m: {} for m in per_run}
    by_arm: dict[str, dict[str, list[float]]] = {m: {} for m in per_run}
    for metric, values in per_run.items():
        for run, value in zip(done, values, strict=True):
            by_seed[metric].setdefault(run.seed, []).append(value)
            by_arm[metric].setdefault(run.arm, []).append(value)
    per_seed = {m: [statistics.fmean(by_seed[m][s]) for s in sweep.seeds if s in by_seed[m]] for m in per_run}
    trial.set_user_attr("seed_values", per_seed)
    if len(sweep.arms) > 1:
        trial.set_user_attr("arm_values", by_arm)
    return per_seed


def _link_runs(trial: optuna.Trial, first_id: str, paths: list[str]) -> None:
    """`run_id`/`run_path`: the first run (one link, as readers of a study expect); `run_paths`: all, in the
    order of `run_ids` (arm-major)."""
    trial.set_user_attr("run_id", first_id)
    trial.set_user_attr("run_path", paths[0])
    trial.set_user_attr("run_paths", paths)


def tag_worker(study: optuna.Study, trial: optuna.Trial, tag: dict[str, Any]) -> None:
    """Mark which worker process owns the trial, so a later start can tell when it died."""
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, tag)
