"""Experiment trackers for one run (the spec's `tracking`), through accelerate's tracking API: the GeneralTracker
classes `Accelerator(log_with=...)` uses, one per backend. They mirror the run's `metrics.jsonl`, which stays the
source of truth: every line the trainer writes is sent as it appears, then the final avg@k/pass@k per task.

They live in the process that executes the run (`execute_run`), never in a training rank: one run at a time per
process, so the clients' process-wide state (MLflow's active run, W&B's config) belongs to that run, and a run
trained in several ranks is tracked once. Each backend's run id and the last step it was sent are kept in
`record.json`, so a resumed run continues the same tracker run and sends no step twice. A backend that fails to
start or to log (missing package, no login, offline) is one warning line; the run goes on without it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from brts.runs.plan import PlannedRun
from brts.store import RunFolder
from brts.store.files import sqlite_setup_lock
from brts.terminal import safe
from brts.training.distributed import Ranks

Warn = Callable[[str], None]
RECORD_KEY = "tracking"  # record.json: {backend: {"id": its run id or None, "step": the last step sent}}
INSTALL = "pip install 'brts[trackers]'"


def _stderr(line: str) -> None:
    print(safe(line, newlines=False), file=sys.stderr, flush=True)


def run_name(planned: PlannedRun) -> str:
    return f"{planned.arm}-seed{planned.seed}-{planned.run_id}"


def labels(planned: PlannedRun) -> dict[str, str]:
    """What names the run in every tracker (as tags, and among the hyper-parameters)."""
    return {"run_id": planned.run_id, "arm": planned.arm, "seed": str(planned.seed),
            "experiment": planned.experiment}


def hyperparameters(planned: PlannedRun) -> dict[str, bool | int | float | str]:
    """The run's resolved config flattened to dotted keys (`train.lr`), values a tracker accepts (anything but a
    number, a string or a bool as JSON), and its labels as `brts.<label>`."""
    flat: dict[str, bool | int | float | str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        else:
            flat[prefix] = json.dumps(value)

    walk("", planned.config.model_dump(mode="json"))
    flat.update({f"brts.{key}": value for key, value in labels(planned).items()})
    return flat


def step_values(row: Mapping[str, Any]) -> dict[str, float]:
    """A metrics.jsonl line as tracker values: its numbers (None, where a metric does not apply, is left out)."""
    return {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


def final_values(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The final evaluation as `eval/<task>/avg_at_k`, `pass_at_k` and `maj_at_k` (percent; those a task has;
    MLflow names admit no `@`)."""
    return {f"eval/{task}/{name.replace('@', '_at_')}": float(entry[name]) for task, entry in tasks.items()
            for name in ("avg@k", "pass@k", "maj@k") if entry.get(name) is not None}


def mlflow_default_uri(store_root: Path) -> str:
    """MLflow's store when MLFLOW_TRACKING_URI is not set: a SQLite file in the run store (not the cwd's)."""
    return f"sqlite:///{Path(store_root).resolve() / 'mlflow.db'}"


def _tracker(backend: str, planned: PlannedRun, run: RunFolder, known_id: str | None) -> Any:
    """accelerate's tracker for `backend`, named and tagged for `planned`, continuing `known_id` when given."""
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    spec, name = planned.tracking, run_name(planned)
    project = spec.project or planned.experiment
    tracker: Any
    if backend == "tensorboard":  # resuming: the same folder, the events read back as one run
        tracker = TensorBoardTracker(name, run.tracking_dir / "tensorboard")
    elif backend == "mlflow":
        tags = {**{f"brts.{k}": v for k, v in labels(planned).items()}, **dict.fromkeys(spec.tags, "")}
        tracker = MLflowTracker(experiment_name=project, run_id=known_id, tags=tags, run_name=name)
    elif backend == "wandb":
        wandb_tags = [*spec.tags, *(f"{k}:{v}" for k, v in labels(planned).items())]
        run.tracking_dir.mkdir(parents=True, exist_ok=True)
        # console off: W&B would otherwise wrap this process's stdout and stderr (the progress display's).
        tracker = WandBTracker(project, name=name, id=known_id, resume="allow" if known_id else None, tags=wandb_tags,
                               group=planned.experiment, dir=str(run.tracking_dir),
                               settings={"silent": True, "console": "off"})
    else:  # the spec admits only brts.spec.tracking.BACKENDS
        raise ValueError(f"no tracker {backend!r}")
    return tracker


