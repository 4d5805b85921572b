"""Sweep specs: the experiment arm to vary, the search space, objectives, sampler, pruner and budget.

A sweep spec is YAML like an experiment spec (`version`, `extends`, `--set`, the same one-line errors) and is
validated twice at the edge: its own shape here (ranges, choices, names), then against its base experiment in
`resolve` (every value builds a valid run config, the objective is a metric runs record). Code past `load_sweep`
trusts the `Sweep` it gets.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

import brts
from brts.method.config import MethodConfig, arm_config
from brts.runs.plan import RUN_FORMAT, PlannedRun, run_id
from brts.spec import (
    ArmSpec,
    ExperimentSpec,
    Name,
    RunConfig,
    SpecError,
    TrainSpec,
    default_search_dirs,
    load_spec,
    read_layers,
)
from brts.spec_errors import error_detail, validation_message
from brts.spec_errors import source as source_label
from brts.spec_files import search_dirs

Scalar = int | float | str | bool
SECTIONS: dict[str, type[BaseModel]] = {"method": MethodConfig, "train": TrainSpec}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ParamSpec(_Spec):
    """One searched field: `choices` (categorical), or a `low`..`high` range (int or float by the field's type)."""

    choices: tuple[Scalar, ...] | None = None
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = Field(None, gt=0)
    grid: tuple[int | float, ...] | None = Field(None, description="points the grid sampler uses for a range")

    @model_validator(mode="after")
    def _shape(self) -> ParamSpec:
        if self.choices is not None:
            extra = [k for k in ("low", "high", "step", "grid") if getattr(self, k) is not None] + (
                ["log"] if self.log else [])
            if extra:
                raise ValueError(f"give either choices or a low/high range, not both (remove {', '.join(extra)})")
            if not self.choices:
                raise ValueError("choices: expected a non-empty list")
            repeated = sorted({str(c) for c in self.choices if self.choices.count(c) > 1})
            if repeated:
                raise ValueError(f"choices must be unique; repeated: {', '.join(repeated)}")
            return self
        if self.low is None or self.high is None:
            raise ValueError("expected choices: [...], or a range with low and high")
        if self.low >= self.high:
            kind = "empty" if self.low == self.high else "reversed"
            raise ValueError(f"{kind} range: low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a log range takes no step; remove step or log")
        if self.grid is not None:
            if not self.grid:
                raise ValueError("grid: expected a non-empty list of points")
            outside = [g for g in self.grid if not self.low <= g <= self.high]
            if outside:
                raise ValueError(f"grid points {outside} lie outside [{self.low}, {self.high}]")
            if len(set(self.grid)) < len(self.grid):
                raise ValueError("grid points must be unique")
        return self


def _check_fields(section: str, params: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
    fields = list(SECTIONS[section].model_fields)
    for name in params:
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "expected one of: " + ", ".join(fields)
            raise PydanticCustomError("unknown_param", "unknown field {got} of {section}; {hint}",
                                      {"got": repr(name), "section": section, "hint": hint})
    return params


class SpaceSpec(_Spec):
    """The searched fields of the run config, by section: `method.<MethodConfig field>`, `train.<TrainSpec field>`."""

    method: dict[str, ParamSpec] = Field(default_factory=dict)
    train: dict[str, ParamSpec] = Field(default_factory=dict)

    @field_validator("method")
    @classmethod
    def _method_fields(cls, params: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        return _check_fields("method", params)

    @field_validator("train")
    @classmethod
    def _train_fields(cls, params: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        return _check_fields("train", params)

    @model_validator(mode="after")
    def _not_empty(self) -> SpaceSpec:
        if not self.method and not self.train:
            raise ValueError("the search space is empty; add e.g. method: {aux_weight: {low: 0.01, high: 1, log: true}}")
        return self

    def params(self) -> list[tuple[str, str, ParamSpec]]:
        """(section, field, spec) of every parameter, in spec order."""
        return [(section, field, p) for section in SECTIONS for field, p in getattr(self, section).items()]


class ObjectiveSpec(_Spec):
    """A metric of each run (a `metrics.jsonl` key, or `eval/<split>` from the final evaluation), mean over seeds."""

    metric: str = Field("val/hard", min_length=1)
    direction: Literal["maximize", "minimize"] = "maximize"
    reduce: Literal["last", "mean", "max", "min"] = Field("last", description="over the run's recorded steps")


class SamplerSpec(_Spec):
    name: Literal["tpe", "random", "grid"] = "tpe"
    seed: int = 0
    startup_trials: int = Field(4, ge=0, description="TPE: random trials before the model takes over")


class PrunerSpec(_Spec):
    name: Literal["none", "median", "wilcoxon"] = "none"
    p_threshold: float = Field(0.1, gt=0, le=1, description="wilcoxon: prune when p < this")
    startup_steps: int = Field(2, ge=0, description="reports before any pruning (wilcoxon: paired problems)")
    startup_trials: int = Field(2, ge=0, description="median: finished trials before any pruning")


def _default(model: type[_Spec]) -> Any:
    return Field(default_factory=model)


class SweepSpec(_Spec):
    version: Literal[1] = 1
    name: Name
    description: str = ""
    experiment: str = Field(min_length=1, description="base experiment spec: a name or a path (relative to this file)")
    arm: Name
    overrides: dict[str, Any] = Field(default_factory=dict, description="merged into the base experiment spec")
    seeds: tuple[int, ...] | None = Field(None, min_length=1, description="runs per trial; default: the experiment's")
    space: SpaceSpec
    objective: ObjectiveSpec = _default(ObjectiveSpec)
    second_objective: ObjectiveSpec | None = None
    sampler: SamplerSpec = _default(SamplerSpec)
    pruner: PrunerSpec = _default(PrunerSpec)
    trials: int = Field(8, ge=1, description="completed trials to reach (pruned ones count when pruning is on)")
    workers: int = Field(1, ge=1)
    storage: str | None = Field(None, min_length=1, description="Optuna storage URL or journal file; default: store")

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if seeds is not None and len(set(seeds)) < len(seeds):
            raise ValueError(f"seeds must be unique, got {list(seeds)}")
        return seeds

    @model_validator(mode="after")
    def _pruning_single_objective(self) -> SweepSpec:
        if self.pruner.name != "none" and self.second_objective is not None:
            raise PydanticCustomError("pruner_multi", "Optuna cannot prune a multi-objective study; "
                                      "set pruner.name: none or remove second_objective", {})
        return self


@dataclass(frozen=True)
class Param:
    """One resolved search dimension, named by its field (Optuna's param name: `teacher_samples`, `aux_weight`);
    `kind` is categorical, int or float (from the field's type)."""

    name: str
    section: str
    field: str
    spec: ParamSpec
    kind: Literal["categorical", "int", "float"]

    def grid_points(self) -> list[Scalar] | None:
        """The values the grid sampler visits; None for a float range without `grid`."""
        p = self.spec
        if p.choices is not None:
            return list(p.choices)
        if p.grid is not None:
            return [int(g) for g in p.grid] if self.kind == "int" else [float(g) for g in p.grid]
        if self.kind == "int":
            assert p.low is not None and p.high is not None
            return list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
        return None

    def describe(self) -> str:
        p = self.spec
        if p.choices is not None:
            return "{" + ", ".join(map(str, p.choices)) + "}"
        text = f"{self.kind} [{p.low}, {p.high}]" + (" log" if p.log else "") + (f" step {p.step}" if p.step else "")
        return text + (f", grid {list(p.grid)}" if p.grid else "")


@dataclass(frozen=True)
class Sweep:
    """A validated sweep resolved against its base experiment: everything needed to plan a trial's runs."""

    spec: SweepSpec
    source: str  # the sweep file, for messages
    experiment: ExperimentSpec
    arm: ArmSpec
    seeds: tuple[int, ...]
    params: tuple[Param, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def objectives(self) -> tuple[ObjectiveSpec, ...]:
        second = self.spec.second_objective
        return (self.spec.objective,) if second is None else (self.spec.objective, second)

    def config(self, values: Mapping[str, Any], seed: int) -> RunConfig:
        """The run config of one trial seed: the arm's config with the sampled values; raises ValidationError."""
        by_section = {s: {p.field: values[p.name] for p in self.params if p.section == s and p.name in values}
                      for s in SECTIONS}
        exp = self.experiment
        method = arm_config(self.arm.preset, {**exp.method, **self.arm.set, **by_section["method"]})
        train = TrainSpec.model_validate({**exp.train.model_dump(), **by_section["train"]})
        return RunConfig(task=exp.task, models=exp.models, train=train, eval=exp.eval, rollout=exp.rollout,
                         method=method, seed=seed)

    def planned(self, values: Mapping[str, Any], seed: int) -> PlannedRun:
        """The trial's run for one seed; its id equals that of any identical run of any experiment."""
        config = self.config(values, seed)
        return PlannedRun(experiment=self.name, arm=self.arm.name, seed=seed, config=config, run_id=run_id(config))

    def grid(self) -> dict[str, list[Scalar]]:
        points = {p.name: p.grid_points() for p in self.params}
        return {name: values for name, values in points.items() if values is not None}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def identity(self) -> dict[str, str]:
        """What makes two sweeps the same study: base config, arm, space, objectives, seeds (not budget or sampler)."""
        base = self.config({}, self.seeds[0]).results_dump()
        base.pop("seed")
        parts = {
            "base": {"brts": brts.__version__, "run_format": RUN_FORMAT, "config": base},
            "space": {p.name: p.spec.model_dump(mode="json", exclude_defaults=True) for p in self.params},
            "objectives": [o.model_dump(mode="json") for o in self.objectives],
            "seeds": list(self.seeds),
        }
        return {k: json.dumps(v, sort_keys=True, separators=(",", ":")) for k, v in parts.items()}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]


def default_sweep_dirs() -> list[Path]:
    """`$BRTS_SWEEPS` (os.pathsep-separated), `./sweeps`, then the repository's `sweeps/`."""
    return search_dirs("BRTS_SWEEPS", "sweeps")


def load_sweep(name_or_path: str | Path, overrides: Sequence[str] = (), fields: Mapping[str, Any] | None = None,
               search_dirs: Sequence[Path] | None = None) -> Sweep:
    """Load (`extends`, `--set`), validate and resolve a sweep spec against its experiment; raises SpecError.

    `fields` sets top-level fields last (the CLI's --trials, --workers, --storage). Reads files only.
    """
    dirs = default_sweep_dirs() if search_dirs is None else list(search_dirs)
    merged, layers, leaf = read_layers(name_or_path, overrides, dirs, kind="sweep")
    leaf_label = [label for label, _ in layers if " with --" not in label][-1]
    for key, value in (fields or {}).items():
        if value is not None:
            merged[key] = value
            layers.append((f"{leaf_label} with --{key} {value}", {key: value}))
    try:
        spec = SweepSpec.model_validate(merged)
    except ValidationError as exc:
        raise SpecError(validation_message(exc, layers, SweepSpec)) from None
    return resolve(spec, layers, leaf_label, leaf.parent)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """`{train: {steps: 60}}` -> `["train.steps=60"]`: overrides as `--set` items (JSON values are YAML)."""
    items: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append(f"{prefix}{key}={json.dumps(value)}")
    return items


def resolve(spec: SweepSpec, layers: list[tuple[str, Any]], source: str, folder: Path) -> Sweep:
    """Check the sweep against its base experiment (arm, values, metrics, grid) and return the resolved Sweep."""

    def where(*keys: str) -> str:
        return source_label(layers, keys)

    ref = spec.experiment
    target: str | Path = ref
    if "/" in ref or ref.endswith((".yaml", ".yml")) or ref.startswith("~"):
        path = Path(ref).expanduser()
        target = path if path.is_absolute() else folder / path
    exp_dirs = [folder, folder.parent / "experiments", *default_search_dirs()]
    try:
        experiment = load_spec(target, _flatten(spec.overrides), search_dirs=exp_dirs)
    except SpecError as exc:
        raise SpecError(f"{where('experiment')}: experiment {ref!r}: {exc}") from None
    arm = next((a for a in experiment.arms if a.name == spec.arm), None)
    if arm is None:
        raise SpecError(f"{where('arm')}: arm: {spec.arm!r} is not an arm of experiment {experiment.name!r}; "
                        f"its arms: {', '.join(a.name for a in experiment.arms)}")
    seeds = spec.seeds or experiment.seeds
    params = tuple(_resolve_param(section, field, p, where) for section, field, p in spec.space.params())
    names = [p.name for p in params]
    if len(set(names)) < len(names):  # Optuna names a parameter by its field
        twice = next(n for n in names if names.count(n) > 1)
        raise SpecError(f"{where('space')}: space: {twice!r} is searched in two sections; search it in one")
    sweep = Sweep(spec=spec, source=source, experiment=experiment, arm=arm, seeds=seeds, params=params)
    for param in params:
        _check_values(sweep, param, where)
    _check_objectives(sweep, where)
    if spec.sampler.name == "grid":
        missing = [p.name for p in params if p.grid_points() is None]
        if missing:
            raise SpecError(f"{where('space')}: space: {missing[0]}: the grid sampler needs points for a float range; "
                            "add grid: [...] (e.g. grid: [0.01, 0.1, 1.0])")
        if spec.trials > sweep.grid_size():
            shape = " x ".join(str(len(v)) for v in sweep.grid().values())
            raise SpecError(f"{where('trials')}: trials: {spec.trials} exceeds the {sweep.grid_size()} points of the "
                            f"grid ({shape}); lower trials or add grid points")
    return sweep


def _field_type(section: str, field: str) -> Any:
    annotation = SECTIONS[section].model_fields[field].annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def _resolve_param(section: str, field: str, spec: ParamSpec, where: Any) -> Param:
    name = f"{section}.{field}"
    if spec.choices is not None:
        return Param(field, section, field, spec, "categorical")
    tp = _field_type(section, field)
    if tp is int:
        bad = [v for v in (spec.low, spec.high, spec.step, *(spec.grid or ())) if v is not None and v != int(v)]
        if bad:
            raise SpecError(f"{where('space', section, field)}: space.{name}: {field} is an integer field; "
                            f"low, high, step and grid must be integers, got {bad[0]}")
        return Param(field, section, field, spec, "int")
    if tp is float:
        return Param(field, section, field, spec, "float")
    raise SpecError(f"{where('space', section, field)}: space.{name}: {field} is not numeric; "
                    "search it with choices: [...]")


def _check_values(sweep: Sweep, param: Param, where: Any) -> None:
    """Every value the sampler can give (bounds, choices, grid points) must build a valid run config."""
    p = param.spec
    candidates: list[tuple[str, Any]] = (
        [(f"choices[{i}]", c) for i, c in enumerate(p.choices)] if p.choices is not None
        else [("low", p.low), ("high", p.high), *((f"grid[{i}]", g) for i, g in enumerate(p.grid or ()))])
    model = SECTIONS[param.section]
    for label, value in candidates:
        try:
            sweep.config({param.name: value}, sweep.seeds[0])
        except ValidationError as exc:
            _, detail = error_detail(exc.errors()[0], model)
            raise SpecError(f"{where('space', param.section, param.field)}: space.{param.section}.{param.field}.{label}: "
                            f"{detail}") from None


def _check_objectives(sweep: Sweep, where: Any) -> None:
    from brts.train import metric_names  # torch: only where a spec is resolved, not in every worker import

    config = sweep.config({}, sweep.seeds[0])
    known = [*metric_names(config), *(f"eval/{task}" for task in (*config.eval.splits, *config.eval.tasks))]
    for key, objective in (("objective", sweep.spec.objective), ("second_objective", sweep.spec.second_objective)):
        if objective is None or objective.metric in known:
            continue
        close = difflib.get_close_matches(objective.metric, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "recorded: " + ", ".join(known)
        raise SpecError(f"{where(key)}: {key}.metric: {objective.metric!r} is not recorded by the runs of "
                        f"experiment {sweep.experiment.name!r}; {hint}")
    pruner = sweep.spec.pruner.name
    if pruner != "none" and not sweep.spec.objective.metric.startswith("val/"):
        raise SpecError(f"{where('pruner')}: pruner: {pruner} prunes on validation accuracy during training; "
                        f"objective.metric must be val/<split>, got {sweep.spec.objective.metric!r}")
