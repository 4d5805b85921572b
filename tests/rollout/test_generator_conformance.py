"""The conformance suite every generation backend passes: the transformers `generate` backend, the keyed
transformers loop and vLLM (where vllm is installed: `nox -s vllm`). A new backend joins by adding a member.

The `Generator` part (every member): rows shaped as asked, reproducible from the seed, different across seeds,
completions that keep the token/text/finish-reason contract, greedy decoding independent of the seed, and the
caller's random state untouched. The `KeyedGenerator` part (members with `sample`): a row is a function of its
request alone (drawn alone or in any batch), its seed decides it, and `sampler` names the algorithm.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import pytest
import torch

from brts.models.load import load_model
from brts.models.recipe import build_default_models
from brts.rollout.base import Completion, Request, SamplingSettings
from brts.rollout.keyed import row_seed
from brts.tasks.synthetic import SyntheticTask
from tests.conftest import TINY

SETTINGS = SamplingSettings(n=3, temperature=1.0, top_p=0.95, max_new_tokens=24, seed=5)
GREEDY = SamplingSettings(n=1, temperature=0.0, max_new_tokens=24)


def _hf(folder: str, keyed: bool) -> tuple[object, object]:
    from brts.rollout.hf import HFGenerator
    from brts.rollout.keyed import KeyedHFGenerator

    model, tok = load_model(folder)
    return (KeyedHFGenerator if keyed else HFGenerator)(model, tok), tok


def _vllm(folder: str) -> tuple[object, object]:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache per engine on CPU
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    pytest.importorskip("vllm")
    from brts.rollout.vllm import VLLMGenerator

    _, tok = load_model(folder)
    return VLLMGenerator(folder, tok, max_model_len=128), tok


# name -> (needs one 32-dimension attention head (vLLM's CPU kernels have none for 16), factory)
MEMBERS: dict[str, tuple[bool, Callable[[str], tuple[object, object]]]] = {
    "hf_generate": (False, lambda folder: _hf(folder, keyed=False)),
    "hf_keyed": (False, lambda folder: _hf(folder, keyed=True)),
    "vllm": (True, _vllm),
}


@pytest.fixture(scope="module")
def one_head_models(tmp_path_factory):
    return build_default_models(tmp_path_factory.mktemp("zoo-1head"), seed=0, progress=False,
                                settings=dataclasses.replace(TINY, heads=1))


@pytest.fixture(scope="module", params=sorted(MEMBERS))
def backend(request, tiny_models):
    one_head, factory = MEMBERS[request.param]
    models = request.getfixturevalue("one_head_models") if one_head else tiny_models
    return factory(str(models.teacher_dir))


def _prompts(tok, count: int = 4, hinted: int = 0) -> list[list[int]]:
    task = SyntheticTask(seed=0)
    problems = task.train_problems()
    plain = [tok(task.prompt(p))["input_ids"] for p in problems[:count]]
    return plain + [tok(task.prompt(p, hint=p.answer))["input_ids"] for p in problems[:hinted]]  # longer prompts


def _keeps_the_contract(c: Completion, tok, max_new_tokens: int) -> None:
    eos = tok.eos_token_id
    if c.finish_reason == "stop":
        assert c.token_ids and c.token_ids[-1] == eos and eos not in c.token_ids[:-1]
    else:
        assert c.finish_reason == "length" and len(c.token_ids) == max_new_tokens and eos not in c.token_ids
    assert c.text == tok.decode(c.token_ids, skip_special_tokens=True)


# --- the Generator protocol ---


def test_generate_gives_n_completions_per_prompt_that_keep_the_contract(backend):
    gen, tok = backend
    rows = gen.generate(_prompts(tok, 4, hinted=2), SETTINGS)
    assert [len(r) for r in rows] == [3] * 6
    for c in (c for row in rows for c in row):
        _keeps_the_contract(c, tok, SETTINGS.max_new_tokens)
    short = gen.generate(_prompts(tok, 2), dataclasses.replace(SETTINGS, max_new_tokens=2))
    assert all(len(c.token_ids) <= 2 for row in short for c in row)


def test_generate_is_reproducible_from_the_seed_and_varies_with_it(backend):
    gen, tok = backend
    prompts = _prompts(tok, 4)
    first = gen.generate(prompts, SETTINGS)
    assert gen.generate(prompts, SETTINGS) == first
    other = gen.generate(prompts, dataclasses.replace(SETTINGS, seed=6))
    assert other != first
    assert len({c.token_ids for row in first for c in row}) > 1  # the samples are not all alike


def test_greedy_decoding_does_not_depend_on_the_seed(backend):
    gen, tok = backend
    prompts = _prompts(tok, 3)
    rows = gen.generate(prompts, GREEDY)
    assert gen.generate(prompts, dataclasses.replace(GREEDY, seed=123)) == rows


def test_the_callers_random_state_is_untouched(backend):
    gen, tok = backend
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    gen.generate(_prompts(tok, 2), SETTINGS)
    assert torch.equal(torch.rand(3), expected)


# --- the KeyedGenerator protocol ---


def _keyed(backend):
    gen, tok = backend
    if not hasattr(gen, "sample"):
        pytest.skip(f"{type(gen).__name__} is not a KeyedGenerator")
    return gen, tok


def test_a_row_drawn_alone_equals_the_row_drawn_in_any_batch(backend):
    gen, tok = _keyed(backend)
    prompts = _prompts(tok, 4, hinted=2)  # mixed lengths: rows are padded differently in a batch
    requests = [Request(tuple(p), row_seed("conformance", i)) for i, p in enumerate(prompts)]
    batched = gen.sample(requests, SETTINGS)
    assert [gen.sample([r], SETTINGS)[0] for r in requests] == batched
    assert gen.sample(requests[::-1][:4], SETTINGS) == batched[::-1][:4]  # other neighbours, other order
    for c in batched:
        _keeps_the_contract(c, tok, SETTINGS.max_new_tokens)


def test_a_rows_seed_decides_it_and_the_sampler_is_named(backend):
    gen, tok = _keyed(backend)
    prompt = tuple(_prompts(tok, 1)[0])
    rows = gen.sample([Request(prompt, s) for s in range(8)], SETTINGS)
    assert len({c.token_ids for c in rows}) > 1
    assert gen.sample([Request(prompt, 3)], SETTINGS)[0] == rows[3]
    assert isinstance(gen.sampler, str) and gen.sampler
    # `generate` keys sample j of prompt i by (seed, i, j): the same rows as `sample` with those keys.
    grid = gen.generate([prompt], SETTINGS)[0]
    assert grid == gen.sample([Request(prompt, row_seed(SETTINGS.seed, 0, j)) for j in range(3)], SETTINGS)
