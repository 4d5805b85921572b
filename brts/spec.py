"""Experiment specs: typed models, YAML loading with `extends` and `--set`, and one-line user errors.

A spec is plain YAML data validated once here; the rest of `brts` trusts the models it gets back.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

import brts
from brts.evaluation.spec import EvalSpec
from brts.method.config import ARM_PRESETS, MethodConfig, arm_config

BUILTIN_MODELS = ("builtin:teacher", "builtin:student")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_LOCAL_PREFIXES = ("/", "./", "../", "~")


class SpecError(Exception):
    """A mistake in a spec the user can fix; the message is one line naming the file, the field and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise PydanticCustomError(
            "name", "expected a name of letters, digits, '.', '_' or '-' (used in folder names), got {got}",
            {"got": _show(value)})
    return value


Name = Annotated[str, AfterValidator(_check_name)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DatasetSpec(_Spec):
    """A set of problems: a JSONL file (one object a line) or a Hugging Face dataset id. A bare string is `path`."""

    path: str = Field(min_length=1)
    split: str = Field("train", description="HF dataset split (ignored for JSONL)")
    subset: str | None = Field(None, description="HF dataset config name")
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str = Field("id", description="row id field; the row index where a row has none")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"path": data} if isinstance(data, str) else data


class TaskSpec(_Spec):
    """`synthetic` (the embedded default) or `math`: prompts from `train`, benchmarks from `eval_sets`."""

    name: Literal["synthetic", "math"] = "synthetic"
    seed: int = 0
    train: DatasetSpec | None = Field(None, description="math: training prompts")
    eval_sets: dict[str, DatasetSpec] = Field(default_factory=dict, description="math: split name -> problems")
    prompt_suffix: str = Field("", description="math: appended to every problem, after one space")
    chat_template: bool = Field(True, description="math: wrap the prompt in the tokenizer's chat template")

    @model_validator(mode="after")
    def _fields_fit_the_task(self) -> TaskSpec:
        if self.name == "math" and self.train is None:
            raise PydanticCustomError("task_train", "the math task needs training prompts: a JSONL path or an HF "
                                      "dataset id", {"field": "train"})
        if self.name == "synthetic" and (self.train is not None or self.eval_sets):
            raise PydanticCustomError("task_train", "train and eval_sets are for the math task; remove them or "
                                      "set task.name: math", {"field": "train"})
        return self


class ModelsSpec(_Spec):
    """`builtin:teacher` / `builtin:student` are the tiny models the project builds; else a local folder or HF id."""

    teacher: str = Field("builtin:teacher", min_length=1)
    student: str = Field("builtin:student", min_length=1)
    build_seed: int = 0

    @field_validator("teacher", "student")
    @classmethod
    def _known_builtin(cls, value: str) -> str:
        if value.startswith("builtin:") and value not in BUILTIN_MODELS:
            raise PydanticCustomError(
                "builtin_model", "unknown built-in model {got}; expected 'builtin:teacher' or 'builtin:student'",
                {"got": _show(value)})
        return value

    @model_validator(mode="after")
    def _teacher_named_for_hub_students(self) -> ModelsSpec:
        # A hub student with the built-in teacher can only be a forgotten field (their vocabularies differ).
        hub_student = self.student not in BUILTIN_MODELS and not self.student.startswith(_LOCAL_PREFIXES)
        if self.teacher in BUILTIN_MODELS and hub_student and not Path(self.student).expanduser().exists():
            raise PydanticCustomError(
                "teacher_required", "required when models.student is a hub model; name a teacher that shares "
                "the student's tokenizer", {"field": "teacher"})
        return self


