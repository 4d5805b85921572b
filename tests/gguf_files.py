"""A tiny llama GGUF file written with the `gguf` package: random weights, a byte-level BPE tokenizer with
ChatML special tokens and chat template (SmolLM2's layout: BOS `<|im_start|>`, EOS = pad = `<|im_end|>`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def _byte_symbols() -> dict[int, str]:
    """GPT-2's byte-to-unicode table (byte-level BPE writes a space as 'Ġ', a newline as 'Ċ')."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = dict(zip(kept, map(chr, kept), strict=True)), 0
    for byte in range(256):
        if byte not in symbols:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return symbols


def write_tiny_gguf(path: Path, layers: int = 3, hidden: int = 16, seed: int = 0) -> Path:
    """Write a llama GGUF with `layers` decoder layers (float32 tensors, tied embeddings) to `path`."""
    import gguf

    table = _byte_symbols()
    tokens = [*SPECIALS, *(table[b] for b in range(256)), "Ġ=", "Ġ+"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(512)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(2 * hidden)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(hidden // 2)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(SPECIALS) + [1] * (len(tokens) - len(SPECIALS)))
    writer.add_token_merges(["Ġ =", "Ġ +"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_chat_template(CHAT_TEMPLATE)
    rng = np.random.default_rng(seed)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    tensor("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", hidden)
        tensor(f"blk.{i}.ffn_norm.weight", hidden)
        for name in ("q", "k", "v", "output"):
            tensor(f"blk.{i}.attn_{name}.weight", hidden, hidden)
        tensor(f"blk.{i}.ffn_gate.weight", 2 * hidden, hidden)
        tensor(f"blk.{i}.ffn_up.weight", 2 * hidden, hidden)
        tensor(f"blk.{i}.ffn_down.weight", hidden, 2 * hidden)
    tensor("output_norm.weight", hidden)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
