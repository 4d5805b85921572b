"""Choosing the generation backend of a run (`rollout.backend` in the spec)."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from brts.rollout.base import KeyedBatchGenerator, KeyedGenerator
from brts.rollout.keyed import KeyedHFGenerator
from brts.spec import RolloutSpec


def teacher_generator(spec: RolloutSpec, teacher: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> KeyedGenerator:
    """The teacher's keyed generator: the servers of `teacher_server` when given; else `hf` samples from the model
    in memory and `vllm` loads its folder into an engine (frozen, so never synced)."""
    if spec.teacher_server:
        from brts.rollout.served import ServedGenerator

        return ServedGenerator(spec.teacher_server, tokenizer)
    if spec.backend == "vllm":
        from brts.rollout.vllm import VLLMGenerator

        return VLLMGenerator(str(teacher.name_or_path), tokenizer, memory_fraction=spec.vllm_memory_fraction)
    return KeyedHFGenerator(teacher, tokenizer)


def student_generator(
    spec: RolloutSpec, student: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> KeyedBatchGenerator:
    """The student's generator. A `vllm` engine holds its own copy of the weights, which the trainer refreshes
    through its `load_weights` after every optimiser step."""
    if spec.backend == "vllm":
        from brts.rollout.vllm import VLLMGenerator

        # The weights change every step: a prefix cache would serve keys computed with the old ones.
        return VLLMGenerator(str(student.name_or_path), tokenizer, memory_fraction=spec.vllm_memory_fraction,
                             enable_prefix_caching=False)
    return KeyedHFGenerator(student, tokenizer)
