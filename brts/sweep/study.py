"""The Optuna side of a sweep: storage, study, sampler, pruner, and the bookkeeping of trials across workers."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
from filelock import FileLock, Timeout
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from brts.errors import UserError
from brts.store import RunStore
from brts.store.files import sqlite_setup_lock
from brts.sweep.spec import Sweep

# A live worker records a heartbeat this often; a trial without one for GRACE seconds is failed and retried.
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
# A brts worker tags its trial within milliseconds of asking; an untagged running trial this old was orphaned.
UNTAGGED_GRACE = timedelta(seconds=60)
WORKER_ATTR = "brts:worker"
STUDY_FILE = "study.log"

optuna.logging.set_verbosity(logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class SweepError(UserError, RuntimeError):
    """A sweep cannot start or be read (storage that cannot be opened, a study from another spec); one line."""


def storage_url(sweep: Sweep, store_root: Path, override: str | None = None) -> str:
    """The storage as given (--storage, then the spec), else the journal file in the sweep's folder."""
    chosen = override or sweep.spec.storage
    return chosen if chosen else str(RunStore(store_root).sweep_dir(sweep.name) / STUDY_FILE)


def _retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Enqueue a failed-while-running trial again with the same parameters (its runs resume from checkpoints)."""
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def open_storage(url: str, *, create: bool) -> BaseStorage:
    """An Optuna storage: `scheme://...` is an RDB URL (SQLite, PostgreSQL, MySQL) or Redis; else a journal file.

    With `create=False` nothing is created (status, show). Raises SweepError with one line.
    """
    try:
        if "://" not in url:
            path = Path(url).expanduser()
            if not create and not path.is_file():
                raise SweepError(f"storage {url}: no study file there yet; run `brts sweep run` first")
            if not path.parent.is_dir():
                raise SweepError(f"storage {url}: folder {path.parent} does not exist; create it or give another path")
            return JournalStorage(JournalFileBackend(str(path)))
        scheme = url.split("://", 1)[0].lower()
        if scheme in ("redis", "rediss"):
            from optuna.storages.journal import JournalRedisBackend

            return JournalStorage(JournalRedisBackend(url))
        if scheme == "sqlite" and not create:
            db = url.split("://", 1)[1].removeprefix("/")
            if db and not Path(db).is_file():
                raise SweepError(f"storage {url}: no database file there yet; run `brts sweep run` first")
        # Optuna creates its tables when they are missing: two `brts sweep run` starting on one new SQLite file
        # would both create them, so creating holds a lock beside the file.
        with sqlite_setup_lock(url) if create else nullcontext():
            return RDBStorage(url, skip_table_creation=not create, heartbeat_interval=HEARTBEAT_SECONDS,
                              grace_period=GRACE_SECONDS, heartbeat_stale_trial_callback=_retry)
    except SweepError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # a journal file with a line that is not JSON
        raise _damaged(url, exc) from None
    except Exception as exc:  # drivers raise anything: ImportError, sqlalchemy errors, OSError, ValueError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SweepError(f"storage {url}: cannot open it ({type(exc).__name__}: {first}); give a journal file path, "
                         "sqlite:///PATH, postgresql://USER@HOST/DB or redis://HOST") from None


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its `study.stop()` at the end of the grid, which only works inside
    `Study.optimize`; the sweep's worker loop stops by itself when no grid point is left."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        return None


def make_sampler(sweep: Sweep, draw: int = 0) -> optuna.samplers.BaseSampler:
    """The spec's sampler, seeded for the `draw`-th trial of the study.

    TPE and random samplers are made anew for every trial with a seed from (spec seed, trial count): parallel
    workers and resumed sweeps would otherwise replay one random stream and ask for the same values twice.
    """
    s = sweep.spec.sampler
    if s.name == "grid":  # its seed fixes the grid's order, which its trials' grid ids refer to: never reseed
        return _GridSampler(sweep.grid(), seed=s.seed)
    digest = hashlib.sha256(f"{s.seed}:{draw}".encode()).digest()
    seed = int.from_bytes(digest[:4], "little")
    if s.name in ("random", "points"):  # points: every trial is enqueued with all its values fixed
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: parallel workers do not all pick the point a running trial already explores.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.startup_trials, multivariate=True,
                                      constant_liar=True)


def make_pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    p = sweep.spec.pruner
    if p.name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=p.p_threshold, n_startup_steps=p.startup_steps)
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.startup_steps)
    return optuna.pruners.NopPruner()


def create_or_load(sweep: Sweep, storage: BaseStorage, url: str) -> optuna.Study:
    """The sweep's study, created on first use; refuses a study that a different sweep spec made."""
    directions = [o.direction for o in sweep.objectives]
    try:
        study = optuna.create_study(storage=storage, study_name=sweep.name, directions=directions,
                                    load_if_exists=True, sampler=make_sampler(sweep), pruner=make_pruner(sweep))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:  # a journal line that is not UTF-8 or not JSON
        raise _damaged(url, exc) from None
    identity = sweep.identity()
    recorded = study.user_attrs.get("brts:identity")
    if recorded is None:
        study.set_user_attr("brts:identity", identity)
        study.set_user_attr("brts:spec", sweep.spec.model_dump(mode="json"))
        study.set_metric_names([o.metric for o in sweep.objectives])
    elif recorded != identity:
        changed = ", ".join(k for k in identity if recorded.get(k) != identity[k])
        raise SweepError(f"{sweep.source}: study {sweep.name!r} in {url} was made by a different sweep ({changed} "
                         "changed); restore the spec, or give another --storage or sweep name")
    elif [d.name.lower() for d in study.directions] != directions:
        raise SweepError(f"{sweep.source}: study {sweep.name!r} in {url} has other objective directions")
    return study


