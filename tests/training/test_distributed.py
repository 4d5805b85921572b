"""Training under `accelerate launch` with 2 CPU processes (gloo) against the 1-process run of the same batch.

Both layouts draw the same samples (each prompt has its own sampling stream), so selections, rewards and
token counts agree exactly; losses and weights agree to float32 reduction-order noise, and 4 AdamW steps
keep that below TOLERANCE.
"""

from __future__ import annotations

import json

import pytest
import torch

from brts.models.load import load_pair
from brts.runs.plan import plan
from brts.runs.run import execute_run
from brts.spec import load_spec
from brts.tasks.registry import make_task
from brts.training.trainer import Trainer

TOLERANCE = 1e-4  # relative, on losses, entropy, grad norm and every weight
EXACT = ("student/reward", "student/response_tokens", "teacher/tokens_generated", "selection/frac_tier1",
         "selection/frac_tier2", "selection/frac_tier3", "selection/frac_tier0", "selection/tier1_any_correct",
         "selection/leaks_dropped", "val/easy", "val/hard")
CLOSE = ("kl/opd", "kl/aux", "surrogate/opd", "surrogate/aux", "surrogate/total", "grad_norm", "student/entropy")


def _planned(spec_file, *overrides):
    overrides = ("arms=[brts]", "train.prompts_per_step=3", "train.micro_batch_size=4", *overrides)
    return plan(load_spec(str(spec_file), overrides))[0]


def _metrics(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _weights(folder):
    return torch.load(folder / "checkpoints/step_000004/checkpoint.pt", weights_only=False)["model"]


def _assert_same_run(got_dir, want_dir):
    got, want = _metrics(got_dir), _metrics(want_dir)
    assert [m["step"] for m in got] == [m["step"] for m in want] == [0, 1, 2, 3, 4]  # one writer: no duplicates
    for g, w in zip(got, want, strict=True):
        for key in EXACT:
            assert g.get(key) == w.get(key), (g["step"], key)
        for key in CLOSE:
            if w.get(key) is None:
                assert g.get(key) is None
            else:
                assert g[key] == pytest.approx(w[key], rel=TOLERANCE, abs=1e-7), (g["step"], key)
    a, b = _weights(got_dir), _weights(want_dir)
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=TOLERANCE, atol=1e-6), name


@pytest.fixture
def reference(tmp_path, tiny_spec_file):
    """The 1-process run of the tiny config: (planned 1-process run, planned 2-process run, its folder)."""
    one = _planned(tiny_spec_file)
    two = _planned(tiny_spec_file, "resources.processes=2")
    assert two.run_id == one.run_id  # the layout is not part of the run id
    folder = tmp_path / "one"
    folder.mkdir()
    Trainer(one.config, load_pair(one.config), make_task(one.config.task), folder).run()
    return one, two, folder


def test_two_processes_match_one_process(tmp_path, reference):
    _, two, folder = reference
    record = execute_run(two, tmp_path / "store")
    assert record["status"] == "finished", record.get("error")
    _assert_same_run(tmp_path / "store" / two.experiment / two.run_id, folder)


@pytest.mark.slow
def test_run_interrupted_in_one_process_resumes_in_two(tmp_path, reference):
    one, two, folder = reference
    store_dir = tmp_path / "mixed" / two.experiment / two.run_id
    store_dir.mkdir(parents=True)

    def interrupt(step, record):
        if step == 3:  # after the step-2 checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(one.config, load_pair(one.config), make_task(one.config.task), store_dir).run(interrupt)
    assert execute_run(two, tmp_path / "mixed")["status"] == "finished"
    _assert_same_run(store_dir, folder)


def test_a_rank_without_a_prompt_is_refused(tiny_spec_file):
    from brts.training.distributed import Ranks, UnsupportedLayout

    ranks = Ranks()
    ranks.world = 4  # as if launched in 4 processes
    blocks = []
    for rank in range(4):
        ranks.rank = rank
        blocks.append(ranks.block(6))
    assert blocks == [(0, 2), (2, 4), (4, 5), (5, 6)]
    with pytest.raises(UnsupportedLayout, match=r"prompts_per_step is 3 but 4 processes train"):
        ranks.block(3)
