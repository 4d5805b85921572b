"""avg@k, unbiased pass@k and maj@k of one problem, on hand-computed cases."""

from __future__ import annotations

from math import comb

import pytest

from brts.evaluation.metrics import avg_at_k, maj_at_k, pass_at_k, problem_metrics


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
