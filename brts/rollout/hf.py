"""Sampling with transformers `generate` (the CPU backend, and the reference for every other backend)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from brts.rollout.base import Completion, FinishReason, SamplingSettings


class HFGenerator:
    """Batched, left-padded sampling from a transformers causal LM; reproducible from `settings.seed`."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 256) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer needs pad and eos tokens for batched sampling")

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], settings: SamplingSettings) -> list[list[Completion]]:
        rows = [list(p) for p in prompts for _ in range(settings.n)]
        out: list[Completion] = []
        # Sampling uses a private RNG stream so that callers' global RNG state is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            for start in range(0, len(rows), self.batch_size):
                out.extend(self._generate_batch(rows[start : start + self.batch_size], settings))
        return [out[i * settings.n : (i + 1) * settings.n] for i in range(len(prompts))]

    def _generate_batch(self, rows: list[list[int]], settings: SamplingSettings) -> list[Completion]:
        pad, eos = int(self.tokenizer.pad_token_id), int(self.tokenizer.eos_token_id)
        width = max(len(r) for r in rows)
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
        attention = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
        was_training = self.model.training
        self.model.eval()
        sampled = self.model.generate(  # type: ignore[operator]
            input_ids=input_ids.to(self.model.device),
            attention_mask=attention.to(self.model.device),
            do_sample=settings.temperature > 0,
            temperature=settings.temperature if settings.temperature > 0 else None,
            top_p=settings.top_p if settings.temperature > 0 else None,
            top_k=0,
            max_new_tokens=settings.max_new_tokens,
            pad_token_id=pad,
            eos_token_id=eos,
        )
        self.model.train(was_training)
        completions = []
        for row in sampled[:, width:].tolist():
            ids = row[: row.index(eos) + 1] if eos in row else row
            finish: FinishReason = "stop" if ids and ids[-1] == eos else "length"
            text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
            completions.append(Completion(token_ids=tuple(ids), text=text, finish_reason=finish))
        return completions
