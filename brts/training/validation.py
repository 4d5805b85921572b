"""Sampled accuracy of a model on a set of problems: the fast validation during training (the final table
comes from lm-eval, brts/evaluation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from brts.rollout.base import Generator, SamplingSettings
from brts.tasks.base import Problem, Task


@dataclass(frozen=True)
class SampleResult:
    problem_id: str
    sample: int
    correct: bool
    extracted: str
    length: int


def sample_accuracy(
    generator: Generator,
    encode: Callable[[str], list[int]],
    task: Task,
    problems: Sequence[Problem],
    settings: SamplingSettings,
    extract: Callable[[str], str | None],
) -> tuple[float, list[SampleResult]]:
    """avg@k: the mean over problems of the fraction of `settings.n` samples graded correct."""
    if not problems:
        return float("nan"), []
    rows = generator.generate([encode(task.prompt(p)) for p in problems], settings)
    results = [
        SampleResult(p.id, j, task.grader.grade(c.text, p.answer), extract(c.text) or "", len(c.token_ids))
        for p, row in zip(problems, rows, strict=True)
        for j, c in enumerate(row)
    ]
    return sum(r.correct for r in results) / len(results), results
