"""What a task is: problems with gold answers, the prompt the model sees, and the grader that checks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from brts.grading import Grader


@dataclass(frozen=True)
class Problem:
    """One problem: a stable `id`, the problem text, its gold answer and a difficulty label."""

    id: str
    problem: str
    answer: str
    difficulty: str = ""


@runtime_checkable
class Task(Protocol):
    """A verifiable task: a training pool, named held-out evaluation splits and one grader for all of them."""

    name: str
    grader: Grader
    splits: tuple[str, ...]

    def train_problems(self) -> list[Problem]: ...

    def eval_problems(self, split: str) -> list[Problem]: ...

    def validation_problems(self, split: str) -> list[Problem]:
        """Held-out problems for validation during training, disjoint from `eval_problems(split)`."""
        ...

    def prompt(self, problem: Problem, hint: str | None = None) -> str:
        """The text fed to the model; with `hint` it embeds that answer as a silent verification key."""
        ...

    def leaks(self, response: str, hint: str) -> bool:
        """Whether a response to a hinted prompt mentions the key marker or quotes the hint wording."""
        ...
