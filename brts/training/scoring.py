"""Packing (prompt, response) token lists into one batch whose response positions line up (scored by brts.training.logprobs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ResponseBatch:
    """Prompts left-padded to one width, responses right-padded after them, ready for one forward."""

    input_ids: Tensor  # [B, W + R]
    attention_mask: Tensor  # [B, W + R]
    position_ids: Tensor  # [B, W + R]
    tokens: Tensor  # [B, R] the response tokens being scored
    mask: Tensor  # [B, R] bool, True on real response tokens
    prompt_width: int

    @property
    def num_tokens(self) -> int:
        return int(self.mask.sum())

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    def rows(self, start: int, end: int) -> ResponseBatch:
        """Rows [start, end) with the same widths (a micro-batch)."""
        return dataclasses.replace(self, **{f: getattr(self, f)[start:end] for f in _TENSORS})

    def to(self, device: torch.device | str) -> ResponseBatch:
        return dataclasses.replace(self, **{f: getattr(self, f).to(device) for f in _TENSORS})


_TENSORS = ("input_ids", "attention_mask", "position_ids", "tokens", "mask")


def build_batch(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int
) -> ResponseBatch:
    """Pack pairs so that position `prompt_width - 1 + r` predicts response token `r` in every row."""
    if len(prompts) != len(responses) or not prompts:
        raise ValueError("need one response per prompt and at least one pair")
    width = max(len(p) for p in prompts)
    resp_len = max(1, max(len(r) for r in responses))
    ids, attn = [], []
    for p, r in zip(prompts, responses, strict=True):
        ids.append([pad_id] * (width - len(p)) + list(p) + list(r) + [pad_id] * (resp_len - len(r)))
        attn.append([0] * (width - len(p)) + [1] * (len(p) + len(r)) + [0] * (resp_len - len(r)))
    input_ids = torch.tensor(ids, dtype=torch.long)
    attention_mask = torch.tensor(attn, dtype=torch.long)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    tokens = input_ids[:, width:]
    mask = attention_mask[:, width:].bool()
    return ResponseBatch(input_ids, attention_mask, position_ids, tokens, mask, width)
