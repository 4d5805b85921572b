"""The keyed token sampler: exact temperature / top-p distributions, greedy, keyed uniforms, batch independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from brts.rollout.nucleus import keyed_uniforms, sample_tokens, step_uniforms


def _draw(probs: list[float], temperature: float, top_p: float, draws: int, step: int = 0) -> np.ndarray:
    """`draws` tokens, each from its own seed, as the keyed loop draws one token for each of `draws` rows."""
    logits = torch.tensor([math.log(p) for p in probs]).expand(draws, -1)
    seeds = np.arange(draws, dtype=np.uint64) * np.uint64(7919) + np.uint64(12345)
    return sample_tokens(logits, temperature, top_p, step_uniforms(seeds, step)).numpy()


def _exact(probs: list[float], temperature: float, top_p: float) -> np.ndarray:
    """The top-p-truncated, renormalised softmax(log p / T), computed the textbook way: sort (ties by id),
    keep the tokens whose mass ranked before them is below top-p."""
    scaled = np.array(probs) ** (1 / temperature)
    scaled /= scaled.sum()
    order = sorted(range(len(probs)), key=lambda i: (-scaled[i], i))
    kept, before = np.zeros(len(probs)), 0.0
    for i in order:
        if before < top_p:
            kept[i] = scaled[i]
        before += scaled[i]
    return kept / kept.sum()


PROBS = [0.05, 0.3, 0.02, 0.2, 0.25, 0.08, 0.1]  # probability order differs from id order


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (1.0, 0.8), (0.7, 0.95), (1.5, 0.5), (0.5, 0.75)])
def test_draws_follow_the_exact_top_p_truncated_softmax(temperature, top_p):
    draws = 60_000
    expected = _exact(PROBS, temperature, top_p)
    counts = np.bincount(_draw(PROBS, temperature, top_p, draws), minlength=len(PROBS))
    assert counts[expected == 0].sum() == 0  # nothing outside the nucleus, ever
    kept = expected > 0
    assert chisquare(counts[kept], expected[kept] * draws).pvalue > 1e-3


def test_top_p_cut_by_hand():
    # top-p 0.6 keeps 1 (0.3), 4 (0.25: 0.3 before it) and 3 (0.2: 0.55 before it), not 6 (0.75 before it).
    assert set(np.flatnonzero(_exact(PROBS, 1.0, 0.6))) == {1, 3, 4}
    assert set(_draw(PROBS, 1.0, 0.6, 5000)) == {1, 3, 4}
    # A nucleus smaller than the most probable token keeps that token alone.
    assert set(_draw(PROBS, 1.0, 0.1, 2000)) == {1}


def test_ties_are_ranked_by_lower_id():
    # 0.4, then three tokens of 0.2: top-p 0.5 keeps token 0 and the first tied token (id 1) only.
    probs = [0.4, 0.2, 0.2, 0.2]
    counts = np.bincount(_draw(probs, 1.0, 0.5, 30_000), minlength=4)
    assert counts[2] == counts[3] == 0
    assert chisquare(counts[:2], np.array([2 / 3, 1 / 3]) * 30_000).pvalue > 1e-3


def test_temperature_zero_is_greedy_with_the_lowest_id_among_ties():
    logits = torch.tensor([[0.1, 2.0, 2.0, -1.0], [3.0, 0.0, 0.0, 3.0]])
    never = lambda rows, round_: pytest.fail("greedy draws no uniforms")  # noqa: E731
    assert sample_tokens(logits, 0.0, 0.9, never).tolist() == [1, 0]


def test_a_uniform_next_to_one_never_picks_a_token_of_zero_weight():
    # Tokens 2 and 3 sit outside the nucleus; a uniform of 1 - 2^-24 must still land inside it.
    logits = torch.tensor([[math.log(0.6), math.log(0.3), math.log(0.05), math.log(0.05)]])
    almost_one = lambda rows, round_: torch.full((len(rows),), 1 - 2.0**-24)  # noqa: E731
    assert sample_tokens(logits, 1.0, 0.5, almost_one).tolist() == [0]
    assert sample_tokens(logits, 1.0, 1.0, almost_one).tolist() == [3]


def test_keyed_uniforms_depend_on_seed_step_and_round_only():
    seeds = np.array([5, 2**62 + 3, 0, 17], dtype=np.uint64)
    u = keyed_uniforms(seeds, 3, 1)
    assert u.dtype == torch.float32 and bool(((u >= 0) & (u < 1)).all())
    assert torch.equal(keyed_uniforms(seeds[::-1].copy(), 3, 1), u.flip(0))  # any order, any company
    assert torch.equal(keyed_uniforms(seeds[2:3], 3, 1), u[2:3])
    assert len({*keyed_uniforms(seeds[:1], 3, 1).tolist(), *keyed_uniforms(seeds[:1], 4, 1).tolist(),
                *keyed_uniforms(seeds[:1], 3, 2).tolist()}) == 3
    many = keyed_uniforms(np.arange(100_000, dtype=np.uint64), 0, 0).numpy()
    assert abs(many.mean() - 0.5) < 0.005 and chisquare(np.histogram(many, bins=20, range=(0, 1))[0]).pvalue > 1e-3


def test_a_row_draws_the_same_token_alone_and_in_any_batch():
    # A vocabulary large enough that the rows are drawn in several chunks, and flat enough that draws are
    # often rejected (several rounds per row).
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 300_000, generator=generator) * 0.5
    seeds = np.arange(12, dtype=np.uint64) * np.uint64(1_000_003)
    together = sample_tokens(logits, 0.8, 0.3, step_uniforms(seeds, 0))
    alone = [sample_tokens(logits[i : i + 1], 0.8, 0.3, step_uniforms(seeds[i : i + 1], 0)).item() for i in range(12)]
    assert together.tolist() == alone
    order = torch.randperm(12, generator=generator)
    shuffled = sample_tokens(logits[order], 0.8, 0.3, step_uniforms(seeds[order.numpy()], 0))
    assert shuffled.tolist() == together[order].tolist()
