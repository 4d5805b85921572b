"""L_OPD, L_aux and their gradients against independent float64 references (explicit loops, closed forms)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from brts.method import (
    MethodConfig,
    forward_kl,
    mean_entropy,
    opd_loss,
    reverse_kl,
    teacher_context_loss,
    token_mean,
)

B, T, V, K = 2, 3, 6, 2
MASK = torch.tensor([[True, True, True], [True, True, False]])


def _logits(seed: int, shape: tuple[int, ...] = (B, T, V), scale: float = 2.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _leaf_logp(seed: int) -> torch.Tensor:
    """Student log-probs as a leaf, so the gradient wrt each s(k) can be read off directly."""
    return torch.log_softmax(_logits(seed), dim=-1).detach().requires_grad_(True)


def _teacher_logp(seed: int) -> torch.Tensor:
    return torch.log_softmax(_logits(seed), dim=-1)


def _pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Student/teacher pairs whose top-K sets overlap in 0, 1 and all K tokens across positions."""
    pairs = [(_leaf_logp(seed), _teacher_logp(100 + seed)) for seed in range(3)]
    near_copy = torch.log_softmax(_logits(3) + 0.1 * _logits(103), dim=-1)
    return [*pairs, (_leaf_logp(3), near_copy)]


def _top(values: list[float], k: int) -> set[int]:
    return set(sorted(range(len(values)), key=lambda v: -values[v])[:k])


def _reference_topk(
    s: torch.Tensor, tau: torch.Tensor, mask: torch.Tensor, candidates: str, weights: str, k: int
):
    """Value and d loss / d s of the topk estimator, position by position and candidate by candidate."""
    n = int(mask.sum())
    value, grad = 0.0, torch.zeros_like(s)
    for b, t in itertools.product(range(s.shape[0]), range(s.shape[1])):
        if not mask[b, t]:
            continue
        sv, tv = s[b, t].tolist(), tau[b, t].tolist()
        st, tt = _top(sv, k), _top(tv, k)
        chosen = {
            "student": st,
            "teacher": tt,
            "intersection": st & tt,
            "union": st | tt,
            "symmetric_difference": st ^ tt,
        }[candidates]
        raw = {
            c: {"student_p": math.exp(sv[c]), "teacher_p": math.exp(tv[c]), "uniform": 1.0}[weights]
            for c in chosen
        }
        norm = 1.0 if candidates == "symmetric_difference" else sum(raw.values())
        for c in chosen:
            coefficient = raw[c] / norm * (sv[c] - tv[c])
            value += coefficient * sv[c] / n
            grad[b, t, c] = coefficient / n
    return value, grad


@pytest.mark.parametrize(
    ("candidates", "weights"),
    list(
        itertools.product(
            ["student", "teacher", "intersection", "union", "symmetric_difference"],
            ["student_p", "teacher_p", "uniform"],
        )
    ),
)
def test_topk_value_and_gradient_match_loops(candidates: str, weights: str) -> None:
    cfg = MethodConfig(opd_top_k=K, opd_candidates=candidates, opd_weights=weights)
    for s, tau in _pairs():
        tokens = torch.zeros(B, T, dtype=torch.long)
        loss = opd_loss(s, tau, tokens, MASK, cfg)
        loss.backward()
        value, grad = _reference_topk(s.detach(), tau, MASK, candidates, weights, K)
        assert loss.item() == pytest.approx(value, rel=1e-12, abs=1e-12)
        assert s.grad is not None
        torch.testing.assert_close(s.grad, grad, rtol=1e-12, atol=1e-12)


def test_seeds_exercise_nontrivial_candidate_sets() -> None:
    """The parametrised test above means something only if the student's and teacher's top-K differ."""
    sizes = set()
    for s, tau in _pairs():
        for b, t in itertools.product(range(B), range(T)):
            sizes.add(len(_top(s[b, t].tolist(), K) & _top(tau[b, t].tolist(), K)))
    assert sizes == {0, 1, 2}


