"""A verifiable synthetic reasoning task: chains of single-digit operations modulo 10, left to right.

Prompt `Q:7 +3 *2 -5` padded with spaces to six operations, then a newline; gold solution, one running value
per line, each tagged with its step letter: `A0\nB0\nC5\n\boxed{5}` (7+3=0, 0*2=0, 0-5=5). Hinted prompt:
`key:5 Q:7 +3 ...`. Difficulty is the number of operations.

Why this layout: every prompt has the same length, so step k's operation sits at the same distance from
line k of the solution in every problem. A tiny model learns such fixed-offset look-ups in a few hundred steps,
and learns them for every position at once; locating the k-th operation by counting (an unpadded prompt with
`7+3=0` lines) takes it thousands. The step letters keep long chains out of reach of a model trained on short
ones: it has never written `D`.

Every expression belongs, by a hash of its text and whatever the seed, to exactly one of three pools:
evaluation, the training pool, or model building; so the evaluation splits, the training pool and the data the
default models were built from never overlap.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from functools import cache

from brts.spec.task import BOXED, AnswerFormat
from brts.tasks.base import Problem
from brts.tasks.grading import IntegerGrader

OPS = "+-*"
KEY_MARKER = "key"
SPLIT_OPS: dict[str, tuple[int, ...]] = {"easy": (1, 2), "medium": (3, 4), "hard": (5, 6)}
MAX_OPS = 6
# Share of the expression space (in percent, by hash) held by each pool.
_POOL_BOUNDS = {"eval": (0, 10), "validation": (10, 14), "train": (14, 30), "build": (30, 100)}
# Chains with at most this many expressions are enumerated, longer ones sampled.
_ENUMERATE_UP_TO = 20_000


TAGS = "ABCDEFGH"  # one step letter per operation, up to eight


def apply(a: int, op: str, b: int) -> int:
    """One step modulo 10."""
    if op == "+":
        return (a + b) % 10
    if op == "-":
        return (a - b) % 10
    return (a * b) % 10


def running_values(expression: str) -> list[int]:
    """The value after each operation, e.g. `7+3*2-5` -> [0, 0, 5]."""
    value, values = int(expression[0]), []
    for op, digit in zip(expression[1::2], expression[2::2], strict=True):
        value = apply(value, op, int(digit))
        values.append(value)
    return values


def evaluate(expression: str) -> int:
    """The value of a chain evaluated left to right modulo 10."""
    values = running_values(expression)
    return values[-1] if values else int(expression)


def format_prompt(expression: str, hint: str | None = None) -> str:
    """`Q:7 +3 *2 -5` padded to MAX_OPS operations; a hint goes first, so padding keeps every offset fixed."""
    chunks = "".join(f" {op}{digit}" for op, digit in zip(expression[1::2], expression[2::2], strict=True))
    padding = "   " * (MAX_OPS - n_ops(expression))
    key = "" if hint is None else f"{KEY_MARKER}:{hint} "
    return f"{key}Q:{expression[0]}{chunks}{padding}\n"


def boxed(answer: int | str) -> str:
    return f"\\boxed{{{answer}}}"


def _lines(values: list[int]) -> list[str]:
    return [f"{TAGS[i]}{value}" for i, value in enumerate(values)]


def gold_solution(expression: str) -> str:
    """The step-by-step solution the models are trained to write."""
    return "\n".join([*_lines(running_values(expression)), boxed(evaluate(expression))])


def shortcut_solution(expression: str, steps_done: int, guess: int) -> str:
    """A solution that writes `steps_done` gold steps and then boxes `guess` without finishing the chain."""
    return "\n".join([*_lines(running_values(expression)[:steps_done]), boxed(guess)])


Fact = tuple[int, str, int]  # one step: (the value before it, the operation, the operand digit)
FACTS: tuple[Fact, ...] = tuple((a, op, b) for a in range(10) for op in OPS for b in range(10))


@cache
def unknown_facts(fraction: float, seed: int) -> frozenset[Fact]:
    """`round(fraction * 300)` of the 300 one-step facts, chosen by a seeded shuffle: the facts a model that has
    the task's format but not all of its arithmetic does not know."""
    facts = list(FACTS)
    random.Random(f"unknown-facts/{seed}").shuffle(facts)
    return frozenset(facts[: round(fraction * len(facts))])


def written_values(expression: str, unknown: frozenset[Fact], rng: random.Random) -> list[int]:
    """The running values a writer who guesses the `unknown` facts (a uniform digit) writes: each step applies
    its operation to the value written on the line before, right or wrong."""
    value, values = int(expression[0]), []
    for op, digit in zip(expression[1::2], expression[2::2], strict=True):
        value = rng.randrange(10) if (value, op, int(digit)) in unknown else apply(value, op, int(digit))
        values.append(value)
    return values


def solution_of(values: list[int]) -> str:
    """A solution in the task's format that writes these running values and boxes the last."""
    return "\n".join([*_lines(values), boxed(values[-1])])


def leaked_solution(expression: str, key: str) -> str:
    """A gold solution that first repeats the verification key: what the leak filter must drop."""
    return f"{KEY_MARKER}:{key}\n" + gold_solution(expression)


