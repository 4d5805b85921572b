"""Experiment specs: the typed models a spec's YAML data is validated into (once; the rest of `brts` trusts them).
Reading a spec file into them is `brts.spec.load`; the files themselves (`extends`, `--set`, safe YAML) are
`brts.spec.files`, shared with sweep specs.
"""

# Over 400 lines: one typed model per section a user writes (task, models, train, resources, rollout, pool, arms),
# read together: their cross-field checks name each other.
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from brts.method.config import ARM_PRESETS, MethodConfig, arm_config, preset_conflicts
from brts.spec.catalog import generated_task
from brts.spec.errors import arm_method_error, show
from brts.spec.evaluation import EvalSpec
from brts.spec.task import BOXED, HOLDOUT_SPLIT, TaskSpec
from brts.spec.tracking import TrackingSpec
from brts.values import Int, Real, Seed

# The tiny models the project builds itself (brts.models.recipe), by spec name -> role: the one list of their names.
BUILTIN_MODELS = {"builtin:teacher": "teacher", "builtin:student": "student"}
# The build seed of the built-in models unless a spec sets `models.build_seed` (how it was chosen: docs/LOG.md).
DEFAULT_BUILD_SEED = 1
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
LOCAL_PREFIXES = ("/", "./", "../", "~")
HUB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


# The run store's own folders beside the experiments' (brts.store.store names them from here); its others
# (`.pool`, `.submitit`, `.quarantine`) start with '.', which no name may.
STORE_FOLDERS = ("sweeps", "repro")


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise PydanticCustomError(
            "name", "expected a name of letters, digits, '.', '_' or '-' (used in folder names), got {got}",
            {"got": show(value)})
    if value.casefold() in STORE_FOLDERS:
        raise PydanticCustomError(
            "name", "{got} is a folder the run store keeps for itself; experiment, sweep and arm names may not be "
            "{reserved} (in any case) or start with '.'; choose another name",
            {"got": show(value), "reserved": " or ".join(STORE_FOLDERS)})
    return value


