"""Alignment scores on hand-built log-probs whose answers are known by hand."""

from __future__ import annotations

import math

import pytest
import torch

from brts.method import (
    first_alignment,
    logprob_alignment,
    positional_alignment,
    random_alignment,
    teacher_forced_alignment,
)

V = 5


def _logp(rows: list[list[list[float]]]) -> torch.Tensor:
    return torch.log_softmax(torch.tensor(rows, dtype=torch.float64), dim=-1)


# Student top-2 at every position of both candidates: tokens {0, 1}; token ranks follow the logits.
DESCENDING = [4.0, 3.0, 2.0, 1.0, 0.0]
STUDENT = _logp([[DESCENDING] * 3, [DESCENDING] * 3])


def test_teacher_forced_counts_tokens_in_the_student_top_k() -> None:
    tokens = torch.tensor([[0, 1, 4], [3, 0, 99]])  # 99: padding, any id
    mask = torch.tensor([[True, True, True], [True, True, False]])
    scores = teacher_forced_alignment(STUDENT, tokens, mask, top_k=2)
    torch.testing.assert_close(scores, torch.tensor([2 / 3, 1 / 2]))
    scores_k4 = teacher_forced_alignment(STUDENT, tokens, mask, top_k=4)
    torch.testing.assert_close(scores_k4, torch.tensor([2 / 3, 1.0]))
    # A top-K as large as the vocabulary makes every candidate score 1 (why the alignment top-K must be small).
    torch.testing.assert_close(
        teacher_forced_alignment(STUDENT, tokens, mask, top_k=V), torch.tensor([1.0, 1.0])
    )


def test_teacher_forced_ties_at_the_boundary_count_and_empty_candidate_scores_zero() -> None:
    logp = _logp([[[1.0, 1.0, 1.0, 0.0, 0.0]], [[1.0, 1.0, 1.0, 0.0, 0.0]]])
    tokens = torch.tensor([[2], [3]])
    scores = teacher_forced_alignment(logp, tokens, torch.tensor([[True], [True]]), top_k=1)
    torch.testing.assert_close(scores, torch.tensor([1.0, 0.0]))
    empty = teacher_forced_alignment(logp, tokens, torch.tensor([[True], [False]]), top_k=1)
    torch.testing.assert_close(empty, torch.tensor([1.0, 0.0]))


def test_logprob_is_the_mean_token_log_prob() -> None:
    tokens = torch.tensor([[0, 1, 4], [3, 0, 99]])
    mask = torch.tensor([[True, True, True], [True, True, False]])
    row = STUDENT[0, 0].tolist()
    expected = torch.tensor([(row[0] + row[1] + row[4]) / 3, (row[3] + row[0]) / 2], dtype=torch.float64)
    torch.testing.assert_close(logprob_alignment(STUDENT, tokens, mask), expected)
    empty = logprob_alignment(STUDENT, tokens, torch.tensor([[True, False, False], [False, False, False]]))
    assert empty[0].item() == pytest.approx(row[0]) and empty[1].item() == -math.inf


def _peaked(top: int) -> list[float]:
    return [3.0 if v == top else 0.0 for v in range(V)]


def test_positional_penalises_candidates_longer_than_the_student_response() -> None:
    # Student response 0: top-1 tokens 0, 1. Response 1: top-1 token 2, then padding (top-1 1, masked).
    own = _logp([[_peaked(0), _peaked(1)], [_peaked(2), _peaked(1)]])
    own_mask = torch.tensor([[True, True], [True, False]])
    cand = torch.tensor([[0, 1, 7, 7], [2, 1, 1, 1], [0, 1, 3, 3]])
    cand_mask = torch.tensor(
        [[True, True, False, False], [True, True, True, True], [True, True, False, False]]
    )
    scores = positional_alignment(own, own_mask, cand, cand_mask, top_k=1)
    # c0: 2/2 vs response 0, 0/2 vs response 1. c1: 1/4 and 1/4 (positions 2, 3 lie past both responses).
    torch.testing.assert_close(scores, torch.tensor([0.5, 0.25, 0.5]))


def test_positional_with_a_student_response_longer_than_the_candidates() -> None:
    own = _logp([[_peaked(0), _peaked(1), _peaked(2)]])
    own_mask = torch.tensor([[True, True, True]])
    cand = torch.tensor([[0, 4], [4, 1]])
    scores = positional_alignment(own, own_mask, cand, torch.tensor([[True, True], [True, False]]), top_k=1)
    torch.testing.assert_close(scores, torch.tensor([0.5, 0.0]))


def test_first_and_random() -> None:
    torch.testing.assert_close(first_alignment(3), torch.tensor([0.0, -1.0, -2.0]))
    a = random_alignment(4, torch.Generator().manual_seed(0))
    b = random_alignment(4, torch.Generator().manual_seed(0))
    c = random_alignment(4, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert a.shape == (4,) and not torch.equal(a, c)
    assert torch.all((a >= 0) & (a < 1))
