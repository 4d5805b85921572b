"""Keyed sampling: every sampled row is a function of (model, prompt, row seed, settings) alone.

transformers' `generate` samples a whole batch from one RNG, so a row's tokens depend on which other rows
share its batch. Here each row draws its own uniforms up front from a `torch.Generator` seeded with the
row's seed, and picks each token by inverse-CDF over the temperature-scaled, top-p-truncated distribution.
A sample drawn alone therefore equals the same sample drawn inside any batch (up to float rounding in the
batched forward, which flips a token only when a uniform lands within ~1e-7 of a CDF boundary). That is
what lets a teacher sample be stored under a key and reused by every run that asks for the same key
(`brts.rollout.pool`), and it is also a faster decode loop than `generate` for small models: one forward
per token with a KV cache, finished rows dropped from the batch.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence

import torch
from torch import Tensor
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from brts.rollout.base import Completion, FinishReason, Request, SamplingSettings

SAMPLER = "hf-keyed-v1"  # names the sampling algorithm; part of every pool key, bump when draws change


def row_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts (e.g. a stream seed, a prompt index and a sample index)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def sample_from_uniform(logits: Tensor, uniform: Tensor, temperature: float, top_p: float) -> Tensor:
    """Token ids [B] drawn by inverse CDF: row b takes the token at which the cumulative probability of
    softmax(logits[b] / temperature), kept to its top-p nucleus (most probable first) and renormalised,
    first exceeds `uniform[b]`. Temperature 0 is greedy."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
    mass_before = sorted_p.cumsum(-1) - sorted_p
    sorted_p = sorted_p * (mass_before < top_p)  # the first token always stays
    cdf = sorted_p.cumsum(-1)
    target = uniform.double().unsqueeze(-1) * cdf[:, -1:]
    pick = torch.searchsorted(cdf, target, right=True).clamp(max=logits.shape[-1] - 1)
    return order.gather(-1, pick).squeeze(-1)


class KeyedHFGenerator:
    """Keyed, batched sampling from a transformers causal LM (the `Generator` protocol, plus `sample`)."""

    sampler = SAMPLER

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 256) -> None:
        if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer needs pad and eos tokens for batched sampling")
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.pad, self.eos = int(tokenizer.pad_token_id), int(tokenizer.eos_token_id)
        # transformers renamed `past_key_values` to `cache` (5.2x); take whichever this model accepts.
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    def generate(self, prompts: Sequence[Sequence[int]], settings: SamplingSettings) -> list[list[Completion]]:
        """`settings.n` samples per prompt; sample j of prompt i is keyed by (settings.seed, i, j)."""
        requests = [Request(tuple(p), row_seed(settings.seed, i, j)) for i, p in enumerate(prompts)
                    for j in range(settings.n)]
        flat = self.sample(requests, settings)
        return [flat[i * settings.n : (i + 1) * settings.n] for i in range(len(prompts))]

    @torch.no_grad()
    def sample(self, requests: Sequence[Request], settings: SamplingSettings) -> list[Completion]:
        """One completion per request, in request order; each a function of its request and `settings` only
        (`settings.n` and `settings.seed` are ignored)."""
        # Rows of similar prompt length share a batch (less padding); the order does not change any row.
        order = sorted(range(len(requests)), key=lambda r: len(requests[r].prompt))
        out: list[Completion | None] = [None] * len(requests)
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                for r, completion in zip(chunk, self._sample_batch([requests[r] for r in chunk], settings),
                                         strict=True):
                    out[r] = completion
        finally:
            self.model.train(was_training)
        return [c for c in out if c is not None]

    def _sample_batch(self, rows: list[Request], settings: SamplingSettings) -> list[Completion]:
        steps, device = settings.max_new_tokens, self.model.device
        uniforms = torch.stack([torch.rand(steps, generator=torch.Generator().manual_seed(r.seed)) for r in rows])
        width = max(len(r.prompt) for r in rows)
        ids = torch.tensor([[self.pad] * (width - len(r.prompt)) + list(r.prompt) for r in rows], device=device)
        attention = torch.tensor([[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in rows], device=device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(ids, attention, positions, cache)
        live = torch.arange(len(rows), device=device)  # rows still sampling, in cache order
        next_pos = positions[:, -1] + 1
        tokens: list[list[int]] = [[] for _ in rows]
        for t in range(steps):
            picked = sample_from_uniform(logits.float(), uniforms[live.cpu(), t].to(device),
                                         settings.temperature, settings.top_p)
            for row, token in zip(live.tolist(), picked.tolist(), strict=True):
                tokens[row].append(token)
            going = picked != self.eos
            if t == steps - 1 or not bool(going.any()):
                break
            if not bool(going.all()):  # drop finished rows from the batch and the cache
                keep = going.nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                live, attention, next_pos, picked = live[keep], attention[keep], next_pos[keep], picked[keep]
            attention = torch.cat([attention, attention.new_ones(len(live), 1)], dim=-1)
            logits = self._forward(picked.unsqueeze(-1), attention, next_pos.unsqueeze(-1), cache)
            next_pos = next_pos + 1
        return [self._completion(ids) for ids in tokens]

    def _forward(self, ids: Tensor, attention: Tensor, positions: Tensor, cache: DynamicCache) -> Tensor:
        """Next-token logits [B, V] after `ids`, extending `cache`."""
        out = self.model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True,
                         **{self._cache_arg: cache})
        return out.logits[:, -1]

    def _completion(self, ids: list[int]) -> Completion:
        finish: FinishReason = "stop" if ids and ids[-1] == self.eos else "length"
        text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
        return Completion(token_ids=tuple(ids), text=text, finish_reason=finish)
