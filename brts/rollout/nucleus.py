"""Exact temperature / top-p token draws from keyed uniforms, without sorting the vocabulary.

A row's uniform for decode step t and round r is a hash of (row seed, t, r) (splitmix64), computed for the whole
batch at once and independent of which rows share the batch. The draw is inverse CDF in token-id order over
softmax(logits / temperature); the token is accepted if it lies in the top-p nucleus (the most probable tokens,
ties ranked by lower id, whose probability mass ranked before them is below top-p). A rejected token and every
token ranked after it are outside the nucleus, so the next round draws again among the tokens ranked before it
(rejection sampling as in FlashInfer's sorting-free top-p): the accepted token is an exact draw from the
renormalised nucleus, and no round sorts the vocabulary. Id order rather than probability order keeps a draw
stable under the float rounding of a batched forward: two nearly tied tokens that swap ranks move no CDF boundary.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

Uniforms = Callable[[Tensor, int], Tensor]  # (batch rows, round) -> float32 uniforms in [0, 1), one per row

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 that scrambles every input bit into every output bit."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def keyed_uniforms(seeds: np.ndarray, step: int, round_: int) -> Tensor:
    """float32 uniforms in [0, 1), one per seed (uint64), each a function of (seed, step, round_) alone."""
    with np.errstate(over="ignore"):
        x = _mix(seeds + _GOLDEN * np.uint64(step + 1))
        x = _mix(x + _GOLDEN * np.uint64(round_ + 1))
    # The top 24 bits: every value exactly representable in float32, and below 1.
    return torch.from_numpy((x >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24))


def step_uniforms(seeds: np.ndarray, step: int) -> Uniforms:
    """The uniforms of the batch whose row i has seed `seeds[i]`, at decode step `step`."""
    return lambda rows, round_: keyed_uniforms(seeds[rows.cpu().numpy()], step, round_)


_CHUNK = 1 << 20  # probabilities per chunk of rows: temporaries stay small (in cache, no page faults)


def sample_tokens(logits: Tensor, temperature: float, top_p: float, uniforms: Uniforms) -> Tensor:
    """Token ids [B]: row b an exact draw from softmax(logits[b] / temperature) kept to its top-p nucleus and
    renormalised, driven by `uniforms(rows, round)` only (see the module docstring). Temperature 0 is greedy
    (the lowest id among equal maxima)."""
    if temperature <= 0:
        return logits.argmax(-1)
    rows = torch.arange(len(logits), device=logits.device)
    size = max(1, _CHUNK // logits.shape[-1])
    return torch.cat([_sample_rows(logits[s : s + size], rows[s : s + size], temperature, top_p, uniforms)
                      for s in range(0, len(logits), size)])


def _sample_rows(logits: Tensor, rows: Tensor, temperature: float, top_p: float, uniforms: Uniforms) -> Tensor:
    weights = logits.to(torch.float32, copy=True)  # softmax(logits / T) without its normalisation, in place
    weights.sub_(weights.max(-1, keepdim=True).values).div_(temperature).exp_()
    cdf = weights.cumsum(-1)
    nucleus_mass = top_p * cdf[:, -1]
    ids = torch.arange(weights.shape[-1], device=weights.device)
    picked = torch.empty(len(rows), dtype=torch.long, device=weights.device)
    at = torch.arange(len(rows), device=weights.device)  # positions in this chunk of the rows still drawing
    for round_ in range(weights.shape[-1]):  # each round removes at least the rejected token from the support
        token = _inverse_cdf(cdf, uniforms(rows[at], round_).to(weights.device))
        if top_p >= 1:
            picked[at] = token
            break
        w_token = weights.gather(-1, token.unsqueeze(-1))
        ranked_before = (weights > w_token) | ((weights == w_token) & (ids < token.unsqueeze(-1)))
        accept = (weights * ranked_before).sum(-1) < nucleus_mass
        picked[at[accept]] = token[accept]
        if bool(accept.all()):
            break
        keep = (~accept).nonzero().squeeze(-1)
        at, nucleus_mass = at[keep], nucleus_mass[keep]
        weights = weights[keep] * ranked_before[keep]
        cdf = weights.cumsum(-1)
    return picked


def _inverse_cdf(cdf: Tensor, uniform: Tensor) -> Tensor:
    """Per row, the first token (in id order) at which `cdf` exceeds uniform x its total; never a token of zero
    weight."""
    total = cdf[:, -1:].contiguous()
    pick = torch.searchsorted(cdf, uniform.unsqueeze(-1) * total, right=True)
    # u x total can round up to total; then take the last token of positive weight (where the cdf reaches total).
    last = torch.searchsorted(cdf, total, right=False)
    return torch.minimum(pick, last).squeeze(-1)
