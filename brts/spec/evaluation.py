"""The `eval` section of an experiment spec: which lm-eval tasks, how many samples, how to sample, which backend.

Fields that the training loop also reads (the synthetic splits it validates on and the sampling settings) are
part of a run's id; the rest (`k`, `problems`, non-synthetic tasks, `backend`, ...) only key the evaluation
cache, so changing them re-evaluates finished runs without retraining them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from brts.spec.catalog import DEFAULT_TASKS, OUR_TASKS, SOURCES, SYNTHETIC_PREFIX, generated_task, is_ours
from brts.values import Int, Real, Seed

LEGACY_SPLITS = ("easy", "medium", "hard")


class EvalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    tasks: tuple[str, ...] = Field(
        DEFAULT_TASKS, min_length=1,
        description="lm-eval task names: brts_* (brts/evaluation/tasks) or any built-in lm-eval task",
    )
    final: bool = Field(True, description="false: no final evaluation; runs still validate on the tasks' synthetic "
                                          "splits (a sweep that chooses on validation never reads the test split)")
    problems: Int | None = Field(None, ge=1, description="problems per task (lm-eval --limit); None = all")
    k: Int = Field(4, ge=1, description="samples per problem (the brts tasks' `repeats`)")
    temperature: Real = Field(0.7, ge=0)
    top_p: Real = Field(0.95, gt=0, le=1)
    max_new_tokens: Int = Field(64, ge=1)
    seed: Seed = Field(0, description="lm-eval --seed (python, numpy, torch and few-shot)")
    backend: Literal["auto", "hf", "vllm"] = Field("auto", description="auto: vllm when installed and a GPU is present")
    batch_size: Int = Field(256, ge=1, description="hf backend: sequences generated together")
    chat_template: Literal["auto", "on", "off"] = Field("auto", description="auto: when the tokenizer has one")
    data_dir: str | None = Field(None, description="folder of <task>.jsonl benchmark files; else $BRTS_DATA_DIR, "
                                                   "else data_source")
    data_source: Literal["package", "hub"] = Field(
        "package", description="benchmark problems without a data folder: the copies packaged with brts, or the "
                               "public sets on the HF hub")

    @model_validator(mode="before")
    @classmethod
    def _legacy_splits(cls, data: Any) -> Any:
        """`splits: [easy, hard]` (the synthetic task's split names) still means those synthetic tasks."""
        if not isinstance(data, dict) or "splits" not in data:
            return data
        if "tasks" in data:
            raise PydanticCustomError(
                "eval_splits", "splits is the old name of tasks; give only tasks (e.g. tasks: "
                "[brts_synthetic_easy, brts_aime24])", {})
        splits = data["splits"]
        if not isinstance(splits, (list, tuple)) or any(s not in LEGACY_SPLITS for s in splits):
            raise PydanticCustomError(
                "eval_splits", "splits takes synthetic split names (easy, medium, hard), got {got}; "
                "list other tasks under tasks", {"got": repr(splits)})
        rest = {k: v for k, v in data.items() if k != "splits"}
        return {**rest, "tasks": [f"{SYNTHETIC_PREFIX}{s}" for s in splits]}

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: tuple[str, ...]) -> tuple[str, ...]:
        for i, task in enumerate(tasks):
            if is_ours(task) and task not in OUR_TASKS:
                raise PydanticCustomError(
                    "eval_task", "unknown brts task {got}; brts ships {known} (names without the brts_ prefix are "
                    "lm-eval's own tasks)", {"got": repr(task), "known": ", ".join(OUR_TASKS)})
            if task in tasks[:i]:
                raise PydanticCustomError("eval_task", "{got} is listed twice", {"got": repr(task)})
        return tasks

    @model_validator(mode="after")
    def _one_data_source(self) -> EvalSpec:
        if self.data_dir is not None and self.data_source == "hub":
            raise PydanticCustomError("eval_data", "data_dir and data_source: hub name two sources of the benchmark "
                                                   "problems; give one", {})
        return self

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits of generated tasks among the tasks (the synthetic splits, `sums`): what the training loop
        validates on."""
        return tuple(g[1] for g in map(generated_task, self.tasks) if g is not None)

    def training_view(self) -> dict[str, Any]:
        """The fields training reads (validation splits and sampling): the part of `eval` in a run's id."""
        return {"splits": list(self.splits), "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens}


def missing_benchmark_file(spec: EvalSpec) -> str | None:
    """What is missing when `eval.data_dir` is set and lacks a benchmark task's file; None if nothing is."""
    if spec.data_dir is None:
        return None
    folder = Path(spec.data_dir).expanduser()
    if not folder.is_dir():
        return f"data folder {spec.data_dir!r} does not exist; give a folder of <task>.jsonl files or leave it unset"
    for task in spec.tasks:
        if is_ours(task) and generated_task(task) is None and not (folder / f"{SOURCES[task].name}.jsonl").is_file():
            return f"{task} needs {SOURCES[task].name}.jsonl in {spec.data_dir!r}, which has no such file"
    return None
