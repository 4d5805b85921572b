"""The token columns the losses, alignment scores and metrics read: what a streamed forward must keep.

Every loss of `brts.method.losses` reads the log-probs of a few tokens per position only: the student's top-K,
the teacher's top-K and the sampled token (never a normalisation over the whole vocabulary: `s` and `τ` come
in already normalised). So a forward that keeps, per position, those columns of both models' log-probs
(`support_columns`) gives the losses the same values as the full `[B, T, V]` tensors would, while holding
`[B, T, 2K + 1]`. Columns that repeat an earlier one are set to −inf in both models (`restricted`), so
every token appears once and a −inf column is never a candidate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from brts.method.config import MethodConfig


def support_top_k(cfg: MethodConfig, vocab_size: int) -> int:
    """K: how many of each model's most likely tokens per position cover every loss, alignment and metric.

    The OPD candidates (student's or teacher's top-`opd_top_k`), `L_aux` (the teacher's or the student's
    top-`aux_top_k`), the top-K alignment scores (the student's top-`alignment_top_k`), and the KL metrics on
    either top-K; at most the vocabulary.
    """
    return min(vocab_size, max(cfg.opd_top_k, cfg.aux_top_k, cfg.effective_alignment_top_k))


def support_columns(student_top: Tensor, teacher_top: Tensor, tokens: Tensor) -> Tensor:
    """Token ids `[..., 2K + 1]` per position: the student's top-K (most likely first), then the teacher's
    top-K, then the response token; `student_top[..., K]`, `teacher_top[..., K]`, `tokens[...]`."""
    return torch.cat([student_top, teacher_top, tokens.unsqueeze(-1)], dim=-1)


def first_occurrences(columns: Tensor) -> Tensor:
    """Boolean mask `[..., W]`: True where a column's token does not appear in an earlier column."""
    # A stable sort puts each token's columns together, earliest first: O(W log W) per position, not W x W.
    tokens, order = columns.sort(dim=-1, stable=True)
    first = torch.ones_like(tokens, dtype=torch.bool)
    first[..., 1:] = tokens[..., 1:] != tokens[..., :-1]
    return torch.empty_like(first).scatter_(-1, order, first)


def restricted(logp: Tensor, distinct: Tensor) -> Tensor:
    """`logp[..., W]` with repeated columns at −inf: each token once, a repeat never a candidate."""
    return logp.masked_fill(~distinct, float("-inf"))


def token_column(columns: Tensor, tokens: Tensor) -> Tensor:
    """Index `[...]` of the first column that holds each position's token (the response token is always
    a column, the last one at the latest)."""
    return (columns == tokens.unsqueeze(-1)).int().argmax(dim=-1)
