"""Planning: arms x seeds in arm-major order, and run ids that hash the resolved config and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from brts.runs import plan as plan_module
from brts.runs.plan import PlannedRun, plan, run_id
from brts.spec import MEMORY_ONLY_TRAIN_FIELDS, AnswerFormat, ArmSpec, ExperimentSpec, RunConfig, TaskSpec


def make_spec(**fields: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate({"name": "exp", "arms": ["opd", "brts"], "seeds": [0, 1, 2], **fields})


def base_config() -> RunConfig:
    return plan(make_spec())[0].config


def test_plan_is_arms_times_seeds_arm_major() -> None:
    runs = plan(make_spec())
    assert len(runs) == 6
    assert [(r.arm, r.seed) for r in runs] == [
        ("opd", 0), ("opd", 1), ("opd", 2), ("brts", 0), ("brts", 1), ("brts", 2)]
    assert all(isinstance(r, PlannedRun) and r.experiment == "exp" for r in runs)
    assert all(r.run_id == run_id(r.config) and r.config.seed == r.seed for r in runs)
    assert len({r.run_id for r in runs}) == 6


def test_plan_resolves_each_arm_with_shared_and_own_overrides() -> None:
    spec = make_spec(arms=["opd", {"name": "n8", "preset": "brts", "set": {"teacher_samples": 8}}],
                     method={"aux_weight": 0.2}, seeds=[5], train={"steps": 3})
    opd, n8 = plan(spec)
    assert not opd.config.method.teacher_context and opd.config.method.aux_weight == pytest.approx(0.2)
    assert n8.config.method.teacher_samples == 8 and n8.config.method.teacher_context
    assert n8.config.train.steps == 3 and n8.config.seed == 5 and n8.arm == "n8"


def test_run_id_is_stable_and_hex() -> None:
    first, second = base_config(), base_config()
    assert run_id(first) == run_id(second)
    assert len(run_id(first)) == 12 and int(run_id(first), 16) >= 0
    assert run_id(RunConfig.model_validate(first.model_dump(mode="json"))) == run_id(first)


def test_run_id_ignores_arm_label_and_experiment_name() -> None:
    a = plan(make_spec(name="one", arms=[{"name": "label-a", "preset": "brts"}], seeds=[0]))[0]
    b = plan(make_spec(name="two", arms=[ArmSpec(name="label-b", preset="brts")], seeds=[0]))[0]
    assert (a.arm, a.experiment) != (b.arm, b.experiment)
    assert a.run_id == b.run_id


def test_run_id_differs_across_seeds() -> None:
    ids = [r.run_id for r in plan(make_spec(arms=["brts"], seeds=[0, 1, 2, 3]))]
    assert len(set(ids)) == 4


def bumped(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return (*value, value[0]) if value else ("x",)
    if value is None:
        return 1
    if isinstance(value, dict):
        return {**value, "x": "y"}
    if isinstance(value, list):
        return [*value, "http://replica:8000"]
    if isinstance(value, AnswerFormat):
        return AnswerFormat(kind="last_number" if value.kind == "boxed" else "boxed")
    raise TypeError(value)


SUMS_ONLY = ("max_operand",)  # read by the sums task only; other tasks' run ids leave it out
EVAL_ONLY = {"problems", "k", "seed", "backend", "batch_size", "chat_template", "data_dir", "data_source", "final"}


def every_field_change(config: RunConfig) -> list[tuple[str, RunConfig]]:
    """One changed config per field that training reads (every field but the evaluation-only ones)."""
    changes = [("seed", config.model_copy(update={"seed": config.seed + 1}))]
    changes += [(f"eval.{field}", config.model_copy(update={"eval": config.eval.model_copy(update={field: value})}))
                for field, value in (("temperature", 0.5), ("top_p", 0.5), ("max_new_tokens", 7),
                                     ("tasks", ("brts_synthetic_hard",)))]
    for section in ("task", "models", "train", "rollout", "method"):
        part: BaseModel = getattr(config, section)
        for field in type(part).model_fields:
            if section == "train" and field in MEMORY_ONLY_TRAIN_FIELDS:
                continue
            if section == "task" and field in SUMS_ONLY and config.task.name != "sums":
                continue
            changed = part.model_copy(update={field: bumped(getattr(part, field))})
            changes.append((f"{section}.{field}", config.model_copy(update={section: changed})))
    return changes


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")  # bumped values skip validation
def test_changing_any_field_changes_run_id() -> None:
    config = base_config()
    changes = every_field_change(config)
    assert len(changes) > 40  # every field of every section is covered
    original = run_id(config)
    for where, changed in changes:
        assert run_id(changed) != original, where


def test_the_sums_task_settings_change_the_run_id_of_sums_runs_only() -> None:
    config = base_config()
    sums = config.model_copy(update={"task": TaskSpec(name="sums")})
    for field in SUMS_ONLY:
        assert run_id(config.model_copy(update={"task": config.task.model_copy(update={field: 4})})) == run_id(config)
        assert run_id(sums.model_copy(update={"task": sums.task.model_copy(update={field: 4})})) != run_id(sums)


def test_memory_only_settings_leave_the_run_id_alone() -> None:
    config = base_config()
    for field in MEMORY_ONLY_TRAIN_FIELDS:
        changed = config.model_copy(update={"train": config.train.model_copy(update={field: 7})})
        assert run_id(changed) == run_id(config)
        assert changed.model_dump()["train"][field] == 7  # still in config.yaml, which a resumed rank reads


def test_evaluation_only_settings_leave_the_run_id_alone() -> None:
    config = base_config()
    original = run_id(config)
    bumps = {"problems": 7, "k": 16, "seed": 3, "backend": "hf", "batch_size": 8, "chat_template": "off",
             "data_dir": "/data", "data_source": "hub", "final": False,
             "tasks": (*config.eval.tasks, "brts_aime24", "gsm8k")}
    assert set(bumps) == EVAL_ONLY | {"tasks"}
    assert set(type(config.eval).model_fields) == EVAL_ONLY | {"tasks", "temperature", "top_p", "max_new_tokens"}
    for field, value in bumps.items():
        changed = config.model_copy(update={"eval": config.eval.model_copy(update={field: value})})
        assert run_id(changed) == original, field


def test_run_id_includes_code_version(monkeypatch: pytest.MonkeyPatch) -> None:
    config = base_config()
    original = run_id(config)
    monkeypatch.setattr(plan_module, "RUN_FORMAT", plan_module.RUN_FORMAT + 1)
    assert run_id(config) != original
    monkeypatch.undo()
    monkeypatch.setattr("brts.__version__", "999.0")
    assert run_id(config) != original


def test_run_id_follows_the_shipped_built_in_models(monkeypatch: pytest.MonkeyPatch) -> None:
    builtin = base_config()  # builtin:teacher and builtin:student at the shipped build seed
    local = plan(make_spec(models={"teacher": "/models/t", "student": "/models/s"}))[0].config
    other_seed = plan(make_spec(models={"build_seed": 7}))[0].config
    before = {name: run_id(c) for name, c in (("builtin", builtin), ("local", local), ("other_seed", other_seed))}
    assert run_id(builtin) == before["builtin"]  # stable while nothing changes
    monkeypatch.setattr("brts.models.builtin.shipped_digest", lambda folder=None: "0" * 16)  # re-shipped models
    assert run_id(builtin) != before["builtin"]
    assert run_id(local) == before["local"] and run_id(other_seed) == before["other_seed"]
    monkeypatch.undo()
    assert run_id(builtin) == before["builtin"]
    monkeypatch.setattr("brts.models.recipe.RECIPE_VERSION", "changed")  # another build seed builds from the recipe
    assert run_id(other_seed) != before["other_seed"]
    assert run_id(builtin) == before["builtin"] and run_id(local) == before["local"]
