"""The run store: one folder per run, `<store>/<experiment>/<run_id>/`, with its config, record and lock."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout

import brts
from brts.runs.plan import PlannedRun
from brts.spec import resolved_yaml

# "stopped": ended early on purpose (a pruned sweep trial); like "running" after a kill, it resumes when run again.
Status = Literal["planned", "running", "stopped", "finished", "failed"]
VERSIONED_PACKAGES = ("torch", "transformers", "tokenizers", "pydantic", "math-verify", "numpy")


class StoreError(RuntimeError):
    """The store folder cannot be used (not writable, not a folder)."""


class RunLocked(RuntimeError):
    """Another process is executing this run."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file and rename, so readers never see a torn file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def git_commit() -> str | None:
    root = Path(brts.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    """Where and with what a run executed: recorded in every record."""
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "brts": brts.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "packages": versions,
    }


@dataclass(frozen=True)
class RunFolder:
    """One run's folder and the files in it."""

    path: Path

    @property
    def record_path(self) -> Path:
        return self.path / "record.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def record(self) -> dict[str, Any]:
        if not self.record_path.exists():
            return {"status": "planned"}
        data: dict[str, Any] = json.loads(self.record_path.read_text())
        return data

    @property
    def status(self) -> Status:
        status: Status = self.record().get("status", "planned")
        return status

    def update_record(self, **fields: Any) -> dict[str, Any]:
        record = {**self.record(), **fields}
        write_json_atomic(self.record_path, record)
        return record

    @contextmanager
    def lock(self) -> Any:
        """Hold the run's lock; raises RunLocked at once when another process holds it."""
        lock = FileLock(str(self.path / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout as exc:
            raise RunLocked(str(self.path)) from exc
        try:
            yield
        finally:
            lock.release()


class RunStore:
    """Run folders under one root; creating one writes its resolved config and a `planned` record."""

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

    def folder(self, experiment: str, run_id: str) -> RunFolder:
        return RunFolder(self.root / experiment / run_id)

    def prepare(self, planned: PlannedRun) -> RunFolder:
        """The run's folder, created with a record the first time; `config.yaml` is the current resolved config
        (only its evaluation settings and memory-only settings such as `train.logprob_chunk` can differ from an
        earlier invocation's: the run id covers the rest)."""
        run = self.folder(planned.experiment, planned.run_id)
        run.path.mkdir(parents=True, exist_ok=True)
        config = resolved_yaml(planned.config)
        path = run.path / "config.yaml"
        if not path.exists() or path.read_text() != config:
            write_text_atomic(path, config)
        if not run.record_path.exists():
            run.update_record(
                status="planned", run_id=planned.run_id, experiment=planned.experiment,
                arm=planned.arm, seed=planned.seed, created=now(),
            )
        return run

    def find_finished(self, run_id: str) -> RunFolder | None:
        """A finished run with this id in any experiment's or sweep's folder of the store, if there is one."""
        for record in sorted((*self.root.glob(f"*/{run_id}/record.json"),
                              *self.root.glob(f"sweeps/*/{run_id}/record.json"))):
            run = RunFolder(record.parent)
            if run.status == "finished":
                return run
        return None

    def runs(self, experiment: str) -> list[RunFolder]:
        base = self.root / experiment
        if not base.exists():
            return []
        return [RunFolder(p) for p in sorted(base.iterdir()) if (p / "record.json").exists()]