def test_sampled_value_and_gradient_wrt_logits_closed_form() -> None:
    cfg = MethodConfig(opd_estimator="sampled")
    logits = _logits(0).requires_grad_(True)
    tau = _teacher_logp(1)
    tokens = torch.tensor([[0, 3, 5], [2, 2, -100]])  # padding id out of range must not matter
    loss = opd_loss(torch.log_softmax(logits, dim=-1), tau, tokens, MASK, cfg)
    loss.backward()
    p = torch.softmax(logits.detach(), dim=-1)
    s = torch.log_softmax(logits.detach(), dim=-1)
    n = int(MASK.sum())
    value, grad = 0.0, torch.zeros_like(logits)
    for b, t in itertools.product(range(B), range(T)):
        if not MASK[b, t]:
            continue
        y = int(tokens[b, t])
        diff = float(s[b, t, y] - tau[b, t, y])
        value += diff * float(s[b, t, y]) / n
        onehot = torch.zeros(V, dtype=torch.float64)
        onehot[y] = 1.0
        grad[b, t] = diff * (onehot - p[b, t]) / n  # (s − τ) ∇s(y), ∇_z s(y) = e_y − p
    assert loss.item() == pytest.approx(value, rel=1e-12)
    assert logits.grad is not None
    torch.testing.assert_close(logits.grad, grad, rtol=1e-10, atol=1e-12)