class TrainSpec(_Spec):
    steps: int = Field(100, ge=1)
    prompts_per_step: int = Field(8, ge=1)
    samples_per_prompt: int = Field(2, ge=1)
    max_new_tokens: int = Field(64, ge=1)
    student_temperature: float = Field(1.0, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(25, ge=1)
    validate_every: int = Field(25, ge=1)
    validation_problems: int = Field(32, ge=1)
    validation_k: int = Field(1, ge=1)
    threads: int = Field(1, ge=1)
    # bf16 autocast for the forwards; weights, gradients and AdamW state stay float32 (master weights).
    compute_dtype: Literal["float32", "bfloat16"] = "float32"
    micro_batch_size: int | None = Field(None, ge=1, description="sequences per forward/backward; None = all")
    gradient_checkpointing: bool = Field(False, description="recompute layer activations in backward")


class ResourcesSpec(_Spec):
    """What one run asks of its machine or cluster job. Not part of the run id: it does not change results
    (a run trained in `processes` ranks matches the 1-process run within float tolerance)."""

    gpus: int = Field(0, ge=0, description="GPUs per run, on one node")
    processes: int | None = Field(None, ge=1, description="training processes per run; default max(1, gpus)")
    cpus: int = Field(2, ge=1, description="CPU cores per run")
    memory_gb: float = Field(16, gt=0)
    time_min: int = Field(60, ge=1, description="wall-time limit of one job; a preempted or timed-out job "
                                                "is requeued and resumes from its last checkpoint")
    partition: str | None = None
    slurm: dict[str, Any] = Field(default_factory=dict, description="extra sbatch settings, e.g. account, qos")

    @property
    def world_size(self) -> int:
        return self.processes or max(1, self.gpus)


class RolloutSpec(_Spec):
    """How samples are generated: `hf` (transformers, the keyed decode loop of brts.rollout.keyed) or `vllm`
    (`pip install -e .[vllm]`; its samples differ from `hf`'s, so the backend is part of the run id)."""

    backend: Literal["hf", "vllm"] = "hf"
    vllm_memory_fraction: float = Field(0.3, gt=0, le=1, description="GPU memory share of each vLLM engine")


class PoolSpec(_Spec):
    """The shared teacher sample pool (brts.rollout.pool). It changes no result, so it is not in run ids."""

    enabled: bool = Field(True, description="false: every run draws its teacher samples afresh")
    path: str | None = Field(None, description="pool file; default <store>/.pool/teacher-samples.sqlite")
    max_gb: float = Field(4.0, gt=0, description="size cap; the oldest samples are evicted past it")
    prefill: bool = Field(False, description="draw every teacher sample of the experiment before training")


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
            "arm_type", "expected a preset name or a mapping with name, preset and set, got {got}", {"got": _show(data)})

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str) -> str:
        if value not in ARM_PRESETS:
            raise PydanticCustomError(
                "arm_preset", "unknown arm preset {got}; expected one of: {known}",
                {"got": _show(value), "known": ", ".join(ARM_PRESETS)})
        return value


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
    arms: tuple[ArmSpec, ...] = Field(min_length=1)
    seeds: tuple[int, ...] = Field(min_length=1)
    workers: int = Field(1, ge=1)
    resources: ResourcesSpec = _default(ResourcesSpec)

    @field_validator("arms")
    @classmethod
    def _unique_arm_names(cls, arms: tuple[ArmSpec, ...]) -> tuple[ArmSpec, ...]:
        names = [arm.name for arm in arms]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise PydanticCustomError(
                    "arm_duplicate", "arm names must be unique; {got} appears at arms[{a}] and arms[{b}]",
                    {"got": _show(name), "a": names.index(name), "b": i})
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
    def _eval_splits_exist(self) -> ExperimentSpec:
        if self.task.name == "math":
            missing = [s for s in self.eval.splits if s not in self.task.eval_sets]
            if missing:
                raise PydanticCustomError(
                    "eval_split", "{got} not in task.eval_sets (has: {known}); add it there",
                    {"got": ", ".join(missing), "known": ", ".join(self.task.eval_sets) or "none",
                     "field": "eval.splits"})
        return self

    @model_validator(mode="after")
    def _arms_resolve(self) -> ExperimentSpec:
        for i, arm in enumerate(self.arms):
            try:
                self.method_for(arm)
            except ValidationError as exc:
                path, detail = _arm_method_error(exc, i, arm, self.method)
                raise PydanticCustomError("arm_method", "{path}: {detail}", {"path": path, "detail": detail}) from None
        return self

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
    seed: int


