from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from brts.models.load import IncompatibleModelsError, ModelLoadError, check_compatible, load_model
from brts.models.tokenizer import BOS, EOS, PAD, build_char_tokenizer


def test_tokenizer_round_trips_and_adds_bos() -> None:
    tokenizer = build_char_tokenizer()
    text = "Q:7+3*2-5 key:5\n7+3=0\n\\boxed{5}"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert len(ids) == len(text) + 1  # one token per character
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert tokenizer.unk_token_id not in ids
    assert 30 <= len(tokenizer) <= 60


def test_tokenizer_pads_left_after_save_and_load(tmp_path: Path) -> None:
    build_char_tokenizer().save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer.padding_side == "left"
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (BOS, EOS, PAD)
    batch = tokenizer(["1+2", "1"], padding=True)["input_ids"]
    assert batch[1][:2] == [tokenizer.pad_token_id] * 2
    assert batch[1][2] == tokenizer.bos_token_id


def _tiny_model(vocab_size: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def test_load_model_from_a_local_folder(tmp_path: Path) -> None:
    tokenizer = build_char_tokenizer()
    torch.manual_seed(0)
    _tiny_model(len(tokenizer)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, loaded = load_model(str(tmp_path))
    assert not model.training
    assert model.config.vocab_size == len(loaded) == len(tokenizer)
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("path", ["/nonexistent/model", "./missing-model", "a/b/c"])
def test_load_model_on_a_missing_folder_names_it_in_one_line(path: str) -> None:
    with pytest.raises(ModelLoadError) as raised:
        load_model(path)
    message = str(raised.value)
    assert "\n" not in message
    assert Path(path).name in message


def test_load_model_on_a_folder_without_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_model(str(tmp_path))


def test_check_compatible_accepts_the_same_tokenizer() -> None:
    tokenizer = build_char_tokenizer()
    check_compatible(tokenizer, build_char_tokenizer(), len(tokenizer), len(tokenizer))


def test_check_compatible_rejects_mismatched_vocab_sizes() -> None:
    tokenizer = build_char_tokenizer()
    with pytest.raises(IncompatibleModelsError) as raised:
        check_compatible(tokenizer, tokenizer, 51, 64)
    assert "51" in str(raised.value) and "64" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_check_compatible_names_the_first_differing_special_token(tmp_path: Path) -> None:
    teacher = build_char_tokenizer()
    student = build_char_tokenizer()
    student.eos_token = PAD  # a student that ends on a different token
    with pytest.raises(IncompatibleModelsError, match="eos_token"):
        check_compatible(teacher, student, len(teacher), len(student))
