"""How large a problem file's rows may be: checked before a run starts (`brts exp show`, `exp run`), so a row that
would stop a tokenizer or a model mid-run is one line naming the file and the line instead.

Read line by line with a bound on each line, so a file of any size is checked in bounded memory.
"""

from __future__ import annotations

import json
from pathlib import Path

from brts.tasks.sources import TaskDataError

MAX_LINE_BYTES = 1 << 20  # one JSON object a line: far above a real problem with its solution
MAX_PROBLEM_CHARS = 20_000  # a competition problem is a few thousand characters at most
MAX_ANSWER_CHARS = 1_000


def check_problem_file(path: Path, label: str, problem_field: str = "problem", answer_field: str = "answer") -> None:
    """Refuse (TaskDataError: `label`, the file, the line) a line longer than MAX_LINE_BYTES, not UTF-8 or not
    JSON (an integer too long to read included), and a problem or answer longer than its cap."""
    caps = ((problem_field, MAX_PROBLEM_CHARS, "problem"), (answer_field, MAX_ANSWER_CHARS, "answer"))
    with open(path, "rb") as fh:
        for number, raw in enumerate(iter(lambda: fh.readline(MAX_LINE_BYTES + 1), b""), start=1):
            where = f"{label}: {path}: line {number}"
            if len(raw) > MAX_LINE_BYTES:
                raise TaskDataError(f"{where} is longer than {MAX_LINE_BYTES // 1024} KiB; a row holds one problem "
                                    f"(at most {MAX_PROBLEM_CHARS} characters) and its answer")
            try:
                row = json.loads(raw.decode("utf-8")) if raw.strip() else None
            except UnicodeDecodeError:
                raise TaskDataError(f"{where} is not UTF-8 text; save the file as UTF-8") from None
            except (ValueError, RecursionError) as exc:  # JSONDecodeError, an integer past Python's digit limit
                raise TaskDataError(f"{where} is not JSON that can be read ({str(exc).split(':')[0]})") from None
            if not isinstance(row, dict):
                continue  # blank, or not an object: the reader names it
            for field, cap, what in caps:
                value = row.get(field)
                size = len(value) if isinstance(value, str) else len(json.dumps(value)) if value is not None else 0
                if size > cap:
                    raise TaskDataError(f"{where}: {what} {field!r} is {size} characters, more than the {cap} a "
                                        f"{what} may have; shorten it or leave the row out")