def resolved_yaml(obj: BaseModel | dict[str, Any]) -> str:
    """YAML of a model (or plain dict) with keys in field-declaration order, so equal configs dump equal text."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def default_search_dirs() -> list[Path]:
    """`$BRTS_EXPERIMENTS` (os.pathsep-separated), `./experiments`, then the repository's `experiments/`."""
    dirs = [Path(p).expanduser() for p in os.environ.get("BRTS_EXPERIMENTS", "").split(os.pathsep) if p]
    dirs += [Path("experiments"), Path(brts.__file__).resolve().parent.parent / "experiments"]
    unique: list[Path] = []
    for d in dirs:
        if all(d.resolve() != u.resolve() for u in unique):
            unique.append(d)
    return unique


def list_specs(search_dirs: Sequence[Path] | None = None) -> list[tuple[str, Path]]:
    """(name, path) of every `<dir>/<name>.yaml`, sorted by name; an earlier dir shadows a later one."""
    found: dict[str, Path] = {}
    for d in default_search_dirs() if search_dirs is None else search_dirs:
        if Path(d).is_dir():
            for path in sorted(Path(d).glob("*.yaml")):
                found.setdefault(path.stem, path)
    return sorted(found.items())


def load_spec(name_or_path: str | Path, overrides: Sequence[str] = (),
              search_dirs: Sequence[Path] | None = None) -> ExperimentSpec:
    """Load, merge (`extends`), override (`--set dotted.key=value`) and validate a spec; raises SpecError.

    A name (no `/`, no `.yaml`) is looked up as `<dir>/<name>.yaml` in the search dirs. `name` defaults to the
    leaf file's stem (a parent's name is not inherited). Reads files only; writes nothing.
    """
    dirs = [Path(d) for d in (default_search_dirs() if search_dirs is None else search_dirs)]
    leaf = _locate(str(name_or_path), dirs)
    layers = _load_chain(leaf, dirs, ())
    merged: dict[str, Any] = {}
    for _, data in layers:
        merged = _deep_merge(merged, data)
    if "name" not in layers[-1][1]:
        merged["name"] = leaf.stem
    leaf_label = _display(leaf)
    for item in overrides:
        keys, value = _parse_override(item, leaf_label)
        _set_path(merged, keys, value, item, leaf_label)
        nested: Any = value
        for key in reversed(keys):
            nested = {key: nested}
        layers.append((f"{leaf_label} with --set {item}", nested))

    try:
        spec = ExperimentSpec.model_validate(merged)
    except ValidationError as exc:
        raise SpecError(_validation_message(exc, layers)) from None
    _check_local_models(spec, layers)
    _check_data_dir(spec, layers)
    return spec


def _is_name(ref: str) -> bool:
    return "/" not in ref and os.sep not in ref and not ref.endswith((".yaml", ".yml")) and not ref.startswith("~")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _dirs_text(dirs: Sequence[Path]) -> str:
    return ", ".join(_display(d) for d in dirs) or "(no search dirs)"


def _available(dirs: Sequence[Path]) -> str:
    return ", ".join(name for name, _ in list_specs(dirs)) or "none"


def _locate(ref: str, dirs: Sequence[Path]) -> Path:
    if _is_name(ref):
        for d in dirs:
            if (d / f"{ref}.yaml").is_file():
                return d / f"{ref}.yaml"
        raise SpecError(f"{ref}.yaml: no experiment spec named {ref!r} in {_dirs_text(dirs)}; "
                        f"available: {_available(dirs)}")
    path = Path(ref).expanduser()
    if not path.exists():
        raise SpecError(f"{_display(path)}: file not found; give an existing spec file or a spec name")
    if not path.is_file():
        raise SpecError(f"{_display(path)}: is not a file; give a spec .yaml file or a spec name")
    return path


def _load_chain(path: Path, dirs: Sequence[Path], stack: tuple[Path, ...]) -> list[tuple[str, dict[str, Any]]]:
    """[(label, data)] from the root ancestor down to `path`, each with `extends` removed."""
    label = _display(path)
    resolved = path.resolve()
    if resolved in stack:
        cycle = " -> ".join(_display(p) for p in (*stack[stack.index(resolved):], resolved))
        raise SpecError(f"{_display(stack[-1])}: extends: cycle {cycle}; remove one of the `extends`")
    data = _read_mapping(path, label)
    parent_ref = data.pop("extends", None)
    if parent_ref is None:
        return [(label, data)]
    if not isinstance(parent_ref, str) or not parent_ref.strip():
        raise SpecError(f"{label}: extends: expected a spec name or a path to a .yaml file, got {_show(parent_ref)}")
    parent = _resolve_extends(parent_ref.strip(), path, dirs, label)
    return [*_load_chain(parent, dirs, (*stack, resolved)), (label, data)]


