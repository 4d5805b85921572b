"""avg@k, unbiased pass@k and maj@k of one problem from its graded samples (METHOD.md section 7)."""

from __future__ import annotations

from collections.abc import Sequence
from math import comb


def avg_at_k(correct: Sequence[bool]) -> float:
    """The fraction of the samples graded correct."""
    return sum(map(bool, correct)) / len(correct) if correct else 0.0


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of the chance that at least one of k samples is correct, given c correct out of
    n drawn (Chen et al., 2021): 1 - C(n - c, k) / C(n, k). With n = k it is 1 when any sample is correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return 1.0 - comb(n - c, k) / comb(n, k)


def maj_at_k(extracted: Sequence[str | None], correct: Sequence[bool]) -> float:
    """1.0 when the most frequent extracted answer is a correct one, else 0.0.

    Answers are compared with whitespace removed; samples without an answer do not vote; a tie goes to the
    answer that appeared first.
    """
    votes: dict[str, list[int]] = {}
    for i, answer in enumerate(extracted):
        if answer is not None and answer.strip():
            votes.setdefault("".join(answer.split()), []).append(i)
    if not votes:
        return 0.0
    winner = max(votes.values(), key=len)  # max keeps the first of equal counts: insertion order is first seen
    return 1.0 if correct[winner[0]] else 0.0


def problem_metrics(extracted: Sequence[str | None], correct: Sequence[bool]) -> dict[str, float]:
    """avg@k, pass@k and maj@k of one problem's k samples, as fractions."""
    k = len(correct)
    return {
        "avg@k": avg_at_k(correct),
        "pass@k": pass_at_k(k, sum(map(bool, correct)), k) if k else 0.0,
        "maj@k": maj_at_k(extracted, correct),
    }