def _reverse_kl(logits: torch.Tensor, tau: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    s = torch.log_softmax(logits, dim=-1)
    per_token = (s.exp() * (s - tau)).sum(dim=-1)
    return per_token[mask].mean()


def test_topk_over_full_vocab_has_the_exact_reverse_kl_gradient() -> None:
    cfg = MethodConfig(opd_top_k=V, opd_candidates="student", opd_weights="student_p")
    tau = _teacher_logp(7)
    logits = _logits(3).requires_grad_(True)
    s = torch.log_softmax(logits, dim=-1)
    loss = opd_loss(s, tau, torch.zeros(B, T, dtype=torch.long), MASK, cfg)
    (grad,) = torch.autograd.grad(loss, logits)
    exact = logits.detach().clone().requires_grad_(True)
    (grad_exact,) = torch.autograd.grad(_reverse_kl(exact, tau, MASK), exact)
    torch.testing.assert_close(grad, grad_exact, rtol=1e-10, atol=1e-12)
    # Its value is Σ_k p(k) (s(k) − τ(k)) s(k): the surrogate, not the KL itself.
    sd = s.detach()
    assert loss.item() == pytest.approx(float((sd.exp() * (sd - tau) * sd).sum(-1)[MASK].mean()), rel=1e-12)


def test_sampled_gradient_averaged_over_the_student_equals_the_reverse_kl_gradient() -> None:
    cfg = MethodConfig(opd_estimator="sampled")
    logits = _logits(5, (1, 1, V))
    tau = _teacher_logp(6)[:1, :1]
    mask = torch.ones(1, 1, dtype=torch.bool)
    p = torch.softmax(logits, dim=-1)[0, 0]
    expected = torch.zeros_like(logits)
    for y in range(V):
        z = logits.clone().requires_grad_(True)
        loss = opd_loss(torch.log_softmax(z, dim=-1), tau, torch.tensor([[y]]), mask, cfg)
        (g,) = torch.autograd.grad(loss, z)
        expected += p[y] * g
    exact = logits.clone().requires_grad_(True)
    (grad_exact,) = torch.autograd.grad(_reverse_kl(exact, tau, mask), exact)
    torch.testing.assert_close(expected, grad_exact, rtol=1e-10, atol=1e-12)


def test_empty_intersection_contributes_zero_and_no_nan() -> None:
    cfg = MethodConfig(opd_top_k=1, opd_candidates="intersection")
    s = torch.log_softmax(torch.tensor([[[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]]], dtype=torch.float64), -1)
    tau = torch.log_softmax(torch.tensor([[[0.0, 3.0, 0.0], [3.0, 0.0, 0.0]]], dtype=torch.float64), -1)
    s = s.detach().requires_grad_(True)
    mask = torch.ones(1, 2, dtype=torch.bool)
    loss = opd_loss(s, tau, torch.zeros(1, 2, dtype=torch.long), mask, cfg)
    loss.backward()
    assert s.grad is not None
    # Position 0: empty set, zero gradient; position 1: the shared top-1 token, counted over 2 positions.
    assert torch.all(s.grad[0, 0] == 0)
    expected = float(s.detach()[0, 1, 0] - tau[0, 1, 0]) / 2
    assert s.grad[0, 1, 0].item() == pytest.approx(expected, rel=1e-12)
    assert torch.isfinite(loss)


def test_teacher_logp_gets_no_gradient() -> None:
    s, tau = _leaf_logp(0), _teacher_logp(1).requires_grad_(True)
    cfg = MethodConfig(opd_top_k=K, opd_weights="teacher_p", aux_top_k=K)
    loss = opd_loss(s, tau, torch.zeros(B, T, dtype=torch.long), MASK, cfg) + teacher_context_loss(
        s, tau, MASK, cfg
    )
    loss.backward()
    assert tau.grad is None or torch.all(tau.grad == 0)


def _reference_aux(s: torch.Tensor, tau: torch.Tensor, mask: torch.Tensor, mode: str, k: int):
    n = int(mask.sum())
    value, grad = 0.0, torch.zeros_like(s)
    for b, t in itertools.product(range(s.shape[0]), range(s.shape[1])):
        if not mask[b, t]:
            continue
        sv, tv = s[b, t].tolist(), tau[b, t].tolist()
        by = tv if mode == "teacher_topk" else sv
        chosen = _top(by, k)
        norm = sum(math.exp(by[c]) for c in chosen)
        sign = -1.0 if mode == "teacher_topk" else 1.0  # Σ p̃_T (τ − s); as released Σ w (s − τ)
        for c in chosen:
            w = math.exp(by[c]) / norm
            value += sign * w * (sv[c] - tv[c]) / n
            grad[b, t, c] = sign * w / n
    return value, grad


@pytest.mark.parametrize("mode", ["teacher_topk", "student_p_as_released"])
def test_aux_value_and_gradient_match_loops(mode: str) -> None:
    cfg = MethodConfig(aux_mode=mode, aux_top_k=3)
    s, tau = _leaf_logp(11), _teacher_logp(12)
    loss = teacher_context_loss(s, tau, MASK, cfg)
    loss.backward()
    value, grad = _reference_aux(s.detach(), tau, MASK, mode, 3)
    assert loss.item() == pytest.approx(value, rel=1e-12)
    assert s.grad is not None
    torch.testing.assert_close(s.grad, grad, rtol=1e-12, atol=1e-12)


def _authors_student_p_aux(logits: torch.Tensor, tau: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """The released L_aux with weight mode `student_p`, step by step as BWGZK-keke/BRTS writes it
    (verl/workers/actor/dp_actor.py, the `aux_teacher_ctx_kd` block; ids from `compute_log_prob`'s top-K):
    gather the student's top-K ids, w = softmax over them of the detached student log-probs,
    aux_kl = log p_s − log p_t, per token Σ w · aux_kl, token-mean over the response mask."""
    logp = torch.log_softmax(logits, dim=-1)
    ids = logp.detach().topk(k, dim=-1).indices  # aux_teacher_ctx_student_top_k_ids
    aux_student_logp = logp.gather(-1, ids)
    aux_teacher_logp = tau.gather(-1, ids)  # aux_teacher_ctx_teacher_on_student_log_probs
    valid = mask.unsqueeze(-1).expand_as(aux_student_logp)
    weight_logits = torch.where(valid, aux_student_logp.detach(), torch.full_like(aux_student_logp, -math.inf))
    weights = torch.nan_to_num(torch.exp(weight_logits - torch.logsumexp(weight_logits, dim=-1, keepdim=True)))
    aux_kl = torch.where(valid, aux_student_logp - aux_teacher_logp, torch.zeros_like(aux_student_logp))
    per_token = (weights * aux_kl).sum(dim=-1)
    return (per_token * mask).sum() / mask.sum()  # agg_loss, token-mean


@pytest.mark.parametrize("seed", [40, 41, 42])
def test_released_aux_matches_the_authors_formula_in_value_and_gradient(seed: int) -> None:
    cfg = MethodConfig(aux_mode="student_p_as_released", aux_top_k=3)
    logits, tau = _logits(seed), _teacher_logp(seed + 100)
    ours, theirs = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    loss = teacher_context_loss(torch.log_softmax(ours, -1), tau, MASK, cfg)
    reference = _authors_student_p_aux(theirs, tau, MASK, 3)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12, abs=1e-14)
    (g_ours,) = torch.autograd.grad(loss, ours)
    (g_theirs,) = torch.autograd.grad(reference, theirs)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-10, atol=1e-14)


def test_released_aux_step_lowers_the_students_top_k_mass() -> None:
    """+Σ w ∇s: descending it pushes the student's top-K log-probs down (entropy up), whatever the teacher."""
    cfg = MethodConfig(aux_mode="student_p_as_released", aux_top_k=2)
    logits = _logits(50)
    stepped = logits - 0.5 * _aux_grad_wrt_logits(logits, _teacher_logp(51), cfg)
    top = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.topk(2, -1).indices, True)
    mass = lambda z: torch.where(top, torch.softmax(z, -1), 0.0).sum(-1)[MASK]  # noqa: E731
    assert torch.all(mass(stepped) < mass(logits))
    assert torch.all(mean_entropy(torch.log_softmax(stepped, -1), MASK) > mean_entropy(torch.log_softmax(logits, -1), MASK))


