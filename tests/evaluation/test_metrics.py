"""avg@k, unbiased pass@k and maj@k of one problem, on hand-computed cases."""

from __future__ import annotations

from math import comb

import pytest

from brts.evaluation.metrics import (
    avg_at_k,
    distinct_ngram_ratio,
    grader_statistics,
    has_format_error,
    maj_at_k,
    pass_at_k,
    problem_metrics,
)


def test_avg_at_k_is_the_fraction_correct() -> None:
    assert avg_at_k([True, False, True, True]) == 0.75
    assert avg_at_k([False] * 4) == 0.0


@pytest.mark.parametrize(("n", "c", "k"), [(16, 0, 1), (16, 3, 1), (16, 3, 4), (16, 15, 2), (8, 8, 8), (10, 2, 10)])
def test_pass_at_k_is_one_minus_the_chance_that_k_draws_miss(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_with_k_samples_is_any_correct_and_pass_at_1_is_avg() -> None:
    assert pass_at_k(4, 1, 4) == 1.0 and pass_at_k(4, 0, 4) == 0.0
    assert pass_at_k(16, 3, 1) == pytest.approx(3 / 16)
    assert pass_at_k(16, 3, 4) == pytest.approx(1 - (13 * 12 * 11 * 10) / (16 * 15 * 14 * 13))
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6) and pass_at_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 4)


def test_maj_at_k_takes_the_most_frequent_answer_ties_to_the_first() -> None:
    assert maj_at_k(["3", "4", "4", None], [True, False, False, False]) == 0.0
    assert maj_at_k(["3", " 3", "4", None], [True, True, False, False]) == 1.0  # whitespace does not split votes
    assert maj_at_k(["4", "3", "3", "4"], [False, True, True, False]) == 0.0  # tie: "4" was seen first
    assert maj_at_k([None, None], [False, False]) == 0.0


def test_problem_metrics_of_one_problem() -> None:
    assert problem_metrics(["5", "6", "5", None], [True, False, True, False]) == {
        "avg@k": 0.5, "pass@k": 1.0, "maj@k": 1.0}


def test_distinct_4gram_ratio_pools_a_problems_samples() -> None:
    # "a b c d e" has 2 four-grams, "a b c d" 1 (already seen), "x y" none: 2 distinct of 3.
    assert distinct_ngram_ratio(["a b c d e", "a b  c\nd", "x y"]) == pytest.approx(2 / 3)
    assert distinct_ngram_ratio(["a b c", ""]) == 0.0
    assert distinct_ngram_ratio(["a a a a a a"]) == pytest.approx(1 / 3)


def test_a_format_error_is_a_response_without_boxed() -> None:
    assert has_format_error("the answer is 4") and not has_format_error("so \\boxed{4}")
    assert not has_format_error("\\boxed 4")  # the authors look for the word only


def test_grader_statistics_on_two_problems() -> None:
    correct = [[True, True], [False, False]]
    responses = [["so \\boxed{4}", "a b c d \\boxed{4}"], ["no idea", "w x y z w x y z"]]
    tokens = [[3, 5], [2, 8]]
    stats = grader_statistics(correct, responses, tokens)
    assert stats == pytest.approx({
        "solved_none": 0.5, "solved_all": 0.5, "format_errors": 0.5, "response_tokens": 4.5,
        # problem 1: "a b c d", "b c d \boxed{4}" -> 2 of 2; problem 2: 5 four-grams, 4 distinct
        "distinct_4gram": (1.0 + 4 / 5) / 2})
    partly = grader_statistics([[True, False]], [["\\boxed{1}", "\\boxed{2}"]], [[1, 1]])
    assert (partly["solved_none"], partly["solved_all"], partly["format_errors"]) == (0.0, 0.0, 0.0)