Name = Annotated[str, AfterValidator(_check_name)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelsSpec(_Spec):
    """`builtin:teacher` / `builtin:student` are the tiny models the project builds; else a local folder or HF id."""

    teacher: str = Field("builtin:teacher", min_length=1)
    student: str = Field("builtin:student", min_length=1)
    build_seed: Seed = DEFAULT_BUILD_SEED

    @field_validator("teacher", "student")
    @classmethod
    def _known_builtin(cls, value: str) -> str:
        if value.startswith("builtin:") and value not in BUILTIN_MODELS:
            raise PydanticCustomError(
                "builtin_model", "unknown built-in model {got}; expected {known}",
                {"got": show(value), "known": " or ".join(map(repr, BUILTIN_MODELS))})
        return value

    @model_validator(mode="after")
    def _teacher_named_for_hub_students(self) -> ModelsSpec:
        # A hub student with the built-in teacher can only be a forgotten field (their vocabularies differ).
        hub_student = self.student not in BUILTIN_MODELS and not self.student.startswith(LOCAL_PREFIXES)
        if self.teacher in BUILTIN_MODELS and hub_student and not Path(self.student).expanduser().exists():
            raise PydanticCustomError(
                "teacher_required", "required when models.student is a hub model; name a teacher that shares "
                "the student's tokenizer", {"field": "teacher"})
        return self


class TrainSpec(_Spec):
    steps: Int = Field(100, ge=1)
    prompts_per_step: Int = Field(8, ge=1)
    samples_per_prompt: Int = Field(2, ge=1)
    max_new_tokens: Int = Field(64, ge=1)
    student_temperature: Real = Field(1.0, gt=0)
    lr: Real = Field(1e-3, gt=0)
    weight_decay: Real = Field(0.0, ge=0)
    grad_clip: Real = Field(1.0, gt=0)
    checkpoint_every: Int = Field(25, ge=1)
    validate_every: Int = Field(25, ge=1)
    validation_problems: Int = Field(32, ge=1)
    validation_k: Int = Field(1, ge=1)
    threads: Int = Field(1, ge=1)
    # bf16 autocast for the forwards; weights, gradients and AdamW state stay float32 (master weights).
    compute_dtype: Literal["float32", "bfloat16"] = "float32"
    micro_batch_size: Int | None = Field(None, ge=1, description="sequences per forward/backward; None = all")
    gradient_checkpointing: bool = Field(False, description="recompute layer activations in backward")
    # Memory only (not in run ids): results equal to float rounding whatever the chunk (brts.training.logprobs).
    logprob_chunk: Int = Field(256, ge=1, description="response positions per lm_head/log-softmax chunk of the "
                               "streamed log-probs: bounds their [chunk, vocabulary] tensors")


MEMORY_ONLY_TRAIN_FIELDS = ("logprob_chunk",)


class ResourcesSpec(_Spec):
    """What one run asks of its machine or cluster job. Not part of the run id: it does not change results
    (a run trained in `processes` ranks matches the 1-process run within float tolerance)."""

    gpus: Int = Field(0, ge=0, description="GPUs per run, on one node")
    processes: Int | None = Field(None, ge=1, description="training processes per run; default max(1, gpus)")
    cpus: Int = Field(2, ge=1, description="CPU cores per run")
    memory_gb: Real = Field(16, gt=0)
    time_min: Int = Field(60, ge=1, description="wall-time limit of one job; a preempted or timed-out job "
                                                "is requeued and resumes from its last checkpoint")
    partition: str | None = None
    slurm: dict[str, Any] = Field(default_factory=dict, description="extra sbatch settings, e.g. account, qos")

    @property
    def world_size(self) -> int:
        return self.processes or max(1, self.gpus)

    @field_validator("partition")
    @classmethod
    def _one_line_partition(cls, value: str | None) -> str | None:
        if value is not None:
            _sbatch_value(value, None)
        return value

    @field_validator("slurm")
    @classmethod
    def _sbatch_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        for key, value in settings.items():
            if not isinstance(key, str) or not _SBATCH_KEY_RE.fullmatch(key):
                raise PydanticCustomError(
                    "value_error", "{got} is not an sbatch option name (letters, digits, '-' and '_', as in "
                    "`account` or `mail-user`)", {"got": show(key)})
            if isinstance(value, (dict, list)) or value is None:
                raise PydanticCustomError("value_error", "expected a string, number or true, got {got}",
                                          {"got": show(value), "field": key})
            _sbatch_value(str(value), key)
        return settings


_SBATCH_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _sbatch_value(value: str, key: str | None) -> None:
    """A value that goes into one `#SBATCH` line of the job script: no newline or other control character could
    end that line and put what follows into the script (submitit quotes the rest)."""
    if _LINE_BREAKING.search(value):
        raise PydanticCustomError(
            "value_error", "a Slurm setting cannot hold a newline or other control character (it would end its "
            "#SBATCH line and put the rest into the job script); got {got}",
            {"got": show(value), **({"field": key} if key else {})})


ServerUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", max_length=500)]


class RolloutSpec(_Spec):
    """How samples are generated: `hf` (transformers, the keyed decode loop of brts.rollout.keyed) or `vllm`
    (`pip install -e .[vllm]`; its samples differ from `hf`'s, so the backend is part of the run id)."""

    backend: Literal["hf", "vllm"] = "hf"
    vllm_memory_fraction: Real = Field(0.3, gt=0, le=1, description="GPU memory share of each vLLM engine")
    teacher_server: list[ServerUrl] = Field(
        default_factory=list, max_length=64,
        description="OpenAI-compatible vLLM servers of the teacher (replicas, taken in turn) that draw its samples "
                    "instead of `backend`; the teacher is still loaded here for its scoring forward")


class ProducerSpec(_Spec):
    """A teacher producer ahead of the trainers (brts.runs.producer): one process per teacher draws the teacher
    samples of the steps to come into the pool while the runs train. It changes no result."""

    threads: Int = Field(1, ge=1, description="torch threads of each producer process (the cores it is given)")
    lookahead_steps: Int = Field(4, ge=1, description="how many steps ahead of each run's trainer it draws")
    device: Annotated[str, StringConstraints(pattern=r"^(cpu|cuda(:\d+)?)$")] | None = Field(
        None, description="where its teacher runs: cpu, cuda or cuda:N (default: where the trainers' run); a GPU "
                          "of the trainers' kind, so that its samples have the bits theirs would")


class PoolSpec(_Spec):
    """The shared teacher sample pool (brts.rollout.pool). It changes no result, so it is not in run ids."""

    enabled: bool = Field(True, description="false: every run draws its teacher samples afresh")
    path: str | None = Field(None, description="pool file; default <store>/.pool/teacher-samples.sqlite")
    max_gb: Real = Field(4.0, gt=0, description="size cap; the oldest samples are evicted past it")
    prefill: bool = Field(False, description="draw every teacher sample of the experiment before training")
    producer: ProducerSpec | None = Field(None, description="a teacher producer ahead of the trainers, e.g. "
                                          "{threads: 1, lookahead_steps: 4}; null: none")

    @model_validator(mode="after")
    def _producer_needs_the_pool(self) -> PoolSpec:
        if self.producer is not None and not self.enabled:
            raise PydanticCustomError(
                "pool_producer", "a teacher producer draws into the pool; set pool.enabled: true, or producer: null",
                {"field": "producer"})
        return self


class ArmSpec(_Spec):
    """One arm: a named preset plus MethodConfig overrides. In YAML a bare string `s` means name = preset = s."""

    name: Name
    preset: str
    set: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml_shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data, "preset": data}
        if isinstance(data, dict):
            return data if "preset" in data or "name" not in data else {**data, "preset": data["name"]}
        if isinstance(data, BaseModel):
            return data
        raise PydanticCustomError(
            "arm_type", "expected a preset name or a mapping with name, preset and set, got {got}", {"got": show(data)})

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in ARM_PRESETS:
            raise PydanticCustomError(
                "arm_preset", "unknown arm preset {got}; expected one of: {known}",
                {"got": show(value), "known": ", ".join(ARM_PRESETS)})
        return value


