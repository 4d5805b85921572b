"""avg@k, unbiased pass@k and maj@k of one problem from its graded samples (the paper's evaluation metrics), and
the statistics the authors' grader reports beside them."""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

from brts.spec.task import BOXED, AnswerFormat
from brts.tasks.grading import extract_answer


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


# What the authors' grader reports beside the mean score (BWGZK-keke/BRTS scripts/val/eval/grade.py:52-61, 137,
# 192-207), with the same definitions; brts reports shares of problems and samples instead of counts.
FORMAT_MARKER = "boxed"  # grade.py:137 counts a response without this text as a format error


def distinct_ngram_ratio(responses: Sequence[str], n: int = 4) -> float:
    """Distinct word n-grams over all word n-grams of the responses pooled (words split on whitespace), 0.0
    when no response has n words: one problem's k samples give its distinct-4-gram ratio (grade.py:52-61)."""
    distinct: set[tuple[str, ...]] = set()
    total = 0
    for response in responses:
        words = response.split()
        for i in range(len(words) - n + 1):
            distinct.add(tuple(words[i : i + n]))
            total += 1
    return len(distinct) / total if total else 0.0


def has_format_error(response: str, answer_format: AnswerFormat = BOXED) -> bool:
    """`boxed`: a response that does not contain `boxed` anywhere (grade.py:137); another format: a response its
    extraction finds no answer in (no number, no match of the pattern)."""
    if answer_format.kind == "boxed":
        return FORMAT_MARKER not in response
    return extract_answer(response, answer_format) is None


def problem_grader_statistics(correct: Sequence[bool], responses: Sequence[str], response_tokens: Sequence[int],
                              answer_format: AnswerFormat = BOXED) -> dict[str, float]:
    """One problem's share of `grader_statistics` from its k samples (fractions): solved by none and by all
    (1.0 or 0.0), its share of samples with a format error, their mean length in tokens, and the distinct-4-gram
    ratio of its samples pooled. With the same k for every problem, `grader_statistics` is their mean."""
    if not correct:
        raise ValueError("grader statistics of a problem need at least one sample")
    return {
        "solved_none": float(not any(correct)),
        "solved_all": float(all(correct)),
        "format_errors": sum(has_format_error(r, answer_format) for r in responses) / len(responses),
        "response_tokens": sum(response_tokens) / len(response_tokens),
        "distinct_4gram": distinct_ngram_ratio(responses),
    }


def grader_statistics(correct: Sequence[Sequence[bool]], responses: Sequence[Sequence[str]],
                      response_tokens: Sequence[Sequence[int]], answer_format: AnswerFormat = BOXED) -> dict[str, float]:
    """Over problems, each given as its k samples' grades, texts and token counts: the share of problems no
    sample solved and all samples solved, the share of samples with a format error, the mean response length
    in tokens over samples, and the mean over problems of each problem's distinct-4-gram ratio (fractions)."""
    if not correct:
        raise ValueError("grader statistics need at least one problem")
    samples = [text for texts in responses for text in texts]
    lengths = [count for counts in response_tokens for count in counts]
    return {
        "solved_none": sum(not any(c) for c in correct) / len(correct),
        "solved_all": sum(bool(c) and all(c) for c in correct) / len(correct),
        "format_errors": sum(has_format_error(s, answer_format) for s in samples) / len(samples),
        "response_tokens": sum(lengths) / len(lengths),
        "distinct_4gram": sum(distinct_ngram_ratio(texts) for texts in responses) / len(responses),
    }
