"""One run's folder: the only code that knows the names of the files in it.

    config.yaml        the resolved RunConfig (its hash is the run id)
    record.json        status (planned, running, stopped, finished, failed), times, versions, errors, `eval`,
                       `tracking` (each tracker's run id, so a resumed run continues it; the last step sent)
    metrics.jsonl      one line per training step (and step 0): every metric (docs/method.md)
    validation.jsonl   per validation step, each split's per-problem fraction correct
    checkpoints/       model, optimiser and RNG states (brts.store.checkpoint)
    final/             the trained student and its tokenizer
    eval/              the final evaluation (its layout: brts.evaluation.evaluate)
    manifest.json      size and SHA-256 of every file of final/, each checkpoint and eval/ (brts.store.integrity)
    .quarantine/       what was found damaged, moved aside (never deleted)
    error.log          the traceback of the last failure
    tracking/          the experiment trackers' local files (TensorBoard events, W&B offline runs)
    launch.log         the ranks' output of a multi-process run; `.launch-error` its first error line
    .lock              held while a process executes the run; names its host and pid (brts.store.lock)

A reference model's folder (the teacher or the starting student, evaluated once per experiment) is a RunFolder
too: it holds `record.json`, `eval/`, `error.log` and `.lock` with the same meaning.
"""

from __future__ import annotations

import platform
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import yaml

import brts
from brts.errors import warn
from brts.spec import RunConfig, resolved_yaml
from brts.store import integrity
from brts.store.files import (
    DamagedFile,
    JsonlLog,
    quarantine,
    read_json,
    read_jsonl,
    write_json_atomic,
    write_text_atomic,
)
from brts.store.integrity import Damage, Manifest
from brts.store.lock import Holder, RunLock

