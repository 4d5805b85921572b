"""Files the store writes and reads: JSON replaced atomically, and append-only JSON-lines logs whose torn last
line (a process killed mid-write) is ignored by the one reader every caller uses."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from brts.errors import UserError


class DamagedFile(UserError):
    """A store file that cannot be read back (a line in the middle of a log that is not JSON)."""


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temp file and rename, so readers never see a torn file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_json(path: Path, default: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON object file, or `default` (an empty dict) when there is none."""
    if not path.exists():
        return dict(default or {})
    data: dict[str, Any] = json.loads(path.read_text())
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
