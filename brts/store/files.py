"""Files the store writes and reads: JSON replaced atomically, append-only JSON-lines logs whose torn last line
(a process killed mid-write) is ignored by the one reader every caller uses, SHA-256 digests of files, and the
quarantine where a damaged file is moved aside (never deleted)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file and rename, so readers never see a torn file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log; a torn last line (no newline yet) is left out, a bad line elsewhere raises.

    A writer appends whole lines, so only the last one can be incomplete: a process killed in the middle of a
    write leaves it without its newline.
    """
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    torn = lines.pop()  # "" after a final newline; else the unfinished last line
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DamagedFile(f"{path}: line {number} is not a JSON record ({exc.msg}); the file is damaged: restore "
                              "it, or delete the run folder to run it again") from None
    if torn.strip():
        with contextlib.suppress(json.JSONDecodeError):  # one that parses is complete: only its newline was lost
            records.append(json.loads(torn))
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
