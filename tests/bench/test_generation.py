"""The tokens/s section's own parts: the 151,936-vocabulary model it builds, its prompts, and what a measurement holds."""

from __future__ import annotations

from brts.bench.generation import QWEN_VOCAB, bench_prompts, measure, qwen_vocab_model
from brts.models.load import load_model


def test_the_qwen_vocabulary_model_is_built_once_and_samples(tmp_path):
    folder = qwen_vocab_model(tmp_path)
    assert qwen_vocab_model(tmp_path) == folder and [p.name for p in tmp_path.iterdir()] == [folder.name]
    model, tok = load_model(str(folder))
    assert model.config.vocab_size == len(tok) == QWEN_VOCAB
    (rate,) = measure("qwen", folder, batches=[2], reps=1, say=lambda _: None, new_tokens=3)
    assert rate.keyed > 0 and rate.generate > 0 and len(rate.ratios) == 1


def test_prompts_use_the_chat_template_when_the_tokenizer_has_one(tiny_models):
    _, tok = load_model(str(tiny_models.teacher_dir))
    plain = bench_prompts(tok, 3)
    assert len(plain) == 3 and plain[0][0] == tok.bos_token_id
    tok.chat_template = "{% for m in messages %}<bos>Q{{ m['content'] }}{% endfor %}"
    templated = bench_prompts(tok, 3)
    assert [len(t) for t in templated] == [len(p) + 1 for p in plain]  # one token more: the template's "Q"
