"""The character-level tokenizer of the embedded default models: one token per character."""

from __future__ import annotations

import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
# Everything the synthetic task writes (its step tags are A-H), plus the lowercase alphabet for short words.
CHARACTERS = tuple(string.digits) + tuple("+-*=:{}\\ \n") + tuple("QABCDEFGH") + tuple(string.ascii_lowercase)


def build_char_tokenizer(vocab_size: int | None = None) -> PreTrainedTokenizerFast:
    """A fast tokenizer that maps each character to one id, prepends `<bos>` on encoding, pads on the left.
    With `vocab_size`, filler tokens `<f0>`, `<f1>`, ... (never produced by encoding) fill the vocabulary up to
    that size: a stand-in for a real model's large vocabulary."""
    tokens = list(SPECIAL_TOKENS + CHARACTERS)
    if vocab_size is not None:
        tokens += [f"<f{i}>" for i in range(vocab_size - len(tokens))]
    vocab = {token: i for i, token in enumerate(tokens)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # `[\s\S]` and not `.`: the regex engine's `.` does not match a newline.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
