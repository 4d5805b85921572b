"""The run store's layout: where each run, reference, sweep and the shared teacher sample pool live.

    <store>/<experiment>/<run_id>/            an experiment's run (brts.store.folder)
    <store>/<experiment>/reference/<role>/    its reference models (teacher, student_start)
    <store>/sweeps/<sweep>/<run_id>/          a sweep's trial runs; `study.log` its default Optuna study
    <store>/.pool/teacher-samples.sqlite      the one teacher sample pool of every run in the store
    <store>/.submitit/<experiment>/           the Slurm executor's job folders
    <store>/repro/<environment>/              a store of its own per floating-point environment (`brts exp repro`)
    <store>/repro/<environment>.log           that environment's `brts exp run` output
    <store>/repro/<experiment>.csv|.json      the comparison of the environments' tables

Everything that locates a file in a store asks this class.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from brts.errors import UserError
from brts.spec import STORE_FOLDERS, PoolSpec, RunConfig
from brts.store.folder import RunFolder, now

POOL_FILE = Path(".pool") / "teacher-samples.sqlite"
SWEEPS, REPRO = STORE_FOLDERS  # no experiment may be named like them (brts.spec refuses it)
REFERENCE = "reference"
REFERENCE_ROLES = ("teacher", "student_start")  # the reference models of an experiment: its teacher, its student


class StoreError(UserError):
    """The store folder cannot be used (not writable, not a folder)."""


class RunAddress(Protocol):
    """What locates a run in a store and labels its record (a brts.runs.plan.PlannedRun)."""

    @property
    def experiment(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def arm(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def config(self) -> RunConfig: ...


class RunStore:
    """Run folders under one root; preparing one writes its resolved config and a `planned` record."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def check_writable(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"run store {self.root} exists and is not a folder; pass --store with a folder path")
        probe = self.root
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK):
            raise StoreError(f"run store {self.root} is not writable; pass --store with a writable folder")

    # --- locations ---

    def experiment_dir(self, experiment: str) -> Path:
        return self.root / experiment

    def sweep_dir(self, sweep: str) -> Path:
        """A sweep's folder: its trial runs, its default study file and its workers' lock files."""
        return self.root / SWEEPS / sweep

    def folder(self, experiment: str, run_id: str, kind: str = "experiment") -> RunFolder:
        base = self.sweep_dir(experiment) if kind == "sweep" else self.experiment_dir(experiment)
        return RunFolder(base / run_id)

    def run(self, run: RunAddress) -> RunFolder:
        return self.folder(run.experiment, run.run_id, run.kind)

    def reference(self, experiment: str, role: str) -> RunFolder:
        return RunFolder(self.experiment_dir(experiment) / REFERENCE / role)

    def pool_file(self, pool: PoolSpec) -> Path:
        """The teacher sample pool: the spec's `pool.path`, else the store's own (shared by every run in it)."""
        return Path(pool.path).expanduser() if pool.path else self.root / POOL_FILE

    def submitit_dir(self, experiment: str) -> Path:
        return self.root / ".submitit" / experiment

    def environment_store(self, environment: str) -> RunStore:
        """The store of one floating-point environment of `brts exp repro` (runs are keyed by config, not by
        environment, so each environment needs its own)."""
        return RunStore(self.root / REPRO / environment)

    def environment_log(self, environment: str) -> Path:
        return self.root / REPRO / f"{environment}.log"

    def repro_table(self, experiment: str, suffix: str) -> Path:
        """The comparison of an experiment's tables across environments (`suffix`: ".csv" or ".json")."""
        return self.root / REPRO / f"{experiment}{suffix}"

    # --- runs ---

    def prepare(self, run: RunAddress) -> RunFolder:
        """The run's folder, created with a `planned` record the first time (or when its record is damaged: the
        new one starts from the plan); `config.yaml` is rewritten when the resolved config changed (only its
        evaluation settings and memory-only settings such as `train.logprob_chunk` can: the run id covers the
        rest) or cannot be read."""
        folder = self.run(run)
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.write_config(run.config)
        if not folder.record_path.exists() or folder.status == "damaged":  # a damaged one is moved aside
            folder.update_record(status="planned", run_id=run.run_id, experiment=run.experiment, arm=run.arm,
                                 seed=run.seed, created=now())
        return folder

    def find_finished(self, run_id: str) -> RunFolder | None:
        """A finished run with this id in any experiment's or sweep's folder of the store, if there is one."""
        records = sorted((*self.root.glob(f"*/{run_id}/record.json"),
                          *self.root.glob(f"{SWEEPS}/*/{run_id}/record.json")))
        for record in records:
            run = RunFolder(record.parent)
            if run.status == "finished":
                return run
        return None

    def experiments(self) -> list[str]:
        """The names of the experiments with run folders in the store."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and p.name not in STORE_FOLDERS and not p.name.startswith(".") and self.runs(p.name))

    def sweeps(self) -> list[str]:
        """The names of the sweeps with a folder in the store."""
        base = self.root / SWEEPS
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def runs(self, experiment: str) -> list[RunFolder]:
        """The run folders of an experiment (its reference folder is not one)."""
        base = self.experiment_dir(experiment)
        if not base.exists():
            return []
        return [RunFolder(p) for p in sorted(base.iterdir()) if RunFolder(p).is_run]

    def find(self, run_id: str) -> RunFolder | None:
        """The first run folder with this id in an experiment's or sweep's folder of the store."""
        found = sorted(p for p in (*self.root.glob(f"*/{run_id}"), *self.root.glob(f"{SWEEPS}/*/{run_id}"))
                       if RunFolder(p).is_run)
        return RunFolder(found[0]) if found else None
