"""The student-context loss L_OPD, the teacher-context loss L_aux and their sum, L_OPD + lambda * L_aux.

Every loss takes log-probabilities `[B, T, V]` at the positions that predict the response tokens:
`student_logp` carries the gradient, `teacher_logp` is treated as a constant. `V` is the vocabulary, or any
set of token columns, the same for both models at a position, that holds every token a loss reads (the
student's and the teacher's top-K and the response token: `brts.method.support`), with repeated columns at
−inf; a −inf column is never a candidate, so the losses are the same on both. Losses are written
in the surrogate form `sg[coefficient] * s(k)`, so their value is a bookkeeping number and their gradient
is the method's estimator. Everything is computed in the dtype of the inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from brts.method.config import MethodConfig


def token_mean(per_token: Tensor, mask: Tensor) -> Tensor:
    """Mean of `per_token[B, T]` over the positions where `mask[B, T]` holds; 0 (in the graph) if none."""
    total = per_token.masked_fill(~mask, 0.0).sum()
    return total / mask.sum().clamp(min=1).to(per_token.dtype)


def topk_mask(logp: Tensor, k: int) -> Tensor:
    """Boolean mask `[..., V]` of the `k` largest entries of `logp` on the last axis (all if k >= V), leaving
    out entries at −inf (tokens of probability 0, or columns a restricted support leaves out)."""
    if k >= logp.shape[-1]:
        return logp > float("-inf")  # every entry: no sort of the whole axis
    indices = logp.topk(k, dim=-1).indices
    return torch.zeros_like(logp, dtype=torch.bool).scatter_(-1, indices, True) & (logp > float("-inf"))


def renormalised(logp: Tensor, candidates: Tensor) -> Tensor:
    """`exp(logp)` renormalised over the candidates, 0 outside them and everywhere for an empty set."""
    logp = logp.detach()
    log_norm = logp.masked_fill(~candidates, float("-inf")).logsumexp(dim=-1, keepdim=True)
    log_norm = torch.where(torch.isfinite(log_norm), log_norm, torch.zeros_like(log_norm))
    # In place on fresh temporaries: these tensors can span the vocabulary (K covering it).
    return (logp - log_norm).exp_().masked_fill_(~candidates, 0.0)


def _check_shapes(student_logp: Tensor, teacher_logp: Tensor, mask: Tensor) -> None:
    if student_logp.shape != teacher_logp.shape:
        raise ValueError(
            f"student and teacher log-probs differ in shape: {student_logp.shape} vs {teacher_logp.shape}"
        )
    if student_logp.dim() != 3 or mask.shape != student_logp.shape[:2]:
        raise ValueError(
            f"expected log-probs [B, T, V] and mask [B, T], got {student_logp.shape} and {mask.shape}"
        )


def opd_candidates(student_logp: Tensor, teacher_logp: Tensor, cfg: MethodConfig) -> Tensor:
    """The candidate set C_t of the `topk` estimator as a boolean mask `[B, T, V]` (section 1)."""
    if cfg.opd_candidates == "student":
        return topk_mask(student_logp.detach(), cfg.opd_top_k)
    if cfg.opd_candidates == "teacher":
        return topk_mask(teacher_logp.detach(), cfg.opd_top_k)
    student = topk_mask(student_logp.detach(), cfg.opd_top_k)
    teacher = topk_mask(teacher_logp.detach(), cfg.opd_top_k)
    if cfg.opd_candidates == "intersection":
        return student & teacher
    if cfg.opd_candidates == "union":
        return student | teacher
    return student ^ teacher


def opd_weights(student_logp: Tensor, teacher_logp: Tensor, candidates: Tensor, cfg: MethodConfig) -> Tensor:
    """The stop-gradient weights w over C_t, `[B, T, V]`, zero outside C_t.

    For `symmetric_difference` the weights are raw, as in the authors' code: exp(s), exp(τ) or 1; for every
    other candidate set they are renormalised over C_t (`uniform` = 1/|C_t|).
    """
    s, tau = student_logp.detach(), teacher_logp.detach()
    raw = cfg.opd_candidates == "symmetric_difference"
    if cfg.opd_weights == "student_p":
        return s.exp().masked_fill_(~candidates, 0.0) if raw else renormalised(s, candidates)
    if cfg.opd_weights == "teacher_p":
        return tau.exp().masked_fill_(~candidates, 0.0) if raw else renormalised(tau, candidates)
    ones = candidates.to(s.dtype)
    return ones if raw else ones / candidates.sum(dim=-1, keepdim=True).clamp(min=1).to(s.dtype)


def _surrogate(coefficient: Tensor, student_logp: Tensor, candidates: Tensor) -> Tensor:
    """Σ_{k∈C_t} sg[coefficient_k] · s(k), `[B, T]`; non-candidates are filled so -inf cannot give NaN."""
    outside = ~candidates
    coefficient = coefficient.detach().masked_fill(outside, 0.0)
    return (coefficient * student_logp.masked_fill(outside, 0.0)).sum(dim=-1)


def opd_loss(
    student_logp: Tensor, teacher_logp: Tensor, tokens: Tensor, mask: Tensor, cfg: MethodConfig
) -> Tensor:
    """L_OPD: token-mean over `mask` of the per-token reverse-KL surrogate ℓ_t (section 1).

    `sampled`: ℓ_t = sg[s(y_t) − τ(y_t)] · s(y_t), with `tokens[B, T]` the sampled response tokens.
    `topk`: ℓ_t = Σ_{k∈C_t} sg[w_k (s(k) − τ(k))] · s(k), C_t and w per `cfg.opd_candidates` and
    `cfg.opd_weights`. A position with an empty candidate set (possible for `intersection`) contributes 0
    but still counts in the mean.
    """
    _check_shapes(student_logp, teacher_logp, mask)
    teacher_logp = teacher_logp.detach()
    if cfg.opd_estimator == "sampled":
        index = tokens.masked_fill(~mask, 0).unsqueeze(-1)  # padding may hold any id
        s_y = student_logp.gather(-1, index).squeeze(-1)
        tau_y = teacher_logp.gather(-1, index).squeeze(-1)
        return token_mean((s_y - tau_y).detach() * s_y, mask)
    candidates = opd_candidates(student_logp, teacher_logp, cfg)
    weights = opd_weights(student_logp, teacher_logp, candidates, cfg)
    coefficient = weights * (student_logp.detach() - teacher_logp)
    return token_mean(_surrogate(coefficient, student_logp, candidates), mask)


def teacher_context_loss(
    student_logp: Tensor, teacher_logp: Tensor, mask: Tensor, cfg: MethodConfig
) -> Tensor:
    """L_aux: token-mean over `mask` (the selected teacher trajectories) of ℓᵃᵘˣ_t (section 3).

    `teacher_topk`: ℓᵃᵘˣ_t = Σ_{k∈topK_T(t)} sg[p̃_T(k)] · (τ(k) − s(k)), p̃_T the teacher renormalised over
    its top-`aux_top_k`: forward KL on the teacher's top-K, whose gradient −Σ p̃_T(k) ∇s(k) pulls the
    student toward the teacher.

    `student_p_as_released`: the authors' code (`dp_actor.py`, weight mode `student_p`): candidates are the
    student's top-`aux_top_k`, w the student renormalised over them, ℓᵃᵘˣ_t = Σ_k sg[w_k] · (s(k) − τ(k)).
    Since τ is a constant and w is stopped, the gradient is +Σ_k w_k ∇s(k): it lowers the student's top-K
    mass (raises its entropy) whatever the teacher says, so the teacher changes only the logged value and no
    teacher knowledge reaches the student. Kept only to reproduce the released code.
    """
    _check_shapes(student_logp, teacher_logp, mask)
    teacher_logp = teacher_logp.detach()
    if cfg.aux_mode == "teacher_topk":
        candidates = topk_mask(teacher_logp, cfg.aux_top_k)
        weights = renormalised(teacher_logp, candidates)
        sign = -1.0  # Σ p̃_T (τ − s)
    else:
        candidates = topk_mask(student_logp.detach(), cfg.aux_top_k)
        weights = renormalised(student_logp, candidates)
        sign = 1.0  # Σ w (s − τ), as released
    tau_part = (weights * teacher_logp).masked_fill_(~candidates, 0.0).sum(dim=-1)
    return token_mean(sign * (_surrogate(weights, student_logp, candidates) - tau_part), mask)


def _kl_on(p_logp: Tensor, q_logp: Tensor, candidates: Tensor) -> Tensor:
    """Σ_{k∈C} p̃(k) (log p̃(k) − q(k)) per position, `[B, T]`: KL(p̃ || q) with p̃ = p renormalised over C."""
    p_logp = p_logp.masked_fill(~candidates, float("-inf"))
    log_p = p_logp - p_logp.logsumexp(dim=-1, keepdim=True)
    terms = log_p.exp().mul_(log_p.sub_(q_logp))  # exp before the in-place subtraction: Python evaluates it first
    return terms.masked_fill_(~candidates, 0.0).sum(dim=-1)


@torch.no_grad()
def reverse_kl(student_logp: Tensor, teacher_logp: Tensor, mask: Tensor, top_k: int) -> Tensor:
    """`kl/opd`: token-mean of KL(p̃_θ || π_T) over the student's top-`top_k`, p̃_θ the student renormalised
    there: the reverse KL that L_OPD's surrogate estimates, exact when `top_k` covers the vocabulary."""
    _check_shapes(student_logp, teacher_logp, mask)
    return token_mean(_kl_on(student_logp, teacher_logp, topk_mask(student_logp, top_k)), mask)


@torch.no_grad()
def forward_kl(student_logp: Tensor, teacher_logp: Tensor, mask: Tensor, top_k: int) -> Tensor:
    """`kl/aux`: token-mean of KL(p̃_T || π_θ) over the teacher's top-`top_k`, p̃_T the teacher renormalised
    there (what `teacher_topk` L_aux distils), exact when `top_k` covers the vocabulary."""
    _check_shapes(student_logp, teacher_logp, mask)
    return token_mean(_kl_on(teacher_logp, student_logp, topk_mask(teacher_logp, top_k)), mask)


@torch.no_grad()
def entropy(logp: Tensor) -> Tensor:
    """Entropy −Σ p log p over the last axis of full-vocabulary log-probs `[..., V]`, `[...]`."""
    p_log_p = logp.exp().mul_(logp).nan_to_num_(nan=0.0)  # p = 0 at log p = −inf gives nan: 0 · log 0 = 0
    return -p_log_p.sum(dim=-1)


@torch.no_grad()
def mean_entropy(student_logp: Tensor, mask: Tensor) -> Tensor:
    """Token-mean over `mask` of the student's full-vocabulary entropy −Σ p log p (`student/entropy`)."""
    return token_mean(entropy(student_logp), mask)
