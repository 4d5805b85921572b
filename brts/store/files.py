"""Files the store writes and reads: JSON replaced atomically, append-only JSON-lines logs whose torn last line
(a process killed mid-write) is ignored by the one reader every caller uses, SHA-256 digests of files, and the
quarantine where a damaged file is moved aside (never deleted)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock

from brts.errors import UserError

QUARANTINE = ".quarantine"  # <folder>/.quarantine/<UTC time>/<path>: what was moved aside as damaged


class DamagedFile(UserError):
    """A store file that cannot be read back (not JSON, a line in the middle of a log that is not JSON, not what
    its manifest says); the message names the file."""


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def quarantine(path: Path, base: Path) -> Path:
    """Move `path` (a file or folder inside `base`) to `base/.quarantine/<UTC time>/<its path below base>`; returns
    where it went. Nothing is deleted: a user can inspect or restore it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    try:
        relative = path.resolve().relative_to(base.resolve())
    except ValueError:
        relative = Path(path.name)
    target = base / QUARANTINE / stamp / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))
    return target


def sqlite_setup_lock(url: str) -> AbstractContextManager[object]:
    """For an SQLAlchemy URL `sqlite:///PATH` whose folder exists, a lock beside the file (`PATH.lock`) to hold
    while a library sets the database up: Optuna and MLflow look for their tables and then create them, which
    fails ("table ... already exists") when two processes do it at once. For another URL, no lock."""
    scheme, sep, rest = url.partition("://")
    path = rest.removeprefix("/").partition("?")[0]
    if not sep or scheme.partition("+")[0].lower() != "sqlite" or path in ("", ":memory:"):
        return nullcontext()
    db = Path(path)
    return FileLock(str(db.with_name(db.name + ".lock"))) if db.parent.is_dir() else nullcontext()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file and rename, so readers never see a torn file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; set back at once (at import, before any thread)
    os.umask(mask)
    return mask


UMASK = _read_umask()


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temp file and rename; the file gets the mode `open` would give it (0666 less the umask),
    not mkstemp's 0600, so a store shared by a group stays readable to it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.fchmod(fd, 0o666 & ~UMASK)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_json(path: Path, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON object file, or `default` (an empty dict) when there is none; DamagedFile (naming the file) when it
    is empty, truncated, not UTF-8 or not a JSON object."""
    if not path.exists():
        return dict(default or {})
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = "empty" if path.stat().st_size == 0 else f"not JSON ({getattr(exc, 'msg', None) or exc.reason})"
        raise DamagedFile(f"{path}: {reason}") from None
    if not isinstance(data, dict):
        raise DamagedFile(f"{path}: not a JSON object")
    return data


def read_jsonl_intact(path: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The records of a JSON-lines log up to its first bad line, and what is wrong with that line (None when
    every line is good). A torn last line (no newline yet) is not bad: a writer appends whole lines, so a process
    killed in the middle of a write leaves only its last line without the newline; it is left out (or kept when
    it parses: only the newline was lost). A bad line is one that is not UTF-8, not JSON, not a JSON object, or
    whose `step` is not a whole number at least the one before it."""
    if not path.exists():
        return [], None
    lines = path.read_bytes().split(b"\n")
    torn = lines.pop()  # b"" after a final newline; else the unfinished last line
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        record, problem = _parse_record(raw, records[-1] if records else None)
        if record is None:
            return records, f"line {number} {problem}"
        records.append(record)
    if torn.strip():
        record, _ = _parse_record(torn, records[-1] if records else None)
        if record is not None:
            records.append(record)
    return records, None


def _parse_record(raw: bytes, previous: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """A log line as a record, or None and what is wrong with it."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"is not a JSON record ({getattr(exc, 'msg', None) or exc.reason})"
    if not isinstance(record, dict):
        return None, "is not a JSON object"
    step, before = record.get("step", 0), (previous or {}).get("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0 or step < before:
        return None, f"has step {step!r} after step {before}"
    return record, ""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log (a torn last line left out); DamagedFile, naming the file and the line,
    when a line is bad (see read_jsonl_intact)."""
    records, bad = read_jsonl_intact(path)
    if bad is not None:
        raise DamagedFile(f"{path}: {bad}; `brts store check --repair` keeps the lines before it and the next "
                          "`brts exp run` repeats the steps after them")
    return records


class JsonlLog:
    """An append-only JSON-lines log (`metrics.jsonl`, `validation.jsonl`); on resume, lines past a step go."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)

    def truncate_after(self, step: int) -> None:
        """Keep the records up to `step` (and drop a torn last line), rewriting the file atomically."""
        if not self.path.exists():
            return
        keep = [r for r in self.read() if r["step"] <= step]
        write_text_atomic(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
