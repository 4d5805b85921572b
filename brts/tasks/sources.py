"""Reading problem sets: JSON-lines files and Hugging Face hub datasets, each mistake one line naming the file or
dataset and what to give instead. The math task reads its problems here, and so do the evaluation's task hooks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brts.errors import UserError


class TaskDataError(UserError, ValueError):
    """A task's data cannot be read: a missing file or folder, or rows without the expected fields."""


def read_jsonl(path: Path, label: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each line of an existing JSON-lines file, blank lines skipped; raises
    TaskDataError (one line, starting with `label`) at the first line that is not a JSON object."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{label}: {path}: line {number} is not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise TaskDataError(f"{label}: {path}: line {number} is not a JSON object; one object per line")
        rows.append((number, row))
    return rows


def load_hub(path: str, split: str, label: str, instead: str, subset: str | None = None) -> Any:
    """One split of a Hugging Face hub dataset; raises TaskDataError (one line: `label`, the cause, and
    `instead`, what to give in its place) when it cannot be loaded."""
    import datasets

    try:
        if subset is None:
            return datasets.load_dataset(path, split=split)
        return datasets.load_dataset(path, subset, split=split)
    except Exception as exc:  # offline, unknown id, no access: one line that says what to do instead
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaskDataError(f"{label}: cannot load {path} (split {split}) from the HF hub ({first}); "
                            f"{instead}") from None


def answer_text(value: Any) -> str:
    """A gold answer as text; some hub sets store integer answers as floats (27.0), whose gold text is "27"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
