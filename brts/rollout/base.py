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


@dataclass(frozen=True)
class Request:
    """One row to sample: the prompt's token ids and the seed that row's randomness is drawn from."""

    prompt: tuple[int, ...]
    seed: int


class KeyedGenerator(Protocol):
    """Samples one completion per request, each a function of (model, request, settings) alone: not of the
    other requests in the call. `sampler` names the algorithm (samples of different samplers differ)."""

    sampler: str

    def sample(self, requests: Sequence[Request], settings: SamplingSettings) -> list[Completion]: ...


class KeyedBatchGenerator(Generator, KeyedGenerator, Protocol):
    """Both: the student's generator samples a training step through `sample` (keyed rows, so ranks that
    split the step's prompts draw what one process draws) and validates through `generate`."""