def _resolve_extends(ref: str, child: Path, dirs: Sequence[Path], label: str) -> Path:
    if _is_name(ref):
        # A sibling file first, so a spec and its base can live in any folder together.
        for d in (child.parent, *dirs):
            if (d / f"{ref}.yaml").is_file():
                return d / f"{ref}.yaml"
        raise SpecError(f"{label}: extends: no spec named {ref!r} next to the file or in {_dirs_text(dirs)}; "
                        f"available: {_available([child.parent, *dirs])}")
    path = Path(ref).expanduser()
    path = path if path.is_absolute() else child.parent / path
    if not path.is_file():
        raise SpecError(f"{label}: extends: file {ref!r} not found (looked at {_display(path)})")
    return path


class _Loader(yaml.SafeLoader):
    """Safe YAML that also rejects duplicate keys, which PyYAML would silently overwrite."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable keys: SafeLoader reports them itself
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml(text: str, label: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_message(exc, label)) from None


def _yaml_message(exc: yaml.YAMLError, label: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
    tag = re.search(r"constructor for the tag '([^']*)'", problem)
    if tag:
        name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        if "python/" in name:
            return (f"{label}: {where}YAML tag {name!r} asks to build Python objects, which specs do not allow; "
                    "write plain data (mappings, lists, strings, numbers)")
        return f"{label}: {where}unknown YAML tag {name!r}; write plain data (mappings, lists, strings, numbers)"
    return f"{label}: {where}malformed YAML: {problem}"


def _read_mapping(path: Path, label: str) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{label}: cannot read the file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{label}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "save the file as UTF-8") from None
    data = _parse_yaml(text, label)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else _show(data)
        raise SpecError(f"{label}: expected a mapping of spec fields (name, arms, seeds, ...) at the top level, "
                        f"got {got}")
    return dict(data)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`: mappings merge recursively, lists and scalars replace."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _parse_override(item: str, label: str) -> tuple[list[str], Any]:
    key, eq, raw = item.partition("=")
    keys = key.strip().split(".")
    if not eq or not all(k.strip() for k in keys):
        raise SpecError(f"{label}: --set {item!r}: expected dotted.key=value, e.g. train.steps=10")
    return [k.strip() for k in keys], _parse_yaml(raw, f"{label}: --set {item}")


def _set_path(data: dict[str, Any], keys: list[str], value: Any, item: str, label: str) -> None:
    node = data
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise SpecError(f"{label}: --set {item}: {'.'.join(keys[: i + 1])} is not a mapping (it is "
                            f"{_show(child)}); --set sets dotted paths through mappings only")
        node = child
    node[keys[-1]] = value


def _check_local_models(spec: ExperimentSpec, layers: list[tuple[str, Any]]) -> None:
    for role in ("teacher", "student"):
        value: str = getattr(spec.models, role)
        if value.startswith(_LOCAL_PREFIXES) and not Path(value).expanduser().exists():
            raise SpecError(f"{_source(layers, ('models', role))}: models.{role}: local model folder {value!r} "
                            f"does not exist; give an existing folder, 'builtin:{role}', or an HF model id")


def _check_data_dir(spec: ExperimentSpec, layers: list[tuple[str, Any]]) -> None:
    from brts.evaluation.data import missing_benchmark_file

    problem = missing_benchmark_file(spec.eval)
    if problem is not None:
        raise SpecError(f"{_source(layers, ('eval', 'data_dir'))}: eval.data_dir: {problem}")


# ---------------------------------------------------------------------------------------------------------------
# Turning pydantic errors into one line


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    text = " ".join(text.split("\n"))
    return text if len(text) <= 80 else text[:77] + "..."


def _loc_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _path_keys(path: str) -> tuple[str, ...]:
    """The mapping keys of a dotted path up to its first list index: `arms[2].set.x` -> ('arms',)."""
    return tuple(path.split("[", 1)[0].split("."))


def _source(layers: list[tuple[str, Any]], keys: tuple[str, ...]) -> str:
    """The label of the last layer (file or --set) that wrote `keys`, else the leaf file."""
    labels: list[str] = [label for label, _ in layers]
    for index in reversed(range(len(layers))):
        node: Any = layers[index][1]
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return labels[index]
    return next(label for label in reversed(labels) if " with --set " not in label)


def _unwrap(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    if get_origin(tp) is Annotated:
        return get_args(tp)[0]
    return tp


def _annotation_at(model: Any, loc: Sequence[int | str]) -> Any:
    tp = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            if get_origin(tp) not in (tuple, list) or not get_args(tp):
                return None
            tp = get_args(tp)[0]
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return None
    return _unwrap(tp)


def _kind(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, "a value")


_TYPE_DETAILS = {
    ("int_type", "int_parsing", "int_from_float"): "expected an integer",
    ("float_type", "float_parsing", "finite_number"): "expected a finite number",
    ("bool_type", "bool_parsing"): "expected true or false",
    ("string_type",): "expected a string",
    ("dict_type", "model_type", "model_attributes_type"): "expected a mapping",
    ("tuple_type", "list_type"): "expected a list",
    ("string_too_short",): "expected a non-empty string",
}
_OWN_MESSAGES = {"value_error", "assertion_error", "name", "builtin_model", "arm_type", "arm_preset",
                 "arm_duplicate", "seed_duplicate", "eval_task", "eval_splits", "task_train", "teacher_required",
                 "eval_split"}
_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


def _error_detail(err: Any, model: Any) -> tuple[str, str]:
    """(dotted path, what is expected and what was given) for one pydantic error."""
    kind, loc, ctx = err["type"], err["loc"], err.get("ctx") or {}
    if kind == "arm_method":
        return ctx["path"], ctx["detail"]
    path, got = _loc_path(loc), _show(err.get("input"))
    if "field" in ctx:  # a model-level check that names the field it is about
        return ".".join(p for p in (path, ctx["field"]) if p), err["msg"]
    if kind == "missing":
        return path, "required field is missing"
    if kind == "extra_forbidden":
        parent = _annotation_at(model, loc[:-1])
        fields = list(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "expected one of: " + ", ".join(fields)
        return path, f"unknown field; {hint}"
    if kind in _BOUNDS:
        bound, op = _BOUNDS[kind]
        return path, f"expected {_kind(_annotation_at(model, loc))} {op} {ctx[bound]}, got {got}"
    if kind == "too_short":
        return path, f"expected a non-empty list, got {got}"
    if kind == "literal_error":
        return path, f"expected {ctx['expected']}, got {got}"
    for kinds, detail in _TYPE_DETAILS.items():
        if kind in kinds:
            return path, f"{detail}, got {got}"
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in _OWN_MESSAGES:  # already says what was given
        return path, msg
    return path, f"{msg[:1].lower()}{msg[1:]}, got {got}"


def _arm_method_error(exc: ValidationError, index: int, arm: ArmSpec, shared: dict[str, Any]) -> tuple[str, str]:
    """Where in the spec a bad effective MethodConfig comes from: the arm's `set`, the shared `method`, or its preset."""
    err = exc.errors()[0]
    field, detail = _error_detail(err, MethodConfig)
    if not field:
        section = f"arms[{index}].set" if arm.set else "method"
    elif field in arm.set:
        section = f"arms[{index}].set.{field}"
    elif field in shared:
        section = f"method.{field}"
    else:
        section = f"arms[{index}].preset"
    return section, f"{detail} (arm {arm.name!r})"


def _validation_message(exc: ValidationError, layers: list[tuple[str, Any]]) -> str:
    errors = exc.errors()
    # pydantic adds e.g. `arms: too short` after an item of arms fails; the item's own error is the useful one.
    errors = [e for e in errors if not any(o["loc"][: len(e["loc"])] == e["loc"] != o["loc"] for o in errors)]
    path, detail = _error_detail(errors[0], ExperimentSpec)
    more = f" (+{len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{_source(layers, _path_keys(path))}: {path}: {detail}{more}"