def test_teacher_topk_aux_is_forward_kl_to_the_renormalised_teacher() -> None:
    """ℓᵃᵘˣ = KL(p̃_T || p_s) + logsumexp_C(τ); with K = V it is exactly KL(p_T || p_s)."""
    s, tau = _leaf_logp(2).detach(), _teacher_logp(3)
    for k in (3, V):
        cfg = MethodConfig(aux_top_k=k)
        c = torch.zeros_like(tau, dtype=torch.bool).scatter_(-1, tau.topk(k, -1).indices, True)
        log_z = tau.masked_fill(~c, -math.inf).logsumexp(-1)
        q = torch.where(c, (tau - log_z.unsqueeze(-1)).exp(), 0.0)
        kl = torch.where(c, q * (q.clamp_min(1e-300).log() - s), 0.0).sum(-1)
        expected = (kl + log_z)[MASK].mean()
        assert teacher_context_loss(s, tau, MASK, cfg).item() == pytest.approx(expected.item(), rel=1e-12)
    full = (tau.exp() * (tau - s)).sum(-1)[MASK].mean()
    assert teacher_context_loss(s, tau, MASK, MethodConfig(aux_top_k=V)).item() == pytest.approx(
        full.item(), rel=1e-12
    )


def _aux_grad_wrt_logits(logits: torch.Tensor, tau: torch.Tensor, cfg: MethodConfig) -> torch.Tensor:
    z = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(teacher_context_loss(torch.log_softmax(z, -1), tau, MASK, cfg), z)
    return grad


def test_released_aux_gradient_ignores_the_teacher_and_teacher_topk_does_not() -> None:
    logits = _logits(20)
    tau_a, tau_b = _teacher_logp(21), _teacher_logp(22)
    released = MethodConfig(aux_mode="student_p_as_released", aux_top_k=3)
    g_a, g_b = _aux_grad_wrt_logits(logits, tau_a, released), _aux_grad_wrt_logits(logits, tau_b, released)
    torch.testing.assert_close(g_a, g_b, rtol=0, atol=0)
    assert g_a.abs().sum() > 0
    # The value still moves with the teacher, which is why the released loss looks alive in logs.
    s = torch.log_softmax(logits, -1)
    assert teacher_context_loss(s, tau_a, MASK, released) != teacher_context_loss(s, tau_b, MASK, released)
    forward = MethodConfig(aux_mode="teacher_topk", aux_top_k=3)
    assert not torch.allclose(
        _aux_grad_wrt_logits(logits, tau_a, forward), _aux_grad_wrt_logits(logits, tau_b, forward)
    )


def test_one_sgd_step_on_teacher_topk_aux_moves_the_student_toward_the_teacher() -> None:
    k = 2
    cfg = MethodConfig(aux_top_k=k)
    logits = _logits(30)
    tau = torch.log_softmax(_logits(31, scale=4.0), dim=-1)  # a peaked teacher
    c = torch.zeros_like(tau, dtype=torch.bool).scatter_(-1, tau.topk(k, -1).indices, True)
    q = torch.where(c, tau.exp(), 0.0)
    q = q / q.sum(-1, keepdim=True)

    def kl_on_topk(z: torch.Tensor) -> torch.Tensor:
        """KL(p̃_T || p_s) per masked position, written out independently of the loss."""
        s = torch.log_softmax(z, -1)
        return torch.where(c, q * (q.clamp_min(1e-300).log() - s), 0.0).sum(-1)[MASK]

    stepped = logits - 0.5 * _aux_grad_wrt_logits(logits, tau, cfg)
    before, after = kl_on_topk(logits), kl_on_topk(stepped)
    assert torch.all(after < before)
    assert float(after.mean()) < float(before.mean()) - 1e-3


def test_token_mean_masks_and_keeps_the_graph_when_empty() -> None:
    x = torch.tensor([[1.0, 2.0, float("nan")], [4.0, 5.0, 6.0]], requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, True, False]])
    assert token_mean(x, mask).item() == pytest.approx((1 + 2 + 5) / 3)
    empty = token_mean(x, torch.zeros_like(mask))
    assert empty.item() == 0.0 and empty.requires_grad
    empty.backward()
    assert x.grad is not None and torch.all(x.grad == 0)


