"""What a task is: problems with gold answers, the prompt the model sees, and the grader that checks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from transformers import PreTrainedTokenizerBase

from brts.tasks.grading import Grader


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


def prompt_ids(tokenizer: PreTrainedTokenizerBase, task: Task, text: str) -> list[int]:
    """The token ids a model sees for a prompt text: wrapped in the tokenizer's chat template when the task asks
    for it (`chat_template = True`) and the tokenizer has one, else the plain encoding."""
    if getattr(task, "chat_template", False) and getattr(tokenizer, "chat_template", None):
        encoded = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"])
    return list(tokenizer(text)["input_ids"])
