"""Every number field of every config a user writes refuses a boolean, inf/NaN (real numbers) and an integer past
its range: checked field by field over the models themselves, so a field added later is covered too."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Annotated, Any, Union, get_args, get_origin

import pydantic
import pytest
from pydantic import BaseModel

from brts.method.config import MethodConfig
from brts.spec import ExperimentSpec, RunConfig
from brts.sweep.spec import SweepSpec
from brts.values import COUNT_MAX, SEED_MAX


def _scalar(tp: Any) -> tuple[Any, bool]:
    """(the annotation without `| None`, whether it is a tuple of it)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else tp
    if get_origin(tp) is tuple:
        return get_args(tp)[0], True
    return tp, False


def _models(model: type[BaseModel], seen: set[type]) -> Iterator[type[BaseModel]]:
    if model in seen:
        return
    seen.add(model)
    yield model
    for field in model.model_fields.values():
        for tp in (field.annotation, *get_args(field.annotation)):
            for inner in (tp, *get_args(tp)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    yield from _models(inner, seen)


def _number_fields() -> list[tuple[type[BaseModel], str, str, bool]]:
    seen: set[type] = set()
    out = []
    for root in (ExperimentSpec, RunConfig, MethodConfig, SweepSpec):
        for model in _models(root, seen):
            for name, field in model.model_fields.items():
                tp, many = _scalar(field.annotation)
                bare = get_args(tp)[0] if get_origin(tp) is Annotated else tp
                if bare in (int, float):  # pydantic keeps the bounds of brts.values' types aside, in `metadata`
                    kind = "real" if bare is float else "seed" if "seed" in name else "int"
                    out.append((model, name, kind, many))
    return out


FIELDS = _number_fields()


def _errors(model: type[BaseModel], name: str, value: Any) -> list[dict[str, Any]]:
    """The validation errors of `model` built with `name: value` (other fields may fail too: only ours counts)."""
    try:
        model.model_validate({name: value})
    except pydantic.ValidationError as exc:
        return [e for e in exc.errors() if e["loc"][:1] == (name,)]
    return []


def test_the_walk_finds_the_fields_the_issue_names() -> None:
    names = {f"{m.__name__}.{n}" for m, n, _, _ in FIELDS}
    assert {"MethodConfig.aux_weight", "MethodConfig.teacher_temperature", "MethodConfig.teacher_samples",
            "EvalSpec.seed", "ExperimentSpec.seeds", "TrainSpec.lr", "TrainSpec.steps", "SamplerSpec.seed"} <= names


@pytest.mark.parametrize(("model", "name", "kind", "many"), FIELDS, ids=[f"{m.__name__}.{n}" for m, n, _, _ in FIELDS])
def test_every_number_field_refuses_what_would_fail_later(model: type[BaseModel], name: str, kind: str,
                                                          many: bool) -> None:
    wrap = (lambda v: [v]) if many else (lambda v: v)
    assert _errors(model, name, wrap(True)), "a boolean is not a number"
    if kind == "real":
        for value in (float("inf"), float("-inf"), float("nan"), "1e400"):
            assert _errors(model, name, wrap(value)), value
    else:
        top = SEED_MAX if kind == "seed" else COUNT_MAX
        assert _errors(model, name, wrap(top + 1))
        assert _errors(model, name, wrap(10**20))
        if kind == "seed":
            assert _errors(model, name, wrap(-1))
            assert not _errors(model, name, wrap(SEED_MAX))
