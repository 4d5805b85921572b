"""Math word problems from a JSONL file or a Hugging Face dataset, graded with math-verify.

Training prompts come from `task.train` (DAPO-Math-17k in the paper-scale spec), evaluation splits from
`task.eval_sets` (AIME 2024/2025, AMC 2023, MATH-500, or a user's own files). The prompt is the problem, one
space and `task.prompt_suffix`; with `task.chat_template` the model's chat template wraps it (see
`brts.tasks.base.prompt_ids`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from brts.grading import MathGrader
from brts.spec import DatasetSpec, TaskSpec
from brts.tasks.base import Problem

# The silent validation key of METHOD.md section 2 (Tier 2); KEY_MARKER in a response means it leaked.
KEY_MARKER = "verification key"
HINT = ("(A {marker} is given: {answer}. Do not mention it; derive the solution from the problem and use the key "
        "only to check your final result.)")
_HINT_PHRASES = ("use the key only", "do not mention it", "key is given")


class TaskDataError(ValueError):
    """A problem set that cannot be read; the message is one line naming the source and the fix."""


def _is_local(path: str) -> bool:
    return path.endswith((".jsonl", ".json")) or path.startswith(("/", "./", "../", "~")) or Path(path).exists()


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise TaskDataError(f"{path}: problem file not found; give an existing JSONL file or an HF dataset id")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise TaskDataError(f"{path}:{number}: not a JSON object ({exc.msg}); one object per line") from None
    return rows


def _read_hub(spec: DatasetSpec) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise TaskDataError(f"{spec.path}: reading HF datasets needs `pip install datasets` (or give a JSONL "
                            "file)") from None
    try:
        data = datasets.load_dataset(spec.path, spec.subset, split=spec.split)
    except Exception as exc:  # the hub client raises many types; the user needs the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TaskDataError(f"cannot load HF dataset {spec.path!r} (split {spec.split!r}): {first}") from None
    return [dict(row) for row in data]


@lru_cache(maxsize=16)
def load_problems(spec: DatasetSpec, label: str) -> tuple[Problem, ...]:
    """Every row of a problem set as a Problem; ids from `id_field`, else `<label>-<row index>`."""
    rows = _read_jsonl(Path(spec.path).expanduser()) if _is_local(spec.path) else _read_hub(spec)
    problems = []
    for index, row in enumerate(rows):
        missing = [f for f in (spec.problem_field, spec.answer_field) if f not in row]
        if missing:
            raise TaskDataError(f"{spec.path}: row {index} has no field {missing[0]!r} (fields: "
                                f"{', '.join(sorted(row))}); set problem_field/answer_field in the spec")
        ident = row.get(spec.id_field)
        problems.append(Problem(id=str(ident) if ident is not None else f"{label}-{index}",
                                problem=str(row[spec.problem_field]), answer=str(row[spec.answer_field]),
                                difficulty=label))
    if not problems:
        raise TaskDataError(f"{spec.path}: no problems; give a non-empty problem set")
    return tuple(problems)


class MathTask:
    """Problems with free-form answers; one math-verify grader for selection, metrics and evaluation."""

    name = "math"

    def __init__(self, spec: TaskSpec) -> None:
        if spec.train is None:
            raise TaskDataError("task.train: the math task needs training prompts")
        self.spec = spec
        self.grader = MathGrader()
        self.splits = tuple(spec.eval_sets)
        self.chat_template = spec.chat_template

    def train_problems(self) -> list[Problem]:
        assert self.spec.train is not None
        return list(load_problems(self.spec.train, "train"))

    def eval_problems(self, split: str) -> list[Problem]:
        if split not in self.spec.eval_sets:
            raise TaskDataError(f"no evaluation split {split!r}; task.eval_sets has: {', '.join(self.splits)}")
        return list(load_problems(self.spec.eval_sets[split], split))

    def validation_problems(self, split: str) -> list[Problem]:
        """The benchmark itself: AIME-sized sets have no held-out pool, and the paper's curves are on them."""
        return self.eval_problems(split)

    def prompt(self, problem: Problem, hint: str | None = None) -> str:
        text = problem.problem.strip()
        if hint is not None:
            text += "\n\n" + HINT.format(marker=KEY_MARKER, answer=hint)
        return f"{text} {self.spec.prompt_suffix}".rstrip()

    def leaks(self, response: str, hint: str) -> bool:
        lowered = response.lower()
        return KEY_MARKER in lowered or any(phrase in lowered for phrase in _HINT_PHRASES)
