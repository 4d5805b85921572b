"""A verifiable synthetic reasoning task: chains of single-digit operations modulo 10, left to right.

Prompt `Q:7+3*2-5\\n`; gold solution, one step per line, `7+3=0\\n0*2=0\\n0-5=5\\n\\boxed{5}`; hinted prompt
`Q:7+3*2-5 key:5\\n`. Difficulty is the number of operations. Every expression belongs, by a hash of its text
and whatever the seed, to exactly one of three pools: evaluation, the training pool, or model building; so
the evaluation splits, the training pool and the data the default models were built from never overlap.
"""

from __future__ import annotations

import hashlib
import itertools
import random

from brts.grading import IntegerGrader
from brts.tasks.base import Problem

OPS = "+-*"
KEY_MARKER = "key"
SPLIT_OPS: dict[str, tuple[int, ...]] = {"easy": (2, 3), "medium": (4, 5), "hard": (6, 7, 8)}
MAX_OPS = 8
# Share of the expression space (in percent, by hash) held by each pool.
_POOL_BOUNDS = {"eval": (0, 10), "train": (10, 30), "build": (30, 100)}
# Chains with at most this many expressions are enumerated, longer ones sampled.
_ENUMERATE_UP_TO = 20_000


def apply(a: int, op: str, b: int) -> int:
    """One step modulo 10."""
    if op == "+":
        return (a + b) % 10
    if op == "-":
        return (a - b) % 10
    return (a * b) % 10


def steps(expression: str) -> list[str]:
    """The gold step lines of an expression, e.g. `7+3*2` -> [`7+3=0`, `0*2=0`]."""
    value, lines = int(expression[0]), []
    for op, digit in zip(expression[1::2], expression[2::2], strict=True):
        result = apply(value, op, int(digit))
        lines.append(f"{value}{op}{digit}={result}")
        value = result
    return lines


def evaluate(expression: str) -> int:
    """The value of a chain evaluated left to right modulo 10."""
    lines = steps(expression)
    return int(lines[-1][-1]) if lines else int(expression)


def boxed(answer: int | str) -> str:
    return f"\\boxed{{{answer}}}"


def gold_solution(expression: str) -> str:
    """The step-by-step solution the models are trained to write."""
    return "\n".join([*steps(expression), boxed(evaluate(expression))])


def shortcut_solution(expression: str, steps_done: int, guess: int) -> str:
    """A solution that writes `steps_done` gold steps and then boxes `guess` without finishing the chain."""
    return "\n".join([*steps(expression)[:steps_done], boxed(guess)])


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
    """Modulo-10 operation chains: a training pool over 1..8 operations and held-out splits `easy` (2-3),
    `medium` (4-5) and `hard` (6-8), all deterministic from `seed` and graded by exact integer match."""

    name = "synthetic_mod10"
    splits = tuple(SPLIT_OPS)

    def __init__(self, seed: int = 0, train_size: int = 4000, eval_size: int = 200) -> None:
        self.seed = seed
        self.train_size = train_size
        self.eval_size = eval_size
        self.grader = IntegerGrader()
        self._train: list[Problem] | None = None
        self._eval: dict[str, list[Problem]] = {}

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
        if split not in SPLIT_OPS:
            raise KeyError(f"unknown split {split!r}; the synthetic task has {', '.join(SPLIT_OPS)}")
        if split not in self._eval:
            rng = random.Random(f"eval/{split}/{self.seed}")
            lengths = SPLIT_OPS[split]
            problems = []
            for i, ops in enumerate(lengths):
                share = (self.eval_size - len(problems)) // (len(lengths) - i)
                problems += [to_problem(e, split) for e in draw_expressions(rng, "eval", ops, share)]
            self._eval[split] = problems
        return list(self._eval[split])

    def prompt(self, problem: Problem, hint: str | None = None) -> str:
        key = "" if hint is None else f" {KEY_MARKER}:{hint}"
        return f"Q:{problem.problem}{key}\n"

    def leaks(self, response: str, hint: str) -> bool:
        return KEY_MARKER in response.lower()
