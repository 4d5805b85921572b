"""Choosing the generation backend of a run (`rollout.backend` in the spec)."""

from __future__ import annotations

from typing import Protocol

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from brts.rollout.base import Generator, KeyedGenerator
from brts.rollout.keyed import KeyedHFGenerator
from brts.spec import RolloutSpec


class StudentGenerator(Generator, Protocol):
    """A generator whose engine holds its own copy of the student's weights and must be told of updates."""

    def load_weights(self, model: PreTrainedModel) -> None: ...


def make_generators(
    spec: RolloutSpec, student: PreTrainedModel, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> tuple[Generator, KeyedGenerator]:
    """(student generator, teacher generator) for a run. `hf` samples from the models in memory; `vllm` loads
    each model's folder (`name_or_path`) into its own engine."""
    if spec.backend == "vllm":
        from brts.rollout.vllm import VLLMGenerator

        memory = spec.vllm_memory_fraction
        # The student's weights change every step: a prefix cache would serve keys of the old weights.
        return (
            VLLMGenerator(str(student.name_or_path), tokenizer, memory_fraction=memory, enable_prefix_caching=False),
            VLLMGenerator(str(teacher.name_or_path), tokenizer, memory_fraction=memory),
        )
    return KeyedHFGenerator(student, tokenizer), KeyedHFGenerator(teacher, tokenizer)
