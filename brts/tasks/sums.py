"""Addition word problems, generated and held out like the synthetic task: a task a small pretrained chat model
partly solves and a layer-pruned copy of it can relearn on a CPU.

A problem is two addends from 1 .. `max_operand` in one of a few sentence templates ("What is 23 + 14?", "Mia has
3 apples and finds 5 more. How many apples does Mia have now?"); the gold answer is the sum. Every problem text
belongs, by a hash of the text and whatever the seed, to exactly one pool: test (the final evaluation, lm-eval's
`brts_sums`), validation (what training validates on and what settings are chosen on) or train. The prompt is the
problem, one space and the answer format's instruction; the tokenizer's chat template wraps it.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache

from brts.spec import TaskSpec
from brts.tasks.base import Problem
from brts.tasks.grading import IntegerGrader

SPLIT = "sums"
KEY_MARKER = "verification key"
HINT = ("(A {marker} is given: {answer}. Do not mention it; derive the solution from the problem and use the key "
        "only to check your final result.)")
_HINT_PHRASES = ("use the key only", "do not mention it", "key is given")
TEMPLATES = (
    "What is {a} + {b}?",
    "{name} has {a} {things} and finds {b} more. How many {things} does {name} have now?",
    "A box holds {a} {things}. {name} puts {b} more {things} in it. How many {things} are in the box?",
    "{name} read {a} pages on Monday and {b} pages on Tuesday. How many pages did {name} read in total?",
)
NAMES = ("Mia", "Tom", "Ana", "Leo", "Sara", "Ben", "Ivy", "Max")
THINGS = ("apples", "coins", "books", "stickers", "marbles", "pencils")
# Share of the problem space (in percent, by hash) held by each pool.
_POOL_BOUNDS = {"test": (0, 15), "validation": (15, 30), "train": (30, 100)}


def pool_of(text: str) -> str:
    """The pool a problem text belongs to, fixed by a hash of the text (independent of any seed)."""
    bucket = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") % 100
    return next(pool for pool, (low, high) in _POOL_BOUNDS.items() if low <= bucket < high)


@cache
def all_problems(max_operand: int) -> tuple[Problem, ...]:
    """Every problem text of the task, in a fixed order; the template's name and things drawn from the addends."""
    problems = []
    for t, template in enumerate(TEMPLATES):
        for a in range(1, max_operand + 1):
            for b in range(1, max_operand + 1):
                name, things = NAMES[(a * 7 + b * 3 + t) % len(NAMES)], THINGS[(a + b * 5 + t) % len(THINGS)]
                text = template.format(a=a, b=b, name=name, things=things)
                problems.append(Problem(id=f"sum/{t}/{a}+{b}", problem=text, answer=str(a + b), difficulty=SPLIT))
    return tuple(problems)


class SumsTask:
    """Addition word problems: a training pool and held-out `sums` problems for evaluation and (disjoint) for
    validation, deterministic from the spec's seed and graded in its answer format by exact integer match."""

    name = "sums"
    splits = (SPLIT,)

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.grader = IntegerGrader(spec.answer_format)
        self.chat_template = spec.chat_template

    def _pool(self, pool: str) -> list[Problem]:
        problems = [p for p in all_problems(self.spec.max_operand) if pool_of(p.problem) == pool]
        random.Random(f"{pool}/{self.spec.seed}").shuffle(problems)
        return problems

    def train_problems(self) -> list[Problem]:
        return self._pool("train")

    def eval_problems(self, split: str) -> list[Problem]:
        self._check(split)
        return self._pool("test")

    def validation_problems(self, split: str) -> list[Problem]:
        """Held-out problems for validation during training (and for choosing settings), disjoint from eval."""
        self._check(split)
        return self._pool("validation")

    @staticmethod
    def _check(split: str) -> None:
        if split != SPLIT:
            raise KeyError(f"unknown split {split!r}; the sums task has {SPLIT}")

    def prompt(self, problem: Problem, hint: str | None = None) -> str:
        text = problem.problem
        if hint is not None:
            text += "\n\n" + HINT.format(marker=KEY_MARKER, answer=hint)
        return f"{text} {self.spec.answer_format.prompt_instruction}"

    def leaks(self, response: str, hint: str) -> bool:
        lowered = response.lower()
        return KEY_MARKER in lowered or any(phrase in lowered for phrase in _HINT_PHRASES)
