"""Keyed sampling: inverse-CDF draws on hand-computed cases, and rows that do not depend on their batch."""

from __future__ import annotations

import math

import pytest
import torch

from brts.models import load_model
from brts.rollout.base import Request, SamplingSettings
from brts.rollout.keyed import KeyedHFGenerator, row_seed, sample_from_uniform
from brts.tasks.synthetic import SyntheticTask

PROBS = [0.5, 0.3, 0.2]


def _logits(probs):
    return torch.tensor([[math.log(p) for p in probs]])


@pytest.mark.parametrize(("u", "token"), [(0.0, 0), (0.49, 0), (0.51, 1), (0.79, 1), (0.81, 2), (0.999, 2)])
def test_inverse_cdf_picks_the_token_whose_cumulative_mass_first_exceeds_u(u, token):
    assert sample_from_uniform(_logits(PROBS), torch.tensor([u]), 1.0, 1.0).item() == token


def test_top_p_keeps_the_nucleus_and_renormalises_it():
    # top-p 0.7 keeps {0, 1} (mass before token 1 is 0.5 < 0.7, before token 2 is 0.8): [0.625, 0.375].
    pick = lambda u: sample_from_uniform(_logits(PROBS), torch.tensor([u]), 1.0, 0.7).item()  # noqa: E731
    assert [pick(0.6), pick(0.63), pick(0.99)] == [0, 1, 1]
    # A nucleus smaller than the first token keeps that token alone.
    assert sample_from_uniform(_logits(PROBS), torch.tensor([0.99]), 1.0, 0.1).item() == 0


def test_temperature_sharpens_and_zero_is_greedy():
    # At temperature 0.5 the probabilities go as p^2: [25, 9, 4] / 38 = [0.658, ...], so u = 0.6 falls on
    # token 0, where at temperature 1 it falls on token 1.
    assert sample_from_uniform(_logits(PROBS), torch.tensor([0.6]), 0.5, 1.0).item() == 0
    assert sample_from_uniform(_logits(PROBS), torch.tensor([0.6]), 1.0, 1.0).item() == 1
    assert sample_from_uniform(_logits(PROBS), torch.tensor([0.99]), 0.0, 1.0).item() == 0


def test_draws_follow_the_distribution():
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    picks = sample_from_uniform(_logits(PROBS).expand(len(u), -1), u, 1.0, 1.0)
    freq = torch.bincount(picks, minlength=3).float() / len(u)
    assert torch.allclose(freq, torch.tensor(PROBS), atol=0.015)


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
