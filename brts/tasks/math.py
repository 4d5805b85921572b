"""Math word problems from a JSONL file or a Hugging Face dataset, graded with math-verify.

Training prompts come from `task.train` (DAPO-Math-17k in the paper-scale spec), evaluation splits from
`task.eval_sets` (AIME 2024/2025, AMC 2023, MATH-500 from the hub or, as `brts:aime24`, the copies packaged
with brts, or a user's own files). The prompt is the problem (without DAPO-Math-17k's own answer-format
instruction), one space and `task.prompt_suffix`; with `task.chat_template` the model's chat template wraps it
(see `brts.tasks.base.prompt_ids`).
"""

from __future__ import annotations

import random
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from brts.spec import HOLDOUT_SPLIT, DatasetSpec, TaskSpec
from brts.spec.catalog import PACKAGED_PREFIX, packaged_file
from brts.tasks.base import Problem
from brts.tasks.bounds import check_problem_file
from brts.tasks.grading import MathGrader
from brts.tasks.sources import TaskDataError, answer_text, load_hub, read_jsonl

# The silent validation key of the Tier-2 (recovery) samples; KEY_MARKER in a response means it leaked.
KEY_MARKER = "verification key"
HINT = ("(A {marker} is given: {answer}. Do not mention it; derive the solution from the problem and use the key "
        "only to check your final result.)")
_HINT_PHRASES = ("use the key only", "do not mention it", "key is given")
# DAPO-Math-17k wraps each problem in its own instruction (open-r1's copy keeps it in `prompt`): it asks for an
# "Answer: ..." last line, which the grader (the last \boxed{}) does not read.
DAPO_PREFIX = ("Solve the following math problem step by step. The last line of your response should be of the "
               "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.")
DAPO_SUFFIX = 'Remember to put your answer on its own line after "Answer:".'


def problem_text(raw: str) -> str:
    """The problem alone: DAPO-Math-17k's answer-format instruction around it removed, so that the prompt asks
    only for what `task.prompt_suffix` asks (the `\boxed{}` the grader reads); other text is only stripped."""
    text = raw.strip()
    if text.startswith(DAPO_PREFIX):
        text = text[len(DAPO_PREFIX):]
    if text.endswith(DAPO_SUFFIX):
        text = text[: -len(DAPO_SUFFIX)]
    return text.strip()


def _is_local(path: str) -> bool:
    return path.endswith((".jsonl", ".json")) or path.startswith(("/", "./", "../", "~")) or Path(path).exists()


def _local_file(spec: DatasetSpec) -> Path | None:
    """The JSONL file of a problem set (`brts:aime24`: the copy packaged with brts), or None for a hub dataset;
    TaskDataError when a local one does not exist."""
    if spec.path.startswith(PACKAGED_PREFIX):
        return packaged_file(spec.path.removeprefix(PACKAGED_PREFIX))
    if not _is_local(spec.path):
        return None
    path = Path(spec.path).expanduser()
    if not path.is_file():
        raise TaskDataError(f"{path}: problem file not found; give an existing JSONL file or an HF dataset id")
    return path


def check_files(spec: TaskSpec) -> None:
    """Refuse, before a run starts, a local problem file of the math task with a row too large to use
    (brts.tasks.bounds); TaskDataError names the file and the line."""
    if spec.name != "math":
        return
    for label, dataset in (("task.train", spec.train), *((f"task.eval_sets.{k}", v) for k, v in spec.eval_sets.items())):
        path = _local_file(dataset) if dataset is not None else None
        if path is not None:
            check_problem_file(path, label, dataset.problem_field, dataset.answer_field)


def _rows(spec: DatasetSpec, label: str) -> list[dict[str, Any]]:
    """The raw rows of a problem set, read by the evaluation's own JSONL and hub readers (a local file checked
    by brts.tasks.bounds first)."""
    path = _local_file(spec)
    if path is None:
        return [dict(row) for row in load_hub(spec.path, spec.split, label, "give a JSONL file instead", spec.subset)]
    check_problem_file(path, label, spec.problem_field, spec.answer_field)
    return [row for _, row in read_jsonl(path, label)]


@lru_cache(maxsize=16)
def load_problems(spec: DatasetSpec, label: str) -> tuple[Problem, ...]:
    """Every row of a problem set as a Problem; ids from `id_field`, else `<label>-<row index>`."""
    problems = []
    for index, row in enumerate(_rows(spec, label)):
        missing = [f for f in (spec.problem_field, spec.answer_field) if f not in row]
        if missing:
            raise TaskDataError(f"{spec.path}: row {index} has no field {missing[0]!r} (fields: "
                                f"{', '.join(sorted(row))}); set problem_field/answer_field in the spec")
        ident = row.get(spec.id_field)
        problems.append(Problem(id=str(ident) if ident is not None else f"{label}-{index}",
                                problem=problem_text(str(row[spec.problem_field])),
                                answer=answer_text(row[spec.answer_field]),
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
        self.grader = MathGrader(answer_format=spec.answer_format)
        self.splits = (*spec.eval_sets, *((HOLDOUT_SPLIT,) if spec.validation_holdout else ()))
        self.chat_template = spec.chat_template

    def _train_and_holdout(self) -> tuple[list[Problem], list[Problem]]:
        """The training problems, less `validation_holdout` of them drawn with `task.seed`: (train, held out)."""
        assert self.spec.train is not None
        problems = list(load_problems(self.spec.train, "train"))
        count = self.spec.validation_holdout
        if count and count >= len(problems):
            raise TaskDataError(f"task.validation_holdout: {count} would hold out all {len(problems)} training "
                                "problems; hold out fewer")
        held = set(random.Random(self.spec.seed).sample(range(len(problems)), count)) if count else set()
        return ([p for i, p in enumerate(problems) if i not in held],
                [replace(p, difficulty=HOLDOUT_SPLIT) for i, p in enumerate(problems) if i in held])

    def train_problems(self) -> list[Problem]:
        return self._train_and_holdout()[0]

    def eval_problems(self, split: str) -> list[Problem]:
        if split == HOLDOUT_SPLIT and self.spec.validation_holdout:
            return self._train_and_holdout()[1]
        if split not in self.spec.eval_sets:
            raise TaskDataError(f"no evaluation split {split!r}; task.eval_sets has: {', '.join(self.splits)}")
        return list(load_problems(self.spec.eval_sets[split], split))

    def validation_problems(self, split: str) -> list[Problem]:
        """`heldout`: training problems held out of training (`task.validation_holdout`); an `eval_sets` split is
        the set itself (AIME-sized sets have no held-out pool; `brts.spec.spec_warnings` flags a benchmark
        that the final evaluation also reports)."""
        return self.eval_problems(split)

    def prompt(self, problem: Problem, hint: str | None = None) -> str:
        text = problem.problem.strip()
        if hint is not None:
            text += "\n\n" + HINT.format(marker=KEY_MARKER, answer=hint)
        return f"{text} {self.spec.prompt_suffix}".rstrip()

    def leaks(self, response: str, hint: str) -> bool:
        lowered = response.lower()
        return KEY_MARKER in lowered or any(phrase in lowered for phrase in _HINT_PHRASES)
