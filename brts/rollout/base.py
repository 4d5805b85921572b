"""The one generator protocol every backend (transformers, vLLM) implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingSettings:
    """How to sample: the same fields every backend understands."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0


@dataclass(frozen=True)
class Completion:
    """One sampled continuation: `token_ids` excludes the prompt and ends with EOS when finish_reason is "stop"
    (EOS is sampled, so it is scored and trained on); `text` is the decoded response without special tokens."""

    token_ids: tuple[int, ...]
    text: str
    finish_reason: FinishReason


class Generator(Protocol):
    """Samples `settings.n` completions for each prompt, deterministically from `settings.seed`."""

    def generate(
        self, prompts: Sequence[Sequence[int]], settings: SamplingSettings
    ) -> list[list[Completion]]: ...