class ReportSpec(_Spec):
    """How `brts report` reads the experiment (not part of any run id)."""

    speed_threshold: Real = Field(50.0, ge=0, le=100, description="learning speed: the first validation step "
                                                                   "at which a split's accuracy (%) reaches this")


def _default(model: type[_Spec]) -> Any:
    return Field(default_factory=model)


class ExperimentSpec(_Spec):
    version: Literal[1] = 1
    name: Name
    description: str = ""
    task: TaskSpec = _default(TaskSpec)
    models: ModelsSpec = _default(ModelsSpec)
    train: TrainSpec = _default(TrainSpec)
    eval: EvalSpec = _default(EvalSpec)
    rollout: RolloutSpec = _default(RolloutSpec)
    pool: PoolSpec = _default(PoolSpec)
    method: dict[str, Any] = Field(default_factory=dict, description="MethodConfig overrides shared by every arm")
    override_presets: bool = Field(False, description="let `method` change fields that an arm's preset sets")
    arms: tuple[ArmSpec, ...] = Field(min_length=1)
    seeds: tuple[Seed, ...] = Field(min_length=1)
    workers: Int = Field(1, ge=1)
    resources: ResourcesSpec = _default(ResourcesSpec)
    report: ReportSpec = _default(ReportSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)  # not in run ids: trackers change no result

    @field_validator("arms")
    @classmethod
    def _unique_arm_names(cls, arms: tuple[ArmSpec, ...]) -> tuple[ArmSpec, ...]:
        names = [arm.name for arm in arms]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise PydanticCustomError(
                    "arm_duplicate", "arm names must be unique; {got} appears at arms[{a}] and arms[{b}]",
                    {"got": show(name), "a": names.index(name), "b": i})
        return arms

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: tuple[int, ...]) -> tuple[int, ...]:
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise PydanticCustomError("seed_duplicate", "seeds must be unique; repeated: {got}",
                                      {"got": ", ".join(map(str, repeated))})
        return seeds

    @model_validator(mode="after")
    def _eval_tasks_fit_the_task(self) -> ExperimentSpec:
        # A generated task's evaluation split (the synthetic splits, brts_sums) evaluates that task only: in a
        # spec of another task it can only be a forgotten field (the default eval.tasks are the synthetic splits).
        foreign = {t: g[0] for t in self.eval.tasks if (g := generated_task(t)) is not None and g[0] != self.task.name}
        if foreign and self.task.name == "math":
            raise PydanticCustomError(
                "eval_task", "{got} evaluate the synthetic task, not the math task; list benchmarks, e.g. "
                "tasks: [brts_aime24, brts_aime25, brts_amc23]", {"got": ", ".join(foreign), "field": "eval.tasks"})
        if foreign:
            owners = " and ".join(sorted(set(foreign.values())))
            raise PydanticCustomError(
                "eval_task", "{got} evaluate the {owners} task, not the {name} task; list the evaluation tasks of "
                "task.name", {"got": ", ".join(foreign), "owners": owners, "name": self.task.name,
                              "field": "eval.tasks"})
        return self

    @model_validator(mode="after")
    def _arms_resolve(self) -> ExperimentSpec:
        for i, arm in enumerate(self.arms):
            try:
                self.method_for(arm)
            except ValidationError as exc:
                path, detail = arm_method_error(exc, i, arm.name, arm.set, self.method)
                raise PydanticCustomError("arm_method", "{path}: {detail}", {"path": path, "detail": detail}) from None
        if not self.override_presets:
            self._shared_keeps_presets()
        return self

    def _shared_keeps_presets(self) -> None:
        """A shared `method` field that would change what an arm's preset sets is refused: the arm would
        silently become another arm (`teacher_samples: 4` turns first_rollout into brts)."""
        for arm in self.arms:
            shared = {k: v for k, v in self.method.items() if k not in arm.set}
            for field, (own, new) in preset_conflicts(arm.preset, shared).items():
                raise PydanticCustomError("arm_method", "{path}: {detail}", {
                    "path": f"method.{field}",
                    "detail": f"{show(new)} would silently change arm {arm.name!r} (its preset {arm.preset!r} "
                              f"sets {field}: {show(own)}); move it into that arm's own `set`, or add "
                              "override_presets: true"})

    def method_for(self, arm: ArmSpec) -> MethodConfig:
        """The arm's effective MethodConfig: its preset, then the shared `method` overrides, then its own `set`."""
        return arm_config(arm.preset, {**self.method, **arm.set})


