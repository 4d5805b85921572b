"""The losses and scores on the kept token columns equal those on the full vocabulary, for every option."""

from __future__ import annotations

import itertools

import pytest
import torch

from brts.method import (
    MethodConfig,
    entropy,
    first_occurrences,
    kth_largest,
    mean_entropy,
    opd_loss,
    restricted,
    support_columns,
    support_top_k,
    teacher_context_loss,
    teacher_forced_alignment,
    teacher_forced_from,
    token_column,
)

V, B, T = 40, 2, 6


def _view(s_full, tau_full, tokens, k):
    """What a streamed forward keeps: both models' log-probs at the support columns, repeats at −inf."""
    columns = support_columns(s_full.detach().topk(k, -1).indices, tau_full.topk(k, -1).indices, tokens)
    distinct = first_occurrences(columns)
    s = restricted(s_full.gather(-1, columns), distinct)
    tau = restricted(tau_full.gather(-1, columns), distinct)
    return s, tau, token_column(columns, tokens), columns


def test_support_columns_repeats_and_token_column_by_hand():
    columns = support_columns(torch.tensor([[3, 1]]), torch.tensor([[1, 4]]), torch.tensor([4]))
    assert columns.tolist() == [[3, 1, 1, 4, 4]]
    assert first_occurrences(columns).tolist() == [[True, True, False, True, False]]
    assert token_column(columns, torch.tensor([4])).tolist() == [3]
    assert token_column(columns, torch.tensor([1])).tolist() == [1]


def test_first_occurrences_marks_each_tokens_earliest_column():
    columns = torch.randint(0, 7, (3, 50, 15), generator=torch.Generator().manual_seed(0))  # many repeats
    expected = [[[t not in row[:i] for i, t in enumerate(row)] for row in block] for block in columns.tolist()]
    assert first_occurrences(columns).tolist() == expected


def test_support_top_k_covers_every_top_k_and_stops_at_the_vocabulary():
    assert support_top_k(MethodConfig(opd_top_k=16, aux_top_k=1, alignment_top_k=3), 100) == 16
    assert support_top_k(MethodConfig(opd_top_k=4, aux_top_k=8), 100) == 8
    assert support_top_k(MethodConfig(opd_top_k=4, aux_top_k=2, alignment_top_k=12), 100) == 12
    assert support_top_k(MethodConfig(opd_top_k=64), 59) == 59


CONFIGS = [
    *(dict(opd_estimator="topk", opd_top_k=k, opd_candidates=c, opd_weights=w, aux_mode=a, aux_top_k=ak)
      for k, c, w, a, ak in itertools.product(
          (5, V + 3), ("student", "teacher", "intersection", "union", "symmetric_difference"),
          ("student_p", "teacher_p", "uniform"), ("teacher_topk", "student_p_as_released"), (1, 7))),
    dict(opd_estimator="sampled", opd_top_k=3, aux_top_k=2),
    dict(opd_estimator="sampled", opd_top_k=3, aux_top_k=2, alignment_top_k=9),
]


@pytest.mark.parametrize("overrides", CONFIGS)
def test_losses_on_the_support_equal_the_full_vocabulary(overrides):
    cfg = MethodConfig(teacher_context=True, **overrides)
    gen = torch.Generator().manual_seed(len(str(overrides)))
    logits = torch.randn(B, T, V, generator=gen, dtype=torch.float64).mul(2).requires_grad_(True)
    tau_full = torch.log_softmax(torch.randn(B, T, V, generator=gen, dtype=torch.float64) * 2, -1)
    tokens = torch.randint(0, V, (B, T), generator=gen)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 4:] = False
    k = support_top_k(cfg, V)
    s_full = torch.log_softmax(logits, -1)
    s, tau, column, _ = _view(s_full, tau_full, tokens, k)
    for loss in (lambda a, b, y: opd_loss(a, b, y, mask, cfg), lambda a, b, y: teacher_context_loss(a, b, mask, cfg)):
        full = loss(s_full, tau_full, tokens)
        (grad_full,) = torch.autograd.grad(full, logits, retain_graph=True)
        kept = loss(s, tau, column)
        (grad_kept,) = torch.autograd.grad(kept, logits, retain_graph=True)
        torch.testing.assert_close(kept, full, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad_kept, grad_full, rtol=1e-12, atol=1e-12)


def test_alignment_and_entropy_from_the_kept_columns():
    gen = torch.Generator().manual_seed(0)
    s_full = torch.log_softmax(torch.randn(3, 5, V, generator=gen, dtype=torch.float64), -1)
    tokens = torch.randint(0, V, (3, 5), generator=gen)
    tokens[0, :2] = s_full[0, :2].argmax(-1)  # some hits for sure
    mask = torch.ones(3, 5, dtype=torch.bool)
    s, _, column, _ = _view(s_full, s_full, tokens, k=4)
    kth = s[..., 3]  # the student's top-K come first, most likely first
    torch.testing.assert_close(kth, kth_largest(s_full, 4))
    token_logp = s.gather(-1, column.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(teacher_forced_from(token_logp, kth, mask),
                               teacher_forced_alignment(s_full, tokens, mask, 4))
    torch.testing.assert_close(entropy(s_full).mean(), mean_entropy(s_full, mask))