def n_ops(expression: str) -> int:
    return len(expression) // 2


def pool_of(expression: str) -> str:
    """The pool an expression belongs to, fixed by a hash of its text (independent of any seed)."""
    bucket = int.from_bytes(hashlib.blake2b(expression.encode(), digest_size=8).digest(), "big") % 100
    return next(pool for pool, (low, high) in _POOL_BOUNDS.items() if low <= bucket < high)


def random_expression(rng: random.Random, ops: int) -> str:
    parts = [str(rng.randrange(10))]
    for _ in range(ops):
        parts += [rng.choice(OPS), str(rng.randrange(10))]
    return "".join(parts)


def _all_expressions(ops: int) -> list[str]:
    digits, symbols = "0123456789", [OPS] * ops
    out = []
    for ds in itertools.product(digits, repeat=ops + 1):
        for os_ in itertools.product(*symbols):
            out.append(ds[0] + "".join(o + d for o, d in zip(os_, ds[1:], strict=True)))
    return out


def draw_expressions(rng: random.Random, pool: str, ops: int, count: int) -> list[str]:
    """`count` distinct expressions with `ops` operations from `pool` (fewer if the pool holds fewer)."""
    if 10 ** (ops + 1) * len(OPS) ** ops <= _ENUMERATE_UP_TO:
        candidates = [e for e in _all_expressions(ops) if pool_of(e) == pool]
        rng.shuffle(candidates)
        return candidates[:count]
    chosen: dict[str, None] = {}
    while len(chosen) < count:
        expression = random_expression(rng, ops)
        if pool_of(expression) == pool:
            chosen[expression] = None
    return list(chosen)


def to_problem(expression: str, difficulty: str = "") -> Problem:
    return Problem(
        id=f"mod10/{expression}",
        problem=expression,
        answer=str(evaluate(expression)),
        difficulty=difficulty or str(n_ops(expression)),
    )


class BuildingSampler:
    """Draws expressions for building the default models: only from the build pool, with repeats."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"build/{seed}")
        self._enumerated: dict[int, list[str]] = {}

    def expression(self, ops: int) -> str:
        if 10 ** (ops + 1) * len(OPS) ** ops <= _ENUMERATE_UP_TO:
            if ops not in self._enumerated:
                self._enumerated[ops] = [e for e in _all_expressions(ops) if pool_of(e) == "build"]
            return self.rng.choice(self._enumerated[ops])
        while True:
            expression = random_expression(self.rng, ops)
            if pool_of(expression) == "build":
                return expression


class SyntheticTask:
    """Modulo-10 operation chains: a training pool over 1..6 operations and held-out splits `easy` (1-2),
    `medium` (3-4) and `hard` (5-6), for evaluation and (disjoint) for validation, all deterministic from
    `seed` and graded by exact integer match."""

    name = "synthetic_mod10"
    splits = tuple(SPLIT_OPS)

    def __init__(
        self, seed: int = 0, train_size: int = 4000, eval_size: int = 200, validation_size: int = 100,
        answer_format: AnswerFormat = BOXED,
    ) -> None:
        self.seed = seed
        self.train_size = train_size
        self.eval_size = eval_size
        self.grader = IntegerGrader(answer_format)
        self._train: list[Problem] | None = None
        self.validation_size = validation_size
        self._held: dict[tuple[str, str], list[Problem]] = {}

    def train_problems(self) -> list[Problem]:
        if self._train is None:
            rng = random.Random(f"train/{self.seed}")
            problems: list[Problem] = []
            for i, ops in enumerate(range(1, MAX_OPS + 1)):
                # Short chains may hold fewer expressions than their share; later lengths make up the rest.
                share = (self.train_size - len(problems)) // (MAX_OPS - i)
                problems += [to_problem(e) for e in draw_expressions(rng, "train", ops, share)]
            rng.shuffle(problems)
            self._train = problems
        return list(self._train)

    def eval_problems(self, split: str) -> list[Problem]:
        return self._held_out("eval", split, self.eval_size)

    def validation_problems(self, split: str) -> list[Problem]:
        """Held-out problems of the split's difficulty for validation during training, disjoint from eval."""
        return self._held_out("validation", split, self.validation_size)

    def _held_out(self, pool: str, split: str, size: int) -> list[Problem]:
        if split not in SPLIT_OPS:
            raise KeyError(f"unknown split {split!r}; the synthetic task has {', '.join(SPLIT_OPS)}")
        if (pool, split) not in self._held:
            rng = random.Random(f"{pool}/{split}/{self.seed}")
            lengths = SPLIT_OPS[split]
            problems: list[Problem] = []
            for i, ops in enumerate(lengths):
                share = (size - len(problems)) // (len(lengths) - i)
                problems += [to_problem(e, split) for e in draw_expressions(rng, pool, ops, share)]
            rng.shuffle(problems)  # so that any prefix (eval.problems, validation_problems) mixes the lengths
            self._held[(pool, split)] = problems
        return list(self._held[(pool, split)])

    def prompt(self, problem: Problem, hint: str | None = None) -> str:
        return format_prompt(problem.problem, hint)

    def leaks(self, response: str, hint: str) -> bool:
        return KEY_MARKER in response.lower()
