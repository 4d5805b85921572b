"""Reading spec files, for every spec kind (experiments, sweeps): search folders, `extends` chains, `--set`
overrides and safe YAML, each mistake a one-line `SpecError` naming the file and what to write instead."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

import brts
from brts.spec.errors import SpecError, clip, show
from brts.values import COUNT_MAX, SEED_MAX


def search_dirs(env_var: str, folder: str) -> list[Path]:
    """`$<env_var>` (os.pathsep-separated), `./<folder>`, then the repository's `<folder>/`, without repeats."""
    dirs = [Path(p).expanduser() for p in os.environ.get(env_var, "").split(os.pathsep) if p]
    dirs += [Path(folder), Path(brts.__file__).resolve().parent.parent / folder]
    unique: list[Path] = []
    for d in dirs:
        if all(d.resolve() != u.resolve() for u in unique):
            unique.append(d)
    return unique


def list_yaml(dirs: Sequence[Path]) -> list[tuple[str, Path]]:
    """(name, path) of every `<dir>/<name>.yaml`, sorted by name; an earlier dir shadows a later one."""
    found: dict[str, Path] = {}
    for d in dirs:
        if Path(d).is_dir():
            for path in sorted(Path(d).glob("*.yaml")):
                found.setdefault(path.stem, path)
    return sorted(found.items())


Layers = list[tuple[str, Any]]


# Labels of layers that are not files (`--set`, a sweep's `overrides`) extend the leaf file's label with this.
DERIVED = " with "


def read_layers(name_or_path: str | Path, overrides: Sequence[str], search_dirs: Sequence[Path],
                kind: str = "experiment", merge: Sequence[tuple[str, dict[str, Any]]] = ()
                ) -> tuple[dict[str, Any], Layers, Path]:
    """The merged data of a spec file (its `extends` chain, then each `(what, data)` of `merge` deep-merged, then
    `--set`), the (label, data) layers it came from, and the file's path. Shared by every spec kind (experiments,
    sweeps): `kind` names it in messages. `name` defaults to the leaf file's stem. Raises SpecError.
    """
    dirs = [Path(d) for d in search_dirs]
    leaf = _locate(str(name_or_path), dirs, kind)
    layers = _load_chain(leaf, dirs, ())
    merged: dict[str, Any] = {}
    for _, data in layers:
        merged = _deep_merge(merged, data)
    if "name" not in layers[-1][1]:
        merged["name"] = leaf.stem
    leaf_label = _display(leaf)
    for what, data in merge:
        merged = _deep_merge(merged, data)
        layers.append((f"{leaf_label}{DERIVED}{what}", data))
    for item in overrides:
        keys, value = _parse_override(item, leaf_label)
        _set_path(merged, keys, value, item, leaf_label)
        nested: Any = value
        for key in reversed(keys):
            nested = {key: nested}
        layers.append((f"{leaf_label}{DERIVED}--set {clip(item)}", nested))
    return merged, layers, leaf


SPEC_SUFFIXES = (".yaml", ".yml")


def _is_name(ref: str) -> bool:
    return "/" not in ref and os.sep not in ref and not ref.endswith(SPEC_SUFFIXES) and not ref.startswith("~")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _dirs_text(dirs: Sequence[Path]) -> str:
    return ", ".join(_display(d) for d in dirs) or "(no search dirs)"


def _available(dirs: Sequence[Path]) -> str:
    return ", ".join(name for name, _ in list_yaml(dirs)) or "none"


