"""The training loop on the tiny models: every per-step metric, bitwise resume, non-finite stop."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from brts.models.load import load_pair
from brts.runs.plan import plan
from brts.runs.run import execute_run
from brts.spec import load_spec
from brts.tasks.registry import make_task
from brts.training import trainer as train_mod
from brts.training.step_records import metric_names
from brts.training.trainer import Trainer

SECTION_6 = [
    "kl/opd", "kl/aux", "surrogate/opd", "surrogate/aux", "surrogate/total", "grad_norm", "student/entropy", "student/reward",
    "selection/frac_tier1", "selection/frac_tier2", "selection/frac_tier3", "selection/frac_tier0",
    "selection/tier1_any_correct", "selection/tier2_recovered_of_retries", "selection/alignment_tier1",
    "selection/alignment_tier2", "selection/alignment_tier3", "selection/leaks_dropped",
    "teacher/tokens_generated", "teacher/tokens_from_pool", "time/student_sample", "time/teacher_sample",
    "time/teacher_score", "time/select", "time/update",
]
ARMS = "[opd, first_rollout, brts, brts_no_recovery, brts_no_alignment]"


def _planned(spec_file, *overrides):
    return plan(load_spec(str(spec_file), overrides))


@pytest.mark.parametrize("arm", ["opd", "first_rollout", "brts", "brts_no_recovery", "brts_no_alignment"])
def test_every_arm_logs_every_metric(tmp_path, tiny_spec_file, arm):
    planned = next(p for p in _planned(tiny_spec_file, f"arms={ARMS}", "train.steps=2") if p.arm == arm)
    trainer = Trainer(planned.config, load_pair(planned.config), make_task(planned.config.task), tmp_path)
    log = trainer.run()
    steps = [m for m in log if "surrogate/total" in m]
    assert [m["step"] for m in steps] == [1, 2]
    for key in SECTION_6:
        assert key in steps[-1], key
    assert log[0]["step"] == 0 and "val/hard" in log[0]
    recorded = {k for m in log for k in m} - {"step"}
    assert recorded == set(metric_names(planned.config))
    validation = [json.loads(line) for line in (tmp_path / "validation.jsonl").read_text().splitlines()]
    assert [v["step"] for v in validation] == [0, 2]
    hard = validation[-1]["problems"]["hard"]
    assert len(hard) == 2 and sum(hard.values()) / 2 == log[-1]["val/hard"]
    if arm == "opd":
        assert steps[-1]["surrogate/aux"] is None and steps[-1]["kl/aux"] is None
        assert steps[-1]["teacher/tokens_generated"] == 0
    else:
        fracs = sum(steps[-1][f"selection/frac_tier{t}"] for t in (1, 2, 3, 0))
        assert fracs == pytest.approx(1.0)
        assert steps[-1]["teacher/tokens_generated"] > steps[0]["teacher/tokens_generated"] > 0
        assert steps[-1]["kl/aux"] >= 0
    assert all(m["kl/opd"] >= 0 for m in steps)  # a divergence, unlike the surrogates


def test_resume_after_interrupt_matches_uninterrupted_run_bitwise(tmp_path, tiny_spec_file):
    planned = next(p for p in _planned(tiny_spec_file) if p.arm == "brts")
    straight = tmp_path / "straight"
    straight.mkdir()
    expected = Trainer(planned.config, load_pair(planned.config), make_task(planned.config.task), straight).run()

    resumed = tmp_path / "resumed"
    resumed.mkdir()

    def interrupt(step, record):
        if step == 3:  # after the step-2 checkpoint, before the step-4 one
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(planned.config, load_pair(planned.config), make_task(planned.config.task), resumed).run(interrupt)
    fresh = Trainer(planned.config, load_pair(planned.config), make_task(planned.config.task), resumed)
    got = fresh.run()
    drop_time = lambda log: [{k: v for k, v in m.items() if not k.startswith("time/")} for m in log]  # noqa: E731
    assert drop_time(got) == drop_time(expected)
    per_problem = (straight / "validation.jsonl").read_text()
    assert (resumed / "validation.jsonl").read_text() == per_problem
    assert [json.loads(line)["step"] for line in per_problem.splitlines()] == [0, 2, 4]
    a = torch.load(straight / "checkpoints/step_000004/checkpoint.pt", weights_only=False)["model"]
    b = torch.load(resumed / "checkpoints/step_000004/checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_non_finite_loss_fails_the_run_with_a_clear_line(tmp_path, tiny_spec_file, monkeypatch):
    planned = next(p for p in _planned(tiny_spec_file) if p.arm == "opd")
    monkeypatch.setattr(train_mod, "opd_loss", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    record = execute_run(planned, tmp_path / "store")
    assert record["status"] == "failed"
    assert record["error"].startswith("NonFiniteLossError: non-finite loss at step 1")
    folder = tmp_path / "store" / planned.experiment / planned.run_id
    assert json.loads((folder / "record.json").read_text())["status"] == "failed"
    shutil.rmtree(folder)


def test_positional_alignment_and_truncation_read_the_students_own_samples(tmp_path, tiny_spec_file):
    arm = "arms=[{name: pos, preset: brts, set: {alignment: positional, truncate_to_student_length: true}}]"
    planned = _planned(tiny_spec_file, arm, "train.steps=1")[0]
    log = Trainer(planned.config, load_pair(planned.config), make_task(planned.config.task), tmp_path).run()
    assert log[-1]["surrogate/aux"] is not None and log[-1]["kl/aux"] is not None
    assert sum(log[-1][f"selection/frac_tier{t}"] for t in (1, 2, 3, 0)) == pytest.approx(1.0)


UNUSED = {  # arm -> fields it does not read (MethodConfig.unused_fields), changed from the tiny spec's values
    "opd": {"aux_weight": 5.0, "aux_top_k": 2, "alignment_top_k": 8, "teacher_samples": 3, "alignment": "random",
            "teacher_temperature": 1.3, "recovery": False},
    "brts_no_recovery": {"recovery_samples": 3},
    "brts_no_alignment": {"alignment_top_k": 8},
}


@pytest.mark.parametrize("arm", sorted(UNUSED))
def test_a_field_an_arm_does_not_read_changes_nothing_it_trains(tmp_path, tiny_spec_file, arm):
    # What lets a sweep over several arms share one run of an arm across trials that differ only in such fields.
    changed = UNUSED[arm]
    base = next(p for p in _planned(tiny_spec_file, f"arms={ARMS}", "train.steps=2") if p.arm == arm)
    assert set(changed) <= base.config.method.unused_fields()
    other = base.config.model_copy(update={"method": base.config.method.model_copy(update=changed)})
    assert other.method.unused_fields() >= set(changed) - {"recovery", "alignment"}

    def metrics(config, name):
        folder = tmp_path / name
        folder.mkdir()
        log = Trainer(config, load_pair(config), make_task(config.task), folder).run()
        return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in log]

    first = metrics(base.config, "a")
    assert first == metrics(other, "b")
    assert first[-1]["surrogate/total"] is not None and first[-1]["kl/opd"] is not None