def _setup_lock(backend: str) -> AbstractContextManager[object]:
    """What a tracker holds while it starts. MLflow's SQLite store creates its tables on first use, and
    accelerate's tracker looks the experiment up and then creates it: runs starting at once in several processes
    would both create them, so an MLflow store in an SQLite file is locked beside the file meanwhile."""
    if backend != "mlflow":
        return nullcontext()
    import mlflow

    return sqlite_setup_lock(mlflow.get_tracking_uri())


def _tracker_id(backend: str, tracker: Any) -> str | None:
    if backend == "mlflow":
        return str(tracker.active_run.info.run_id)
    if backend == "wandb":
        return str(tracker.run.id)
    return None


def _problem(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    hint = f"; {INSTALL}" if isinstance(exc, ImportError) else ""
    return f"{type(exc).__name__}: {first}".rstrip(": ") + hint


class RunTracking:
    """The trackers of one run while it executes: `start`, `follow` after each step, `final`, `finish`."""

    def __init__(self, planned: PlannedRun, run: RunFolder, warn: Warn = _stderr) -> None:
        self.planned, self.run, self.warn = planned, run, warn
        self.state: dict[str, dict[str, Any]] = {b: dict(s) for b, s in run.record().get(RECORD_KEY, {}).items()}
        self.live: dict[str, Any] = {}

    @classmethod
    def start(cls, planned: PlannedRun, run: RunFolder, store_root: Path, warn: Warn = _stderr) -> RunTracking:
        """Start every backend of `planned.tracking` (continuing its tracker run when the record has one); a
        backend that fails is one warning line and left out."""
        tracking = cls(planned, run, warn)
        # accelerate's trackers log only on its main process (and need its state to exist): rank 0 of this process
        # group, which for a run trained in several ranks is their parent, `execute_run`.
        if not Ranks().is_main:
            return tracking
        if "mlflow" in planned.tracking.backends and not os.environ.get("MLFLOW_TRACKING_URI"):
            try:
                import mlflow

                mlflow.set_tracking_uri(mlflow_default_uri(store_root))
            except ImportError:
                pass  # reported when the tracker starts
        for backend in planned.tracking.backends:
            known = tracking.state.get(backend)
            try:
                with _setup_lock(backend):
                    tracker = _tracker(backend, planned, run, known.get("id") if known else None)
                    tracker.start()
                if known is None:  # a new tracker run: the config once (a resumed run's is the same)
                    tracker.store_init_configuration(hyperparameters(planned))
            except Exception as exc:
                tracking._drop(backend, f"did not start ({_problem(exc)})")
                continue
            tracking.live[backend] = tracker
            tracking.state[backend] = {"id": _tracker_id(backend, tracker),
                                       "step": known.get("step", -1) if known else -1}
        tracking._save()
        return tracking

    def _drop(self, backend: str, what: str) -> None:
        self.live.pop(backend, None)
        p = self.planned
        self.warn(f"warning: {p.experiment} {p.arm} seed {p.seed}: tracker {backend} {what}; the run goes on "
                  f"without it (metrics.jsonl keeps every metric)")

    def _save(self) -> None:
        if self.live:
            self.run.update_record(**{RECORD_KEY: self.state})

    def _send(self, backend: str, values: dict[str, float], step: int | None) -> bool:
        try:
            self.live[backend].log(values, step=step)
        except Exception as exc:
            self._drop(backend, f"failed to log ({_problem(exc)})")
            return False
        return True

    def follow(self) -> None:
        """Send every metrics.jsonl line past the step each backend was last sent (the step-0 line included)."""
        if not self.live:
            return
        rows = self.run.metrics()
        for backend in list(self.live):
            sent = int(self.state[backend]["step"])
            for row in rows:
                if row["step"] > sent:
                    if not self._send(backend, step_values(row), int(row["step"])):
                        break
                    self.state[backend]["step"] = sent = int(row["step"])
        self._save()

    def final(self, tasks: Mapping[str, Mapping[str, Any]]) -> None:
        """The final evaluation's avg@k/pass@k/maj@k per task, at the last training step (W&B: its next step,
        which is all it accepts after a resume)."""
        values = final_values(tasks)
        for backend in list(self.live):
            step = None if backend == "wandb" else self.planned.config.train.steps
            self._send(backend, values, step)

    def finish(self) -> None:
        for backend, tracker in list(self.live.items()):
            try:
                tracker.finish()
            except Exception as exc:
                self._drop(backend, f"did not finish ({_problem(exc)})")
        self.live.clear()
