"""The math task's held-out validation slice and the warning for validating on a final benchmark (own files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brts.runs.plan import plan
from brts.spec import SpecError, TaskSpec, load_spec
from brts.tasks.math import TaskDataError
from brts.tasks.registry import make_task


def _jsonl(path: Path, count: int, prefix: str) -> str:
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "problem": f"What is {i} + 1?", "answer": str(i + 1)})
                            + "\n" for i in range(count)))
    return str(path)


def test_validation_holdout_takes_training_problems_out_of_training(tmp_path):
    spec = TaskSpec(name="math", train=_jsonl(tmp_path / "train.jsonl", 50, "t"), validation_holdout=8, seed=3)
    task = make_task(spec)
    train, held = task.train_problems(), task.validation_problems("heldout")
    assert len(train) == 42 and len(held) == 8
    assert not {p.id for p in train} & {p.id for p in held}
    assert {p.id for p in held} == {p.id for p in make_task(spec).validation_problems("heldout")}  # seeded
    other = make_task(spec.model_copy(update={"seed": 4})).validation_problems("heldout")
    assert {p.id for p in other} != {p.id for p in held}
    with pytest.raises(TaskDataError, match="validation_holdout"):
        make_task(spec.model_copy(update={"validation_holdout": 50})).train_problems()


def test_validation_on_a_final_benchmark_warns_and_holdout_validates_on_training_problems(tmp_path):
    from brts.spec import spec_warnings

    train = _jsonl(tmp_path / "train.jsonl", 50, "t")
    aime = _jsonl(tmp_path / "aime24.jsonl", 5, "a")
    base = (f"name: m\ntask: {{name: math, train: {train}, eval_sets: {{mine: {aime}}}}}\narms: [opd]\nseeds: [0]\n"
            "eval: {tasks: [brts_aime24]}\n")
    (tmp_path / "m.yaml").write_text(base)
    warnings = spec_warnings(load_spec(str(tmp_path / "m.yaml")))
    assert len(warnings) == 1 and "task.eval_sets.mine" in warnings[0] and "brts_aime24" in warnings[0]
    assert "validation_holdout" in warnings[0]
    (tmp_path / "h.yaml").write_text(f"name: h\ntask: {{name: math, train: {train}, validation_holdout: 10}}\n"
                                     "arms: [opd]\nseeds: [0]\neval: {tasks: [brts_aime24]}\n")
    spec = load_spec(str(tmp_path / "h.yaml"))
    assert spec_warnings(spec) == [] and plan(spec)[0].config.validation_splits == ("heldout",)
    (tmp_path / "bad.yaml").write_text(f"name: b\ntask: {{name: math, train: {train}, validation_holdout: 3, "
                                       f"eval_sets: {{heldout: {aime}}}}}\narms: [opd]\nseeds: [0]\n"
                                       "eval: {tasks: [brts_aime24]}\n")
    with pytest.raises(SpecError, match="eval_sets.heldout"):
        load_spec(str(tmp_path / "bad.yaml"))
