"""The keyed decode loop: a row depends on its request alone, whatever the batch (the token sampler itself is
tested in test_nucleus.py)."""

from __future__ import annotations

import pytest
import torch

from brts.models.load import load_model
from brts.rollout.base import Request, SamplingSettings
from brts.rollout.keyed import KeyedHFGenerator, row_seed
from brts.tasks.synthetic import SyntheticTask


@pytest.fixture(scope="module")
def teacher(tiny_models):
    return load_model(str(tiny_models.teacher_dir))


def test_a_sample_drawn_alone_equals_the_same_sample_drawn_in_a_batch(teacher):
    model, tok = teacher
    task = SyntheticTask(seed=0)
    problems = task.train_problems()[:6]
    # Hinted prompts are longer: the batch mixes prompt lengths, so rows are left-padded differently.
    prompts = [tok(task.prompt(p))["input_ids"] for p in problems]
    prompts += [tok(task.prompt(p, hint=p.answer))["input_ids"] for p in problems[:3]]
    requests = [Request(tuple(p), row_seed("test", i)) for i, p in enumerate(prompts)]
    settings = SamplingSettings(temperature=1.0, top_p=0.95, max_new_tokens=24)
    gen = KeyedHFGenerator(model, tok)
    batched = gen.sample(requests, settings)
    alone = [gen.sample([r], settings)[0] for r in requests]
    assert batched == alone
    # In another batch, with other neighbours and in another order, the rows are the same again.
    shuffled = gen.sample(requests[::-1][:5], settings)
    assert shuffled == batched[::-1][:5]
    assert len({c.token_ids for c in batched}) > 1  # and the rows are not all alike


def test_seeds_decide_samples_and_finish_reasons_are_right(teacher):
    model, tok = teacher
    prompt = tuple(tok(SyntheticTask(seed=0).prompt(SyntheticTask(seed=0).train_problems()[0]))["input_ids"])
    gen = KeyedHFGenerator(model, tok)
    settings = SamplingSettings(temperature=1.0, top_p=1.0, max_new_tokens=24)
    rows = gen.sample([Request(prompt, s) for s in range(12)], settings)
    assert len({r.token_ids for r in rows}) > 1
    assert gen.sample([Request(prompt, 3)], settings)[0] == rows[3]
    for r in rows:
        if r.finish_reason == "stop":
            assert r.token_ids[-1] == tok.eos_token_id and tok.eos_token_id not in r.token_ids[:-1]
        else:
            assert len(r.token_ids) == 24 and tok.eos_token_id not in r.token_ids
        assert r.text == tok.decode(r.token_ids, skip_special_tokens=True)
    short = gen.sample([Request(prompt, 0)], SamplingSettings(temperature=1.0, max_new_tokens=2))[0]
    assert short.token_ids == rows[0].token_ids[:2] and short.finish_reason in ("length", "stop")


def test_samples_of_one_prompt_share_a_prefill_and_still_equal_their_lone_draws(teacher):
    model, tok = teacher
    task = SyntheticTask(seed=0)
    problems = task.train_problems()[:3]
    prompts = [tuple(tok(task.prompt(p))["input_ids"]) for p in problems]
    prompts.append(tuple(tok(task.prompt(problems[0], hint=problems[0].answer))["input_ids"]))  # a longer one
    # Four samples of each prompt, interleaved, as the teacher's N samples per prompt arrive.
    requests = [Request(p, row_seed("shared", i, j)) for j in range(4) for i, p in enumerate(prompts)]
    settings = SamplingSettings(temperature=1.0, top_p=0.9, max_new_tokens=24)
    gen = KeyedHFGenerator(model, tok)
    batched = gen.sample(requests, settings)
    assert batched == [gen.sample([r], settings)[0] for r in requests]
    assert len({c.token_ids for c in batched[::4]}) > 1
    assert len({len(c.token_ids) for c in batched}) > 2  # rows stop at different steps, beside rows going on
    # A small batch size splits one prompt's samples over batches: nothing changes.
    assert KeyedHFGenerator(model, tok, batch_size=3).sample(requests, settings) == batched


def test_temperature_zero_is_greedy_and_ignores_the_seed(teacher):
    model, tok = teacher
    prompt = tuple(tok(SyntheticTask(seed=0).prompt(SyntheticTask(seed=0).train_problems()[1]))["input_ids"])
    gen = KeyedHFGenerator(model, tok)
    settings = SamplingSettings(temperature=0.0, max_new_tokens=16)
    rows = gen.sample([Request(prompt, s) for s in range(3)], settings)
    assert rows[0] == rows[1] == rows[2]
    ids = torch.tensor([prompt])
    expected = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=16,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)[0, len(prompt):]
    assert rows[0].token_ids == tuple(expected.tolist())[: len(rows[0].token_ids)]