# "stopped": ended early on purpose (a pruned sweep trial); like "running" after a kill, it resumes when run again.
# "damaged": record.json cannot be read (the next invocation writes a new one). "interrupted" is never written:
# readers say it of a "running" run whose process is gone (RunFolder.live_status).
Status = Literal["planned", "running", "stopped", "finished", "failed", "damaged"]
VERSIONED_PACKAGES = ("torch", "transformers", "tokenizers", "pydantic", "math-verify", "numpy")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    """One run's folder and the files in it (see the module docstring)."""

    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def record_path(self) -> Path:
        return self.path / "record.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def validation_path(self) -> Path:
        return self.path / "validation.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def final(self) -> Path:
        return self.path / "final"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def error_log(self) -> Path:
        return self.path / "error.log"

    @property
    def tracking_dir(self) -> Path:
        return self.path / "tracking"

    @property
    def launch_log(self) -> Path:
        return self.path / "launch.log"

    @property
    def launch_error(self) -> Path:
        return self.path / ".launch-error"

    @property
    def is_run(self) -> bool:
        """Whether the folder holds a run (or reference) record."""
        return self.record_path.is_file()

    @property
    def trained(self) -> bool:
        """Whether the trained student is saved (`final/`): the run is never trained again."""
        return self.final.exists()

    # --- the record ---

    def record(self) -> dict[str, Any]:
        """`record.json`, or `{"status": "planned"}` without one; `{"status": "damaged", "error": ...}` (naming the
        file) when it cannot be read."""
        try:
            return read_json(self.record_path, {"status": "planned"})
        except DamagedFile as exc:
            return {"status": "damaged", "run_id": self.path.name, "error": str(exc)}

    @property
    def status(self) -> Status:
        status: Status = self.record().get("status", "planned")
        return status

    def update_record(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into the record; a damaged record is moved aside first and the new one starts from
        `fields` (one line on stderr)."""
        try:
            current = read_json(self.record_path)
        except DamagedFile as exc:
            moved = quarantine(self.record_path, self.path)
            warn(f"{exc}; moved aside to {moved}; a new record is written")
            current = {"rebuilt": now()}
        record = {**current, **fields}
        write_json_atomic(self.record_path, record)
        return record

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock (brts.store.lock); raises RunLocked at once when another process holds it."""
        lock = RunLock(self.path / ".lock")
        lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def wait_unlocked(self, poll_seconds: float = 0.5) -> None:
        """Block until no process holds the run's lock. Another may take it at once after: callers try again."""
        RunLock(self.path / ".lock").wait(poll_seconds)

    def holder(self) -> Holder | None:
        """The process that holds (or last held and was killed holding) the run's lock; None when nobody does."""
        return RunLock(self.path / ".lock").holder()

    def live_status(self, record: dict[str, Any] | None = None) -> str:
        """The record's status, except that a `running` run whose lock no live process holds (killed, or stopped
        with Ctrl-C) is `interrupted`: the next `brts exp run` resumes it."""
        status = str((self.record() if record is None else record).get("status", "planned"))
        if status != "running":
            return status
        holder = self.holder()
        if holder is None:
            return "running" if RunLock(self.path / ".lock").held() else "interrupted"
        return "interrupted" if holder.alive is False else "running"

    # --- the config ---

    def write_config(self, config: RunConfig) -> None:
        """`config.yaml` as the current resolved config (only its evaluation settings can differ from an earlier
        invocation's: the run id covers the rest)."""
        text = resolved_yaml(config)
        if not self.config_path.exists() or self.config_path.read_bytes() != text.encode():  # a damaged one too
            write_text_atomic(self.config_path, text)

    def config_data(self) -> dict[str, Any]:
        """`config.yaml` as plain data (empty when absent): for readers that must not fail on an older format."""
        if not self.config_path.is_file():
            return {}
        try:
            data = yaml.safe_load(self.config_path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):  # damaged: `brts store check` names it, the next run rewrites it
            return {}
        return data if isinstance(data, dict) else {}

    def config(self) -> RunConfig:
        return RunConfig.model_validate(yaml.safe_load(self.config_path.read_text()))

    # --- the logs ---

    def metrics_log(self) -> JsonlLog:
        return JsonlLog(self.metrics_path)

    def validation_log(self) -> JsonlLog:
        return JsonlLog(self.validation_path)

    def metrics(self) -> list[dict[str, Any]]:
        """Every record of `metrics.jsonl` (a torn last line left out)."""
        return read_jsonl(self.metrics_path)

    def validation(self) -> list[dict[str, Any]]:
        """Every record of `validation.jsonl` (a torn last line left out)."""
        return read_jsonl(self.validation_path)

    def last_step(self) -> int:
        rows = self.metrics()
        return int(rows[-1]["step"]) if rows else 0

    # --- integrity (brts.store.integrity) ---

    @property
    def manifest(self) -> Manifest:
        return Manifest(self.path)

    def seal(self, part: str) -> None:
        """Record the size and SHA-256 of every file of `part` ("final", "eval", a checkpoint's folder)."""
        self.manifest.seal(part)

    def damage(self, hashes: bool = True, unsealed: bool = True) -> list[Damage]:
        """Everything wrong with the folder, one line each (brts.store.integrity.check)."""
        return integrity.check(self.path, hashes, unsealed)

    def sealed_damage(self, parts: Sequence[str]) -> list[Damage]:
        """A missing or unreadable manifest, files never sealed, and the sealed files under `parts` that are not
        what was sealed (brts.store.integrity.sealed_damage)."""
        return integrity.sealed_damage(self.path, parts)

    def newest_checkpoint(self) -> str | None:
        """The newest complete checkpoint folder, relative to the run folder, or None."""
        from brts.store import checkpoint
        found = checkpoint.latest(self.checkpoints)
        return found.relative_to(self.path).as_posix() if found is not None else None

    def repair(self, damages: list[Damage]) -> list[str]:
        """Move aside what `damages` name so running again redoes exactly that work; one line per thing moved."""
        return integrity.repair(self.path, damages)

    def intact_checkpoint(self, usable: Any = None, move_aside: bool = True) -> Path | None:
        """The newest checkpoint folder that is what was sealed and that `usable(path)` (a reader returning why it
        fails, or None) accepts; each newer one is skipped and, with `move_aside`, moved aside with one line on
        stderr (one training rank moves; the others skip the same ones)."""
        from brts.store import checkpoint
        for found in reversed(checkpoint.complete(self.checkpoints)):
            part = found.relative_to(self.path).as_posix()
            try:
                damaged = self.manifest.verify(part)
            except DamagedFile:
                damaged = []  # an unreadable manifest: the loader decides
            why = "; ".join(d.what for d in damaged) or (usable(found) if usable is not None else None)
            if not why:
                return found
            if move_aside:
                moved = quarantine(found, self.path)
                warn(f"{found}: damaged ({why}); moved aside to {moved}; resuming from the checkpoint before it")
        return None

    # --- writing the trained student ---

    def save_final(self, student: Any, tokenizer: Any) -> Path:
        """Write the trained student and its tokenizer to `final/` atomically (once) and seal it."""
        if not self.final.exists():
            tmp = self.path / ".final-tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            student.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            tmp.rename(self.final)
            self.seal("final")
        return self.final

    def write_error(self, traceback_text: str) -> None:
        self.error_log.write_text(traceback_text)