class RunConfig(_Spec):
    """The fully resolved config of one run, every default filled in; its hash is the run id."""

    task: TaskSpec
    models: ModelsSpec
    train: TrainSpec
    eval: EvalSpec
    rollout: RolloutSpec = _default(RolloutSpec)
    method: MethodConfig
    seed: Seed

    def results_dump(self) -> dict[str, Any]:
        """The config as JSON data without the fields that bound memory but change no result (to float
        rounding): what run ids and sweep identities hash."""
        data = self.model_dump(mode="json")
        for name in MEMORY_ONLY_TRAIN_FIELDS:
            data["train"].pop(name)
        # Task fields at their defaults that a task does not read are left out: run ids from before they existed stay.
        if self.task.answer_format == BOXED:
            data["task"].pop("answer_format")
        if self.task.name != "sums":
            data["task"].pop("max_operand")
        if not data["rollout"]["teacher_server"]:  # absent unless set: run ids of local teachers stay as they were
            data["rollout"].pop("teacher_server")
        return data

    @property
    def validation_splits(self) -> tuple[str, ...]:
        """The task splits training validates on: the math task's `eval_sets`, else the synthetic splits among
        `eval.tasks` (the final evaluation runs every one of `eval.tasks` through lm-eval)."""
        if self.task.name != "math":
            return self.eval.splits
        return (*self.task.eval_sets, *((HOLDOUT_SPLIT,) if self.task.validation_holdout else ()))


def resolved_yaml(obj: BaseModel | dict[str, Any]) -> str:
    """YAML of a model (or plain dict) with keys in field-declaration order, so equal configs dump equal text."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
