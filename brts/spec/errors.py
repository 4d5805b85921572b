"""Turning pydantic validation errors of a spec into one line: the file (or `--set`) that wrote the field, its
dotted path, what is expected and what was given."""

from __future__ import annotations

import difflib
import json
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from brts.errors import UserError
from brts.method.config import MethodConfig


class SpecError(UserError):
    """A mistake in a spec the user can fix; the message is one line naming the file, the field and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


def clip(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters (its end replaced by "...") for a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


SHOWN = 80  # characters of a given value a message quotes


def show(value: Any) -> str:
    """A given value as an error message quotes it: JSON-like, on one line, at most SHOWN characters; only as much
    of it is serialised as is shown (a value may be huge)."""
    if isinstance(value, str):
        text = repr(value[: SHOWN + 1])
    elif isinstance(value, dict):  # a whole section: named by its keys, never dumped
        keys = ", ".join(clip(str(k), SHOWN) for k in list(value)[:5]) + (", ..." if len(value) > 5 else "")
        text = f"a mapping ({keys})" if value else "an empty mapping"
    else:
        text = _brief(value, SHOWN + 1)
    return clip(" ".join(text.split("\n")), SHOWN)


def _brief(value: Any, budget: int) -> str:
    """`value` as JSON, cut short once `budget` characters are written (lists and mappings item by item)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value[:budget])
    if isinstance(value, (list, tuple, dict)):
        items = value.items() if isinstance(value, dict) else value
        parts, used = [], 2
        for item in items:
            if used > budget:
                parts.append("...")
                break
            part = (f"{_brief(str(item[0]), budget - used)}: {_brief(item[1], budget - used)}"
                    if isinstance(value, dict) else _brief(item, budget - used))
            parts.append(part)
            used += len(part) + 2
        return ("{%s}" if isinstance(value, dict) else "[%s]") % ", ".join(parts)
    return str(value)[:budget]


def _loc_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def path_keys(path: str) -> tuple[str, ...]:
    """The mapping keys of a dotted path up to its first list index: `arms[2].set.x` -> ('arms',)."""
    return tuple(path.split("[", 1)[0].split("."))


def source(layers: list[tuple[str, Any]], keys: tuple[str, ...]) -> str:
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
    return next(label for label in reversed(labels) if " with " not in label)  # the leaf file (spec_files.DERIVED)


def _unwrap(tp: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` (in any nesting, such as brts.values.Int | None) -> X."""
    while True:
        if get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        elif get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        else:
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
# Error types whose message already quotes what was given (brts's own checks).
_OWN_MESSAGES = {"value_error", "assertion_error", "name", "builtin_model", "arm_type", "arm_preset",
                 "arm_duplicate", "seed_duplicate", "eval_task", "eval_splits", "eval_data", "task_train",
                 "teacher_required"}
_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}


def error_detail(err: Any, model: Any) -> tuple[str, str]:
    """(dotted path, what is expected and what was given) for one pydantic error."""
    kind, loc, ctx = err["type"], err["loc"], err.get("ctx") or {}
    if kind == "arm_method":
        return ctx["path"], ctx["detail"]
    path, got = _loc_path(loc), show(err.get("input"))
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
    if kind == "int_parsing_size":
        return path, f"expected an integer, got {got}, which is far too large"
    if kind == "too_short":
        return path, f"expected a non-empty list, got {got}"
    if kind == "literal_error":
        return path, f"expected {ctx['expected']}, got {got}"
    for kinds, detail in _TYPE_DETAILS.items():
        if kind in kinds:
            return path, f"{detail}, got {got}"
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in _OWN_MESSAGES or isinstance(err.get("input"), dict):  # says what was given, or a whole section
        return path, msg
    return path, f"{msg[:1].lower()}{msg[1:]}, got {got}"


def arm_method_error(exc: ValidationError, index: int, arm: str, arm_set: Mapping[str, Any],
                     shared: Mapping[str, Any]) -> tuple[str, str]:
    """Where in the spec a bad effective MethodConfig comes from: the arm's `set`, the shared `method`, or its preset."""
    err = exc.errors()[0]
    field, detail = error_detail(err, MethodConfig)
    if not field:
        section = f"arms[{index}].set" if arm_set else "method"
    elif field in arm_set:
        section = f"arms[{index}].set.{field}"
    elif field in shared:
        section = f"method.{field}"
    else:
        section = f"arms[{index}].preset"
    return section, f"{detail} (arm {arm!r})"


def validation_message(exc: ValidationError, layers: list[tuple[str, Any]], model: type[BaseModel]) -> str:
    """One line for a spec that failed validation: the layer (file or --set) that wrote the first bad field,
    its dotted path, and what is expected and was given."""
    errors = exc.errors()
    # pydantic adds e.g. `arms: too short` after an item of arms fails; the item's own error is the useful one.
    errors = [e for e in errors if not any(o["loc"][: len(e["loc"])] == e["loc"] != o["loc"] for o in errors)]
    path, detail = error_detail(errors[0], model)
    more = f" (+{len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{source(layers, path_keys(path))}: {path}: {detail}{more}"