def test_empty_mask_losses_are_zero_with_zero_gradient() -> None:
    s, tau = _leaf_logp(0), _teacher_logp(1)
    none = torch.zeros(B, T, dtype=torch.bool)
    loss = opd_loss(s, tau, torch.zeros(B, T, dtype=torch.long), none, MethodConfig()) + teacher_context_loss(
        s, tau, none, MethodConfig()
    )
    loss.backward()
    assert loss.item() == 0.0 and s.grad is not None and torch.all(s.grad == 0)


def test_mean_entropy_matches_loops_and_tolerates_zero_probabilities() -> None:
    logits = _logits(40)
    logits[0, 0, 2] = -math.inf
    logp = torch.log_softmax(logits, -1).requires_grad_(True)
    expected = []
    for b, t in itertools.product(range(B), range(T)):
        if MASK[b, t]:
            expected.append(-sum(math.exp(v) * v for v in logp[b, t].tolist() if v != -math.inf))
    h = mean_entropy(logp, MASK)
    assert h.item() == pytest.approx(sum(expected) / len(expected), rel=1e-12)
    assert not h.requires_grad
    uniform = torch.full((1, 1, 4), -math.log(4.0))
    assert mean_entropy(uniform, torch.ones(1, 1, dtype=torch.bool)).item() == pytest.approx(math.log(4.0))


def test_mismatched_shapes_are_rejected() -> None:
    s, tau = _leaf_logp(0), _teacher_logp(1)[:, :, :5]
    with pytest.raises(ValueError, match="differ in shape"):
        opd_loss(s, tau, torch.zeros(B, T, dtype=torch.long), MASK, MethodConfig())
    with pytest.raises(ValueError, match=r"mask \[B, T\]"):
        teacher_context_loss(s, s.detach(), MASK[:, :2], MethodConfig())


def test_logged_kls_are_exact_with_the_whole_vocabulary_and_non_negative_on_a_top_k() -> None:
    s, tau = torch.log_softmax(_logits(60), -1), torch.log_softmax(_logits(61), -1)
    exact_reverse = (s.exp() * (s - tau)).sum(-1)[MASK].mean()
    exact_forward = (tau.exp() * (tau - s)).sum(-1)[MASK].mean()
    assert reverse_kl(s, tau, MASK, V).item() == pytest.approx(exact_reverse.item(), rel=1e-12)
    assert forward_kl(s, tau, MASK, V).item() == pytest.approx(exact_forward.item(), rel=1e-12)
    for k in (1, 2, 3):
        assert reverse_kl(s, tau, MASK, k).item() >= 0 and forward_kl(s, tau, MASK, k).item() >= 0


def test_logged_kls_on_a_top_k_against_loops() -> None:
    s, tau = torch.log_softmax(_logits(62), -1), torch.log_softmax(_logits(63), -1)
    k = 2

    def loop(p: torch.Tensor, q: torch.Tensor) -> float:
        total, n = 0.0, 0
        for b, t in itertools.product(range(B), range(T)):
            if not MASK[b, t]:
                continue
            pv, qv = p[b, t].tolist(), q[b, t].tolist()
            top = _top(pv, k)
            norm = sum(math.exp(pv[c]) for c in top)
            total += sum(math.exp(pv[c]) / norm * (math.log(math.exp(pv[c]) / norm) - qv[c]) for c in top)
            n += 1
        return total / n

    assert reverse_kl(s, tau, MASK, k).item() == pytest.approx(loop(s, tau), rel=1e-12)
    assert forward_kl(s, tau, MASK, k).item() == pytest.approx(loop(tau, s), rel=1e-12)
    # top-1 of the teacher: the student's negative log-likelihood of the teacher's most likely token
    nll = -s.gather(-1, tau.argmax(-1, keepdim=True)).squeeze(-1)[MASK].mean()
    assert forward_kl(s, tau, MASK, 1).item() == pytest.approx(nll.item(), rel=1e-12)


def test_the_opd_surrogate_is_not_the_kl_it_estimates() -> None:
    """Why both are logged: with a leaf s the surrogate's value is Σ sg[w(s − τ)] s, negative where the KL is not."""
    s, tau = _leaf_logp(64), _teacher_logp(65)
    cfg = MethodConfig(opd_top_k=V)
    surrogate = opd_loss(s, tau, torch.zeros(B, T, dtype=torch.long), MASK, cfg).item()
    assert reverse_kl(s.detach(), tau, MASK, V).item() > 0 > surrogate
