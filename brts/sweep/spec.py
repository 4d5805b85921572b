"""Sweep specs: the experiment arm to vary, the search space, objectives, sampler, pruner and budget.

A sweep spec is YAML like an experiment spec (`version`, `extends`, `--set`, the same one-line errors) and is
validated twice at the edge: its own shape here (ranges, choices, names), then against its base experiment by
`brts.sweep.load` (every value builds a valid run config, the objective is a metric runs record), which returns
the resolved `Sweep` defined here. Code past `load_sweep` trusts the `Sweep` it gets.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

import brts
from brts.method.config import MethodConfig, arm_config
from brts.models.builtin import builtin_identity
from brts.runs.plan import RUN_FORMAT, PlannedRun, plan
from brts.spec import (
    ArmSpec,
    ExperimentSpec,
    Name,
    RunConfig,
    TrainSpec,
)
from brts.values import Int, Real, Seed

Scalar = int | float | str | bool
SECTIONS: dict[str, type[BaseModel]] = {"method": MethodConfig, "train": TrainSpec}
SWITCHES = frozenset({"teacher_context", "recovery", "alignment"})  # decide which other fields an arm reads


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ParamSpec(_Spec):
    """One searched field: `choices` (categorical), or a `low`..`high` range (int or float by the field's type)."""

    choices: tuple[Scalar, ...] | None = None
    low: Int | Real | None = None
    high: Int | Real | None = None
    log: bool = False
    step: Int | Real | None = Field(None, gt=0)
    grid: tuple[Int | Real, ...] | None = Field(None, description="points the grid sampler uses for a range")

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
    name: Literal["tpe", "random", "grid", "points"] = "tpe"
    seed: Seed = 0
    startup_trials: Int = Field(4, ge=0, description="TPE: random trials before the model takes over")
    points: tuple[dict[str, Scalar], ...] | None = Field(
        None, min_length=1, description="points: the trials to run, in order, each a value of every parameter "
                                        "(a chosen design such as a fractional factorial)")

    @model_validator(mode="after")
    def _points_with_points(self) -> SamplerSpec:
        if (self.name == "points") != (self.points is not None):
            message = ("the points sampler runs the trials listed under points: [{param: value, ...}, ...]; add them"
                       if self.points is None else
                       "points are read by the points sampler only; set name: points or remove points")
            raise PydanticCustomError("sampler_points", "{message}", {"message": message})
        return self


class PrunerSpec(_Spec):
    name: Literal["none", "median", "wilcoxon"] = "none"
    p_threshold: Real = Field(0.1, gt=0, le=1, description="wilcoxon: prune when p < this")
    startup_steps: Int = Field(2, ge=0, description="reports before any pruning (wilcoxon: paired problems)")
    startup_trials: Int = Field(2, ge=0, description="median: finished trials before any pruning")


def _default(model: type[_Spec]) -> Any:
    return Field(default_factory=model)


class SweepSpec(_Spec):
    version: Literal[1] = 1
    name: Name
    description: str = ""
    experiment: str = Field(min_length=1, description="base experiment spec: a name or a path (relative to this file)")
    arm: Name | None = Field(None, description="the experiment's arm each trial trains (or `arms`)")
    arms: tuple[Name, ...] | None = Field(None, min_length=1, description="several arms: each trial trains all of "
                                                                         "them; objectives average over them")
    overrides: dict[str, Any] = Field(default_factory=dict, description="merged into the base experiment spec; "
                                                                        "`method` into the swept arms' own `set`")
    seeds: tuple[Seed, ...] | None = Field(None, min_length=1, description="runs per trial; default: the experiment's")
    space: SpaceSpec
    objective: ObjectiveSpec = _default(ObjectiveSpec)
    second_objective: ObjectiveSpec | None = None
    sampler: SamplerSpec = _default(SamplerSpec)
    pruner: PrunerSpec = _default(PrunerSpec)
    trials: Int = Field(8, ge=1, description="completed trials to reach (pruned ones count when pruning is on)")
    workers: Int = Field(1, ge=1)
    storage: str | None = Field(None, min_length=1, description="Optuna storage URL or journal file; default: store")

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if seeds is not None and len(set(seeds)) < len(seeds):
            raise ValueError(f"seeds must be unique, got {list(seeds)}")
        return seeds

    @model_validator(mode="after")
    def _one_of_arm_and_arms(self) -> SweepSpec:
        if (self.arm is None) == (self.arms is None):
            raise PydanticCustomError("arm_choice", "give the arm a trial trains (arm: brts) or several (arms: "
                                      "[opd, brts]), one of the two", {"field": "arm"})
        if self.arms is not None and len(set(self.arms)) < len(self.arms):
            raise PydanticCustomError("arm_choice", "arms must be unique, got {got}",
                                      {"got": ", ".join(self.arms), "field": "arms"})
        return self

    @property
    def arm_names(self) -> tuple[str, ...]:
        return self.arms if self.arms is not None else (self.arm,) if self.arm is not None else ()

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
    arms: tuple[ArmSpec, ...]  # the swept arms, `overrides.method` already in their `set`
    seeds: tuple[int, ...]
    params: tuple[Param, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def objectives(self) -> tuple[ObjectiveSpec, ...]:
        second = self.spec.second_objective
        return (self.spec.objective,) if second is None else (self.spec.objective, second)

    def trial_spec(self, values: Mapping[str, Any], seeds: Sequence[int] | None = None,
                   arms: Sequence[str] | None = None) -> ExperimentSpec:
        """The experiment a trial runs: the base experiment with the sweep's arms alone (or the named ones), each
        one's `set` carrying the sampled `method.*` values it reads and `train` the sampled `train.*` ones, under
        the sweep's name; it keeps the experiment's pool, resources and rollout. A sampled field an arm does not
        read (`MethodConfig.unused_fields`: `aux_weight` for `opd`) keeps the experiment's value there, so that
        arm's run is the same, and found finished, in every trial. Raises ValidationError for a value no run can
        take."""
        by_section = {s: {p.field: values[p.name] for p in self.params if p.section == s and p.name in values}
                      for s in SECTIONS}
        exp, chosen = self.experiment, [a for a in self.arms if arms is None or a.name in arms]
        trial_arms = []
        for arm in chosen:
            # a bad value fails here, naming the MethodConfig field
            unused = arm_config(arm.preset, {**exp.method, **arm.set, **by_section["method"]}).unused_fields()
            arm_set = {**arm.set, **{k: v for k, v in by_section["method"].items() if k not in unused}}
            trial_arms.append(ArmSpec(name=arm.name, preset=arm.preset, set=arm_set))
        train = TrainSpec.model_validate({**exp.train.model_dump(), **by_section["train"]})
        return exp.model_copy(update={
            "name": self.name, "arms": tuple(trial_arms), "train": train,
            "seeds": tuple(self.seeds if seeds is None else seeds)})

    def unread(self) -> dict[str, list[str]]:
        """Per swept arm, the sampled `method` fields it does not read at the base values (its runs keep the
        experiment's value of those, shared by every trial that differs only there)."""
        sampled = [p.field for p in self.params if p.section == "method"]
        out = {}
        for arm in self.arms:
            unused = arm_config(arm.preset, {**self.experiment.method, **arm.set}).unused_fields()
            if fields := [f for f in sampled if f in unused]:
                out[arm.name] = fields
        return out

    def trial_runs(self, values: Mapping[str, Any], seeds: Sequence[int] | None = None) -> list[PlannedRun]:
        """The trial's runs, one per arm and seed (arm-major); each id equals that of any identical run of any
        experiment."""
        return plan(self.trial_spec(values, seeds), kind="sweep")

    def base_config(self) -> RunConfig:
        """The run config of the sweep's first arm with no value sampled (its first seed)."""
        return self.trial_runs({}, self.seeds[:1])[0].config

    def grid(self) -> dict[str, list[Scalar]]:
        points = {p.name: p.grid_points() for p in self.params}
        return {name: values for name, values in points.items() if values is not None}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def points(self) -> list[dict[str, Scalar]]:
        """The trials a grid or points sampler runs (grid: every combination); empty for tpe and random."""
        s = self.spec.sampler
        if s.name == "points":
            assert s.points is not None
            return [dict(pt) for pt in s.points]
        if s.name != "grid":
            return []
        combos: list[dict[str, Scalar]] = [{}]
        for name, values in self.grid().items():
            combos = [{**c, name: v} for c in combos for v in values]
        return combos

    def identity(self) -> dict[str, str]:
        """What makes two sweeps the same study: base config, arms, space, objectives, seeds (not budget or sampler)."""
        base = self.base_config().results_dump()
        base.pop("seed")
        arms = [run.config.results_dump() for run in self.trial_runs({}, self.seeds[:1])]
        builtin = builtin_identity(self.base_config().models)  # re-shipped built-in models make another study
        parts = {
            "base": {"brts": brts.__version__, "run_format": RUN_FORMAT, "config": base,
                     **({"builtin": builtin} if builtin is not None else {})},
            "space": {p.name: p.spec.model_dump(mode="json", exclude_defaults=True) for p in self.params},
            "objectives": [o.model_dump(mode="json") for o in self.objectives],
            "seeds": list(self.seeds),
            # With one arm its config is the base alone, as before several could be swept: old studies still match.
            **({"arms": arms} if len(arms) > 1 else {}),
        }
        return {k: json.dumps(v, sort_keys=True, separators=(",", ":")) for k, v in parts.items()}

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]