def load_existing(sweep: Sweep, url: str) -> optuna.Study:
    """The sweep's study for reading (status); creates nothing. Raises SweepError when there is none."""
    storage = open_storage(url, create=False)
    try:
        return optuna.load_study(study_name=sweep.name, storage=storage)
    except KeyError:
        raise SweepError(f"no study {sweep.name!r} in {url} yet; run `brts sweep run {sweep.name}` first") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(url, exc) from None


def _damaged(url: str, exc: Exception) -> SweepError:
    return SweepError(f"storage {url}: damaged, cannot be read ({type(exc).__name__}); `brts store check --repair` "
                      "moves a damaged journal aside (the next `brts sweep run` starts a new study and reuses its "
                      "finished trial runs)")


def completed_states(sweep: Sweep) -> tuple[TrialState, ...]:
    """The states that count toward the budget: pruned trials count when pruning is on (it saves their cost)."""
    return (TrialState.COMPLETE, TrialState.PRUNED) if sweep.spec.pruner.name != "none" else (TrialState.COMPLETE,)


@dataclass(frozen=True)
class Counts:
    done: int
    running: int
    waiting: int
    failed: int


def counts(study: optuna.Study, sweep: Sweep) -> Counts:
    trials = study.get_trials(deepcopy=False)
    done_states = completed_states(sweep)
    return Counts(
        done=sum(t.state in done_states for t in trials),
        running=sum(t.state == TrialState.RUNNING for t in trials),
        waiting=sum(t.state == TrialState.WAITING for t in trials),
        failed=sum(t.state == TrialState.FAIL for t in trials),
    )


class WorkerLock:
    """A lock file each worker process holds while it lives: the OS frees it when the process dies, however it dies."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.path = folder / f"{self.host}-{self.pid}.lock"
        self._lock = FileLock(str(self.path))
        self._lock.acquire(timeout=0)

    def tag(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "lock": str(self.path)}

    def release(self) -> None:
        self._lock.release()
        self.path.unlink(missing_ok=True)


def _worker_gone(tag: dict[str, Any]) -> bool:
    """True when the trial's worker ran on this host and its lock is free (that process has ended). Reads only."""
    if tag.get("host") != socket.gethostname() or tag.get("pid") == os.getpid():
        return False
    lock = FileLock(str(tag["lock"]))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


def _holder_is_dead(tag: dict[str, Any]) -> bool:
    """`_worker_gone`, and its lock file removed."""
    if not _worker_gone(tag):
        return False
    Path(tag["lock"]).unlink(missing_ok=True)
    return True


def dead_trials(study: optuna.Study) -> set[int]:
    """The numbers of RUNNING trials whose worker has stopped (killed or lost), changing nothing: on this host its
    lock file is free; anywhere, an RDB storage's heartbeat is stale; or it was never tagged by a worker. `brts
    sweep run` fails and retries them (`fail_stale`)."""
    storage = study._storage  # Study has no public storage; the heartbeat API is Optuna's own (RDB only)
    stale: set[int] = set()
    if isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage):
        stale = set(storage._get_stale_trial_ids(study._study_id))
    now = datetime.now()
    dead = set()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = trial.system_attrs.get(WORKER_ATTR)
        orphan = tag is None and trial.datetime_start is not None and now - trial.datetime_start > UNTAGGED_GRACE
        if trial._trial_id in stale or orphan or (tag is not None and _worker_gone(tag)):
            dead.add(trial.number)
    return dead


def fail_stale(study: optuna.Study) -> list[int]:
    """Mark running trials whose worker died as FAIL and enqueue each again; returns their numbers.

    A worker on this host is dead when its lock file is free; on other hosts an RDB storage's heartbeat decides.
    """
    optuna.storages.fail_stale_trials(study)
    now = datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        tag = trial.system_attrs.get(WORKER_ATTR)
        orphan = tag is None and trial.datetime_start is not None and now - trial.datetime_start > UNTAGGED_GRACE
        if orphan or (tag is not None and _holder_is_dead(tag)):
            try:  # the storage call Optuna's own fail_stale_trials makes; Study has no public one
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker got there first
            _retry(study, trial)
            failed.append(trial.number)
    return failed


def trial_error(trial: FrozenTrial) -> str:
    """Why a FAIL trial failed, in one line."""
    if "error" in trial.user_attrs:
        return str(trial.user_attrs["error"])
    return "its worker stopped while it ran (killed or lost); retried as a new trial"
