"""The vLLM backend (only where vllm is installed: `nox -s vllm`; the default session skips this file)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache per engine on CPU
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
pytest.importorskip("vllm")

import dataclasses  # noqa: E402

from brts.models.load import load_model  # noqa: E402
from brts.models.recipe import build_default_models  # noqa: E402
from brts.rollout.base import Request, SamplingSettings  # noqa: E402
from brts.rollout.keyed import row_seed  # noqa: E402
from brts.rollout.vllm import VLLMGenerator  # noqa: E402
from brts.tasks.synthetic import SyntheticTask  # noqa: E402
from tests.conftest import TINY  # noqa: E402

pytestmark = pytest.mark.vllm
SETTINGS = SamplingSettings(n=3, temperature=1.0, top_p=0.95, max_new_tokens=24, seed=5)
GREEDY = SamplingSettings(n=1, temperature=0.0, max_new_tokens=24)


@pytest.fixture(scope="module")
def vllm_models(tmp_path_factory):
    """The tiny models with one head of 32 dimensions: vLLM's CPU attention has no kernel for 16."""
    settings = dataclasses.replace(TINY, heads=1)
    return build_default_models(tmp_path_factory.mktemp("zoo-vllm"), seed=0, progress=False, settings=settings)


@pytest.fixture(scope="module")
def engines(vllm_models):
    tiny_models = vllm_models
    _, tok = load_model(str(tiny_models.teacher_dir))
    teacher = VLLMGenerator(str(tiny_models.teacher_dir), tok, max_model_len=128)
    student = VLLMGenerator(str(tiny_models.student_dir), tok, max_model_len=128, enable_prefix_caching=False)
    return teacher, student, tok


def _prompts(tok, count=4, hinted=False):
    task = SyntheticTask(seed=0)
    return [tok(task.prompt(p, hint=p.answer if hinted else None))["input_ids"] for p in task.train_problems()[:count]]


def test_generate_follows_the_generator_protocol(engines):
    teacher, _, tok = engines
    rows = teacher.generate(_prompts(tok), SETTINGS)
    assert [len(r) for r in rows] == [3, 3, 3, 3]
    assert teacher.generate(_prompts(tok), SETTINGS) == rows  # deterministic from settings.seed
    for c in (c for row in rows for c in row):
        assert c.text == tok.decode(c.token_ids, skip_special_tokens=True)
        if c.finish_reason == "stop":
            assert c.token_ids[-1] == tok.eos_token_id
        else:
            assert len(c.token_ids) == 24
    assert teacher.sampler.startswith("vllm-")


def test_a_row_drawn_alone_equals_the_row_drawn_in_a_batch(engines):
    teacher, _, tok = engines
    prompts = _prompts(tok, 4) + _prompts(tok, 2, hinted=True)
    requests = [Request(tuple(p), row_seed("vllm", i)) for i, p in enumerate(prompts)]
    batched = teacher.sample(requests, SETTINGS)
    assert [teacher.sample([r], SETTINGS)[0] for r in requests] == batched
    assert len({c.token_ids for c in batched}) > 1


def test_load_weights_puts_the_trained_student_into_the_engine(engines, vllm_models):
    tiny_models = vllm_models
    teacher, student, tok = engines
    prompts = _prompts(tok, 4, hinted=True)
    teacher_greedy = teacher.generate(prompts, GREEDY)
    model, _ = load_model(str(tiny_models.student_dir))
    assert student.generate(prompts, GREEDY) != teacher_greedy
    model.load_state_dict(load_model(str(tiny_models.teacher_dir))[0].state_dict())  # "train" it into the teacher
    student.load_weights(model)
    assert student.generate(prompts, GREEDY) == teacher_greedy


