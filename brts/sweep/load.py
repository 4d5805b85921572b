"""Loading a sweep spec: reading it (`extends`, `--set`), validating its shape, then resolving it against its base
experiment (every value it can sample builds a valid run, the objective is a metric runs record). Code past
`load_sweep` trusts the `Sweep` it gets."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from brts.spec import SpecError, default_search_dirs, load_spec
from brts.spec.errors import error_detail, validation_message
from brts.spec.errors import source as source_label
from brts.spec.files import DERIVED, read_layers, search_dirs
from brts.sweep.spec import SECTIONS, SWITCHES, Param, ParamSpec, Sweep, SweepSpec


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
    leaf_label = [label for label, _ in layers if DERIVED not in label][-1]
    for key, value in (fields or {}).items():
        if value is not None:
            merged[key] = value
            layers.append((f"{leaf_label}{DERIVED}--{key} {value}", {key: value}))
    try:
        spec = SweepSpec.model_validate(merged)
    except ValidationError as exc:
        raise SpecError(validation_message(exc, layers, SweepSpec)) from None
    return resolve(spec, layers, leaf_label, leaf.parent)


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
    # `overrides.method` goes into the swept arms' own `set`: it is meant for them, and as a shared override it
    # would be refused wherever it changes what another arm's preset sets (brts.spec: arm identity).
    method_overrides = spec.overrides.get("method", {})
    if not isinstance(method_overrides, dict):
        raise SpecError(f"{where('overrides', 'method')}: overrides.method: expected a mapping of method fields, "
                        f"got {method_overrides!r}")
    shared = {k: v for k, v in spec.overrides.items() if k != "method"}
    try:
        experiment = load_spec(target, search_dirs=exp_dirs, merge=[(f"the overrides of {source}", shared)])
    except SpecError as exc:
        raise SpecError(f"{where('experiment')}: experiment {ref!r}: {exc}") from None
    key = "arms" if spec.arms is not None else "arm"
    arms = []
    for name in spec.arm_names:
        arm = next((a for a in experiment.arms if a.name == name), None)
        if arm is None:
            raise SpecError(f"{where(key)}: {key}: {name!r} is not an arm of experiment {experiment.name!r}; "
                            f"its arms: {', '.join(a.name for a in experiment.arms)}")
        arms.append(arm.model_copy(update={"set": {**arm.set, **method_overrides}}))
    seeds = spec.seeds or experiment.seeds
    params = tuple(_resolve_param(section, field, p, where) for section, field, p in spec.space.params())
    names = [p.name for p in params]
    if len(set(names)) < len(names):  # Optuna names a parameter by its field
        twice = next(n for n in names if names.count(n) > 1)
        raise SpecError(f"{where('space')}: space: {twice!r} is searched in two sections; search it in one")
    sweep = Sweep(spec=spec, source=source, experiment=experiment, arms=tuple(arms), seeds=seeds, params=params)
    _check_overrides(sweep, where)
    _check_read(sweep, where)
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
    if spec.sampler.name == "points":
        _check_points(sweep, where)
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


def _check_overrides(sweep: Sweep, where: Any) -> None:
    """`overrides.method` must build a valid config for every swept arm."""
    try:
        sweep.trial_spec({})
    except ValidationError as exc:
        field, detail = error_detail(exc.errors()[0], SECTIONS["method"])
        raise SpecError(f"{where('overrides', 'method')}: overrides.method.{field}: {detail}") from None


def _check_points(sweep: Sweep, where: Any) -> None:
    """Each point gives every parameter a value it can take (a choice, or within the range), once."""
    points, names = sweep.points(), [p.name for p in sweep.params]
    for i, point in enumerate(points):
        label = f"{where('sampler', 'points')}: sampler.points[{i}]"
        if sorted(point) != sorted(names):
            missing, extra = sorted(set(names) - set(point)), sorted(set(point) - set(names))
            what = (f"lacks {', '.join(missing)}" if missing else "") + ("; " if missing and extra else "") + (
                f"names {', '.join(extra)}, not a searched parameter" if extra else "")
            raise SpecError(f"{label}: {what}; every point gives each of {', '.join(names)}")
        for p in sweep.params:
            value, s = point[p.name], p.spec
            ok = (value in s.choices if s.choices is not None
                  else isinstance(value, (int, float)) and not isinstance(value, bool)
                  and s.low is not None and s.high is not None and s.low <= value <= s.high
                  and (p.kind != "int" or value == int(value)))
            if not ok:
                raise SpecError(f"{label}: {p.name}: {value!r} is not in its search space ({p.describe()})")
        if point in points[:i]:
            raise SpecError(f"{label}: repeats sampler.points[{points.index(point)}]")
    if sweep.spec.trials > len(points):
        raise SpecError(f"{where('trials')}: trials: {sweep.spec.trials} exceeds the {len(points)} points; lower "
                        "trials or add points")


def _check_read(sweep: Sweep, where: Any) -> None:
    """A sampled method field that no swept arm reads would make every trial the same."""
    unread = sweep.unread()
    if any(p.field in SWITCHES for p in sweep.params if p.section == "method"):
        return  # which fields an arm reads then depends on the sampled values
    for p in sweep.params:
        if p.section == "method" and all(p.field in unread.get(a.name, ()) for a in sweep.arms):
            arms = ", ".join(a.name for a in sweep.arms)
            raise SpecError(f"{where('space', 'method', p.field)}: space.method.{p.field}: no swept arm reads "
                            f"{p.field} ({arms}), so every trial would be the same; sweep an arm that does "
                            "(e.g. brts) or remove it")


def _check_values(sweep: Sweep, param: Param, where: Any) -> None:
    """Every value the sampler can give (bounds, choices, grid points) must build a valid run config."""
    p = param.spec
    candidates: list[tuple[str, Any]] = (
        [(f"choices[{i}]", c) for i, c in enumerate(p.choices)] if p.choices is not None
        else [("low", p.low), ("high", p.high), *((f"grid[{i}]", g) for i, g in enumerate(p.grid or ()))])
    model = SECTIONS[param.section]
    for label, value in candidates:
        try:
            sweep.trial_spec({param.name: value})
        except ValidationError as exc:
            _, detail = error_detail(exc.errors()[0], model)
            raise SpecError(f"{where('space', param.section, param.field)}: space.{param.section}.{param.field}.{label}: "
                            f"{detail}") from None


def _check_objectives(sweep: Sweep, where: Any) -> None:
    from brts.training.step_records import (
        metric_names,  # torch: only where a spec is resolved, not in every worker import
    )

    config = sweep.base_config()
    final = [f"eval/{task}" for task in (*config.eval.splits, *config.eval.tasks)]
    known = [*metric_names(config), *(final if config.eval.final else [])]
    for key, objective in (("objective", sweep.spec.objective), ("second_objective", sweep.spec.second_objective)):
        if objective is None or objective.metric in known:
            continue
        if objective.metric in final:
            raise SpecError(f"{where(key)}: {key}.metric: {objective.metric!r} is read from the final evaluation, "
                            "which eval.final: false turns off; choose a val/<split> metric or set eval.final: true")
        close = difflib.get_close_matches(objective.metric, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "recorded: " + ", ".join(known)
        raise SpecError(f"{where(key)}: {key}.metric: {objective.metric!r} is not recorded by the runs of "
                        f"experiment {sweep.experiment.name!r}; {hint}")
    pruner = sweep.spec.pruner.name
    if pruner != "none" and not sweep.spec.objective.metric.startswith("val/"):
        raise SpecError(f"{where('pruner')}: pruner: {pruner} prunes on validation accuracy during training; "
                        f"objective.metric must be val/<split>, got {sweep.spec.objective.metric!r}")
