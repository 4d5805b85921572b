"""Keyed sampling: every sampled row is a function of (model, prompt, row seed, settings) alone.

transformers' `generate` samples a whole batch from one RNG, so a row's tokens depend on which other rows
share its batch. Here each row's randomness is a hash of its own seed and the decode step
(`brts.rollout.nucleus`), drawn for the whole batch at once, and each token is an exact draw from the
temperature-scaled, top-p-truncated distribution. A sample drawn alone therefore equals the same sample drawn
inside any batch (up to float rounding in the batched forward, which changes a token only when its uniform
lands within ~1e-7 of a boundary). That is what lets a teacher sample be stored under a key and reused by every
run that asks for the same key (`brts.rollout.pool`). The loop is also faster than `generate`: the samples of
one prompt share one prefill, which computes logits at the last prompt position only; one forward per token with
a KV cache; finished rows leave the batch; no sort over the vocabulary.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from brts.rollout.base import Completion, FinishReason, Request, SamplingSettings
from brts.rollout.nucleus import sample_tokens, step_uniforms

# Names the sampling algorithm; part of every pool key, bump when draws change.
# v2: hashed uniforms, id-order inverse CDF with top-p by rejection (v1: per-row generators, sorted inverse CDF).
SAMPLER = "hf-keyed-v2"


def row_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts (e.g. a stream seed, a prompt index and a sample index)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


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
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}

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
        # Rows of similar prompt length share a batch (less padding), rows of one prompt stay together (one
        # prefill); the order does not change any row.
        order = sorted(range(len(requests)), key=lambda r: (len(requests[r].prompt), requests[r].prompt))
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
        seeds = np.array([r.seed for r in rows], dtype=np.uint64)
        prompts = list(dict.fromkeys(r.prompt for r in rows))  # each distinct prompt is prefilled once
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad] * (width - len(p)) + list(p) for p in prompts], device=device)
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(ids, attention, positions, cache, **self._last_only)
        if len(prompts) < len(rows):  # copy each prompt's cache to its rows
            index = {p: i for i, p in enumerate(prompts)}
            source = torch.tensor([index[r.prompt] for r in rows], device=device)
            cache.batch_select_indices(source)
            logits, attention, positions = logits[source], attention[source], positions[source]
        live = torch.arange(len(rows), device=device)  # rows still sampling, in cache order
        next_pos = positions[:, -1] + 1
        tokens: list[list[int]] = [[] for _ in rows]
        for t in range(steps):
            uniforms = step_uniforms(seeds[live.cpu().numpy()], t)
            picked = sample_tokens(logits, settings.temperature, settings.top_p, uniforms)
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

    def _forward(self, ids: Tensor, attention: Tensor, positions: Tensor, cache: DynamicCache,
                 **kwargs: int) -> Tensor:
        """Next-token logits [B, V] after `ids`, extending `cache`."""
        out = self.model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=True,
                         **{self._cache_arg: cache}, **kwargs)
        return out.logits[:, -1]

    def _completion(self, ids: list[int]) -> Completion:
        finish: FinishReason = "stop" if ids and ids[-1] == self.eos else "length"
        text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
        return Completion(token_ids=tuple(ids), text=text, finish_reason=finish)