def test_a_run_trains_with_vllm_rollouts(tmp_path, vllm_models):
    from brts.models.load import load_pair
    from brts.runs.plan import plan
    from brts.spec import load_spec
    from brts.tasks.registry import make_task
    from brts.training.trainer import Trainer
    from tests.conftest import tiny_spec_text

    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(tiny_spec_text(vllm_models, rollout="{backend: vllm}"))
    planned = next(p for p in plan(load_spec(str(spec_file), ["train.steps=2"])) if p.arm == "brts")
    pair = load_pair(planned.config)
    trainer = Trainer(planned.config, pair, make_task(planned.config.task), tmp_path)
    assert trainer.teacher.generator.sampler.startswith("vllm-")
    log = trainer.run()
    assert [m["step"] for m in log] == [0, 1, 2]
    assert log[-1]["teacher/tokens_generated"] > 0 and log[-1]["surrogate/aux"] is not None


@pytest.fixture(scope="module")
def teacher_server(vllm_models, tmp_path_factory):
    """`python -m vllm.entrypoints.openai.api_server` of the tiny teacher on a free local port."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(vllm_models.teacher_dir),
             "--served-model-name", "teacher", "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
             "--max-model-len", "128", "--enforce-eager", "--seed", "0"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the vLLM server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_a_served_teacher_samples_keyed_rows_as_token_ids(teacher_server, vllm_models):
    from brts.rollout.served import ServedGenerator

    _, tok = load_model(str(vllm_models.teacher_dir))
    served = ServedGenerator([teacher_server], tok)
    assert served.sampler.startswith("served:teacher:vllm-")
    prompts = _prompts(tok, 3)
    requests = [Request(tuple(p), row_seed(5, i, 0)) for i, p in enumerate(prompts)]
    batch = served.sample(requests, SETTINGS)
    assert [c.text for c in served.sample(requests[1:2], SETTINGS)] == [batch[1].text]  # alone = in the batch
    assert served.sample(requests, SETTINGS) == batch  # the same seed, the same sample
    for c in batch:
        assert 0 < len(c.token_ids) <= SETTINGS.max_new_tokens
        assert c.text == tok.decode(list(c.token_ids), skip_special_tokens=True)
        assert (c.finish_reason == "stop") == (c.token_ids[-1] == tok.eos_token_id)
    greedy = served.sample(requests[:1], GREEDY)[0]
    local = VLLMGenerator(str(vllm_models.teacher_dir), tok, max_model_len=128).sample(requests[:1], GREEDY)[0]
    assert greedy.token_ids == local.token_ids  # the server runs the same model


def test_a_run_trains_with_a_served_teacher_and_keeps_its_samples_apart_in_the_pool(tmp_path, teacher_server,
                                                                                      vllm_models):
    from brts.rollout.pool import SamplePool
    from brts.runs.plan import plan
    from brts.spec import load_spec
    from brts.training.trainer import build_trainer
    from tests.conftest import tiny_spec_text

    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(tiny_spec_text(vllm_models, rollout=f"{{teacher_server: [{teacher_server}]}}"))
    spec_file.with_name("local.yaml").write_text(tiny_spec_text(vllm_models))
    planned = next(p for p in plan(load_spec(str(spec_file), ["train.steps=2"])) if p.arm == "brts")
    pool = SamplePool(tmp_path / "pool.sqlite")
    (tmp_path / "run").mkdir()
    (tmp_path / "local").mkdir()
    trainer = build_trainer(planned.config, tmp_path / "run", pool)
    assert trainer.teacher.generator.sampler.startswith("served:")
    log = trainer.run()
    assert [m["step"] for m in log] == [0, 1, 2]
    assert log[-1]["teacher/tokens_generated"] > 0 and log[-1]["surrogate/aux"] is not None
    local = next(p for p in plan(load_spec(str(spec_file.with_name("local.yaml")), ["train.steps=1"])) if p.arm == "brts")
    assert local.config.train == planned.config.train.model_copy(update={"steps": 1})
    step = build_trainer(local.config, tmp_path / "local", pool).step(1)
    assert step["teacher/tokens_from_pool"] == 0 and step["teacher/tokens_generated"] > 0  # nothing served is reused
