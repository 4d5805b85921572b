"""Randomly initialised Qwen2-style teacher and student folders of a given size, built here (nothing downloaded).

For checks where what matters is the shape of the computation, not what the models know: the GPU check
(`scripts/gpu_check.py`), the long-vocabulary memory check and the tests of the streamed log-probs. The
tokenizer is the built-in character tokenizer padded with filler tokens up to the vocabulary size, so prompts
of the synthetic task encode as usual while the model scores and samples over the whole vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    # Qwen2.5-0.5B's architecture (494M parameters, tied embeddings).
    "0.5b": {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
             "intermediate_size": 4864, "vocab_size": 151936, "tie_word_embeddings": True},
    # Qwen2's vocabulary (151,936 tokens) on a tiny body: the output layer is nearly all of the model.
    "tiny-qwen-vocab": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                        "intermediate_size": 128, "vocab_size": 151936, "tie_word_embeddings": True},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128, "vocab_size": 512, "tie_word_embeddings": True},
}


def build_models(folder: Path, architecture: dict[str, Any]) -> tuple[Path, Path, int]:
    """Random teacher (seed 1) and student (seed 2) folders of one Qwen2 `architecture` (config fields), each
    with the tokenizer; returns their paths and the parameter count of one model."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from brts.models.tokenizer import build_char_tokenizer

    tokenizer = build_char_tokenizer(architecture["vocab_size"])
    config = Qwen2Config(**architecture, max_position_embeddings=4096, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    out, count = [], 0
    for role, seed in (("teacher", 1), ("student", 2)):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
        count = sum(p.numel() for p in model.parameters())
        model.save_pretrained(folder / role)
        tokenizer.save_pretrained(folder / role)
        out.append(folder / role)
        del model
    return out[0], out[1], count
