"""Alignment scores of candidate teacher trajectories: higher is closer to the student (the teacher-context branch's ranking).

Top-K caveat: a top-K membership score means something only when K is small against the vocabulary. With a
32-symbol character vocabulary a top-16 holds half of it and every candidate scores about 1, so the
synthetic task needs K of 2-4 (or `logprob`).

A token counts as in the top-K when its log-prob is at least the K-th largest value, so tokens tied at the
boundary all count and the score does not depend on how `torch.topk` breaks ties. Each score therefore needs
two numbers per position, the token's log-prob and the K-th largest log-prob: the `*_from` forms take those
(what a streamed forward keeps), the others take full-vocabulary log-probs.
"""

from __future__ import annotations

import torch
from torch import Tensor


def kth_largest(logp: Tensor, top_k: int) -> Tensor:
    """The K-th largest log-prob `[..., T]` of `logp[..., T, V]` (the smallest when K >= V)."""
    if top_k >= logp.shape[-1]:
        return logp.amin(dim=-1)  # no sort of the whole axis
    return logp.topk(min(top_k, logp.shape[-1]), dim=-1).values[..., -1]


def _token_logp(logp: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
    return logp.gather(-1, tokens.masked_fill(~mask, 0).unsqueeze(-1)).squeeze(-1)


def _fraction(hits: Tensor, mask: Tensor) -> Tensor:
    """Fraction of masked positions that are hits, along the last axis; 0 for an empty mask."""
    return (hits & mask).sum(dim=-1).float() / mask.sum(dim=-1).clamp(min=1).float()


def teacher_forced_alignment(student_logp: Tensor, tokens: Tensor, mask: Tensor, top_k: int) -> Tensor:
    """`teacher_forced`: per candidate, the fraction of its tokens in the student's top-K at that position.

    `student_logp[C, T, V]` comes from running the student on `(x, z_c)`; `tokens[C, T]` are the candidates'
    tokens and `mask[C, T]` marks the real ones. Returns `[C]` in [0, 1]; an empty candidate scores 0.
    """
    logp = student_logp.detach()
    return teacher_forced_from(_token_logp(logp, tokens, mask), kth_largest(logp, top_k), mask)


def teacher_forced_from(token_logp: Tensor, kth: Tensor, mask: Tensor) -> Tensor:
    """`teacher_forced` from the student's log-prob of each candidate token `[C, T]` and its K-th largest
    log-prob at that position `[C, T]`: the fraction of `mask`ed tokens with `token_logp >= kth`, `[C]`."""
    return _fraction(token_logp.detach() >= kth.detach(), mask)


def logprob_alignment(student_logp: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
    """`logprob`: per candidate, the mean student log-prob of its tokens, `[C]`; an empty one scores -inf."""
    return logprob_from(_token_logp(student_logp.detach(), tokens, mask), mask)


def logprob_from(token_logp: Tensor, mask: Tensor) -> Tensor:
    """`logprob` from the student's log-prob of each candidate token `[C, T]`: the mean over `mask`, `[C]`."""
    dtype = torch.promote_types(token_logp.dtype, torch.float32)
    token_logp = token_logp.detach().to(dtype)
    count = mask.sum(dim=-1)
    mean = token_logp.masked_fill(~mask, 0.0).sum(dim=-1) / count.clamp(min=1).to(dtype)
    return torch.where(count > 0, mean, torch.full_like(mean, float("-inf")))


def positional_alignment(
    student_own_logp: Tensor, student_mask: Tensor, cand_tokens: Tensor, cand_mask: Tensor, top_k: int
) -> Tensor:
    """`positional` (as released): candidate token t against the student's top-K at t of its own response.

    `student_own_logp[S, Ts, V]` are the student's log-probs along its `S` own sampled responses
    (`student_mask[S, Ts]`); `cand_tokens[C, T]`, `cand_mask[C, T]` are the candidates. For each candidate
    and student response, the score is the fraction of the candidate's positions whose token is in the
    student's top-K at the same position; positions past the end of the student response are misses, which
    penalises candidates longer than the student's response. Returns `[C]`, the mean over the S responses.
    """
    num_students = student_mask.shape[0]
    length = min(student_mask.shape[1], cand_mask.shape[1])
    logp = student_own_logp.detach()[:, :length]  # [S, L, V]
    index = positional_columns(cand_tokens, cand_mask, length)  # [C, L]
    cand_logp = logp.gather(-1, index.T.unsqueeze(0).expand(num_students, length, index.shape[0]))  # [S, L, C]
    return positional_from(cand_logp, kth_largest(logp, top_k), student_mask, cand_mask)


def positional_columns(cand_tokens: Tensor, cand_mask: Tensor, length: int) -> Tensor:
    """The candidates' tokens at the first `length` positions `[C, L]` (padding as token 0): the tokens whose
    student log-probs `positional_from` reads at each position of the student's own responses."""
    return cand_tokens[:, :length].masked_fill(~cand_mask[:, :length], 0)


def positional_from(cand_logp: Tensor, kth: Tensor, student_mask: Tensor, cand_mask: Tensor) -> Tensor:
    """`positional` from `cand_logp[S, L, C]`, the student's log-prob at position t of its own response s of
    candidate c's token t (`positional_columns`), and `kth[S, Ts]`, the K-th largest log-prob there."""
    length = cand_logp.shape[1]
    hits = (cand_logp.detach() >= kth[:, :length].detach().unsqueeze(-1)) & student_mask[:, :length].unsqueeze(-1)
    hits = hits.permute(0, 2, 1) & cand_mask[:, :length].unsqueeze(0)  # [S, C, L]
    per_pair = hits.sum(dim=-1).float() / cand_mask.sum(dim=-1).clamp(min=1).float().unsqueeze(0)  # [S, C]
    return per_pair.mean(dim=0)


def first_alignment(num_candidates: int) -> Tensor:
    """`first`: −index, so the first candidate (of those eligible) wins."""
    return -torch.arange(num_candidates, dtype=torch.float32)


def random_alignment(num_candidates: int, generator: torch.Generator) -> Tensor:
    """`random`: independent uniform scores from `generator`."""
    return torch.rand(num_candidates, generator=generator)