def _locate(ref: str, dirs: Sequence[Path], kind: str = "experiment") -> Path:
    if _is_name(ref):
        for d in dirs:
            if (d / f"{ref}.yaml").is_file():
                return d / f"{ref}.yaml"
        raise SpecError(f"{ref}.yaml: no {kind} spec named {ref!r} in {_dirs_text(dirs)}; "
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
        raise SpecError(f"{label}: extends: expected a spec name or a path to a .yaml file, got {show(parent_ref)}")
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
    if path.exists() and not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file"
        raise SpecError(f"{label}: extends: {clip(ref)!r} is {what} ({_display(path)}); extends names another spec "
                        "by name or by the path of its .yaml file")
    if not path.is_file():
        raise SpecError(f"{label}: extends: file {clip(ref)!r} not found (looked at {_display(path)})")
    if path.suffix not in SPEC_SUFFIXES:
        # Not read at all: whatever that file holds (data, secrets) must not end up in a message.
        raise SpecError(f"{label}: extends: {ref!r} is not a spec file (.yaml or .yml); extends names another spec "
                        "by name or by the path of its .yaml file")
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

# No spec field takes an integer of more digits (every range ends below 2**64); Python would refuse to read
# one of more than 4300 digits anyway (its int-string limit).
MAX_INT_DIGITS = 100


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> Any:
    text = str(node.value)
    if len(text) > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"an integer of {len(text)} characters; no spec field takes one that large (counts end at "
            f"{COUNT_MAX}, seeds at {SEED_MAX})", node.start_mark)
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


# A spec's data once its YAML aliases are expanded: far above any real spec, far below what printing or
# serialising it would take long at (aliases repeat a value without copying it; readers of the value do not).
MAX_VALUES = 10_000
MAX_SPEC_BYTES = 1 << 20


def _parse_yaml(text: str, label: str) -> Any:
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader: plain data only
        size = _expanded_size(data, {}, set())
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_message(exc, label)) from None
    except RecursionError:
        raise SpecError(f"{label}: nested too deeply to read; write the spec's data flat") from None
    if size > MAX_VALUES:
        raise SpecError(f"{label}: holds more than {MAX_VALUES} values once its YAML aliases (*name) are expanded; "
                        "a spec is far smaller: write the values it needs without repeating aliases")
    return data


def _expanded_size(value: Any, sizes: dict[int, int], inside: set[int]) -> int:
    """How many values `value` holds with every alias expanded, counted in time linear in the distinct values
    (a shared one counted once per use, from `sizes`); above MAX_VALUES the count stops. An alias inside itself
    (a recursive structure) counts as too many."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in sizes:
        return sizes[key]
    if key in inside:
        return MAX_VALUES + 1
    inside.add(key)
    total = 1
    for item in (*value.keys(), *value.values()) if isinstance(value, dict) else value:
        total += _expanded_size(item, sizes, inside)
        if total > MAX_VALUES:
            break
    inside.discard(key)
    sizes[key] = total
    return total


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
    if problem.startswith("an integer of "):
        return f"{label}: {where}{problem}"
    return f"{label}: {where}malformed YAML: {problem}"


def _read_mapping(path: Path, label: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{label}: cannot read the file: {exc.strerror}") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{label}: larger than {MAX_SPEC_BYTES // 1024} KiB, the most a spec file may be; is this a "
                        "spec file? (keep data such as problems in their own files)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{label}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "save the file as UTF-8") from None
    data = _parse_yaml(text, label)
    if not isinstance(data, dict):
        # Described, not quoted: a file that is not a spec may hold anything.
        got = "an empty file" if data is None else f"{'a list' if isinstance(data, list) else 'a single value'}"
        raise SpecError(f"{label}: expected a mapping of spec fields (name, ...) at the top level, "
                        f"got {got}; is this a spec file?")
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
        raise SpecError(f"{label}: --set {clip(item)!r}: expected dotted.key=value, e.g. train.steps=10")
    return [k.strip() for k in keys], _parse_yaml(raw, f"{label}: --set {clip(item)}")


def _set_path(data: dict[str, Any], keys: list[str], value: Any, item: str, label: str) -> None:
    node = data
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise SpecError(f"{label}: --set {clip(item)}: {clip('.'.join(keys[: i + 1]))} is not a mapping (it is "
                            f"{show(child)}); --set sets dotted paths through mappings only")
        node = child
    node[keys[-1]] = value
