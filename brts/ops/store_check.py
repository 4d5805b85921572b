"""`brts store check [--repair]`: every damaged or inconsistent artefact of a run store, one line each.

It walks the store: each experiment's run folders and reference models, each sweep's trial runs and its Optuna
journal, and the teacher sample pool. A run folder is checked whole (brts.store.integrity: record, config,
logs, manifest, every sealed file by its SHA-256) and its `eval/` files against each other
(brts.evaluation.verify); the pool by SQLite's integrity check and each row's digest.

With `repair`, what cannot be trusted is moved aside (never deleted: `.quarantine/` beside it) so that the next
`brts exp run` (or `sweep run`) redoes exactly that work: the run-folder repairs of brts.store.integrity, a
damaged pool file moved aside (rows failing their digest deleted), a damaged sweep journal moved aside.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from brts.rollout.pool import PoolDamaged, SamplePool, move_aside
from brts.runs.integrity import evaluation_disagreement
from brts.spec import STORE_FOLDERS, PoolSpec
from brts.store import RunFolder, RunLocked, RunStore, StoreError
from brts.store.files import QUARANTINE, quarantine
from brts.sweep.study import STUDY_FILE


@dataclass
class StoreCheck:
    """What a check found (and, with repair, moved): one line each, and what it looked at."""

    root: Path
    damaged: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)  # not damage: the next `brts exp run` resumes them
    runs: int = 0
    references: int = 0
    sweeps: int = 0
    pool: str = "no pool"

    @property
    def ok(self) -> bool:
        return not self.damaged

    def summary(self) -> str:
        looked = (f"{self.runs} run folder(s), {self.references} reference(s), {self.sweeps} sweep(s), "
                  f"{self.pool}")
        if self.interrupted:
            looked += f"; {len(self.interrupted)} interrupted run(s), resumed by the next `brts exp run`"
        if self.ok:
            return f"store {self.root}: every artefact intact ({looked})"
        done = ("moved aside; `brts exp run` (or `sweep run`) redoes that work" if self.repaired
                else "`brts store check --repair` moves them aside")
        return f"store {self.root}: {len(self.damaged)} damaged artefact(s) in {looked}; {done}"


def check_store(root: Path, repair: bool = False, pool_file: Path | None = None) -> StoreCheck:
    """Check (and with `repair`, repair) every artefact of the store at `root` (see the module docstring);
    `pool_file`: the pool to check (default: the store's own). Without `repair` nothing is written (a store this
    user cannot write is checked as well); a file that cannot be read, or a repair that cannot write, is one line
    (StoreError)."""
    if root.exists() and not root.is_dir():
        raise StoreError(f"run store {root} exists and is not a folder; pass --store with a folder path")
    try:
        return _check_store(root, repair, pool_file)
    except PermissionError as exc:
        need = "write" if repair else "read"
        raise StoreError(f"{exc.filename}: {exc.strerror}; run `brts store check{' --repair' if repair else ''}` as "
                         f"a user who can {need} the store") from None


def _check_store(root: Path, repair: bool, pool_file: Path | None) -> StoreCheck:
    store = RunStore(root)
    result = StoreCheck(root)
    for experiment in _experiments(store):
        for folder in _run_folders(store.experiment_dir(experiment)):
            result.runs += 1
            _check_run(folder, repair, result)
        for role in ("teacher", "student_start"):
            reference = store.reference(experiment, role)
            if reference.path.is_dir():
                result.references += 1
                _check_run(reference, repair, result)
    for sweep in store.sweeps():
        result.sweeps += 1
        for folder in _run_folders(store.sweep_dir(sweep)):
            result.runs += 1
            _check_run(folder, repair, result)
        _check_journal(store.sweep_dir(sweep) / STUDY_FILE, repair, result)
    _check_pool(pool_file or store.pool_file(PoolSpec()), repair, result)
    return result


def _experiments(store: RunStore) -> list[str]:
    """Every folder of the store that holds runs or references (also those whose records were moved aside); not
    the store's own folders (sweeps are walked apart; each `repro/<environment>` is a store of its own)."""
    if not store.root.is_dir():
        return []
    return sorted(p.name for p in store.root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in STORE_FOLDERS)


def _run_folders(base: Path) -> list[RunFolder]:
    """The run folders under `base`: those with a record or a config (a record moved aside leaves the config)."""
    if not base.is_dir():
        return []
    return [RunFolder(p) for p in sorted(base.iterdir())
            if p.is_dir() and p.name not in ("reference", QUARANTINE) and any(
                (p / name).is_file() for name in ("record.json", "config.yaml"))]


def _check_run(run: RunFolder, repair: bool, result: StoreCheck) -> None:
    status = run.live_status()
    if status == "interrupted":
        holder = run.holder()
        result.interrupted.append(f"{run.path}: interrupted (its process{f', {holder},' if holder else ''} is gone)")
    damages = run.damage(unsealed=status != "running")  # a live run writes its parts before it seals them
    damages += evaluation_disagreement(run, damages)
    result.damaged += [str(d) for d in damages]
    if repair and damages:
        try:
            with run.lock():  # never under a process executing the run
                result.repaired += run.repair(damages)
        except RunLocked:
            result.repaired.append(f"{run.path}: not repaired, a process is executing it; check again when it ends")


def _check_journal(path: Path, repair: bool, result: StoreCheck) -> None:
    """A sweep's Optuna journal: one JSON object a line (a torn last line is Optuna's to finish)."""
    if not path.is_file():
        return
    lines = path.read_bytes().split(b"\n")
    lines.pop()
    for number, raw in enumerate(lines, 1):
        try:
            ok = isinstance(json.loads(raw.decode("utf-8")), dict)
        except (UnicodeDecodeError, json.JSONDecodeError):
            ok = False
        if not ok:
            result.damaged.append(f"{path}: line {number} is not a journal entry")
            if repair:
                moved = quarantine(path, path.parent)
                result.repaired.append(f"{path}: moved aside to {moved}; the next `brts sweep run` starts a new study "
                                       "(its finished trial runs are reused)")
            return


def _check_pool(path: Path, repair: bool, result: StoreCheck) -> None:
    """The pool, opened read-only; with `repair`, opened for writing only when something is to be repaired."""
    if not path.exists():
        return
    try:
        pool = SamplePool(path, repair=False, read_only=True)
    except PoolDamaged as exc:
        result.pool = "a damaged pool"
        result.damaged.append(str(exc))
        if repair:
            result.repaired.append(f"{path}: moved aside to {move_aside(path)}; runs start a new pool")
        return
    try:
        problems = pool.verify()
        result.pool = f"a pool of {pool.stats().samples} samples"
    except (PoolDamaged, sqlite3.DatabaseError) as exc:  # damage deeper than the first pages
        problems = [str(exc) if isinstance(exc, PoolDamaged) else f"teacher sample pool {path} is damaged ({exc})"]
    finally:
        pool.close()
    result.damaged += problems
    structural = [p for p in problems if "fail their digest" not in p]
    if repair and problems and not structural:
        try:
            writer = SamplePool(path, repair=False)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"teacher sample pool {path} cannot be repaired ({exc}); run `brts store check "
                             "--repair` as a user who can write the store") from None
        try:
            writer.verify(repair=True)
        finally:
            writer.close()
        result.repaired.append(f"{path}: rows that failed their digest deleted (drawn again when next asked)")
    if repair and structural:
        result.pool = "a damaged pool"
        result.repaired.append(f"{path}: moved aside to {move_aside(path)}; runs start a new pool")
