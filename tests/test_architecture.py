"""The package's shape as docs/ARCHITECTURE.md states it: layers that import only downward, no import cycles, one
place that builds run configs, modules of a readable size."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "brts"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
MAX_LINES = 400
SIZE_REASON = "# Over 400 lines:"


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules `name` imports anywhere in its file (inside functions and TYPE_CHECKING too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            # `from brts.x import y` imports the module brts.x.y when there is one, else names of brts.x.
            out.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layers() -> dict[str, int]:
    """Package (or top-level module) -> its layer, from the numbered list in docs/ARCHITECTURE.md."""
    found = {}
    for line in ARCHITECTURE.read_text().splitlines():
        match = re.match(r"(\d+)\. \*\*[a-z]+\*\* — (.+)$", line)
        if match:
            found.update(dict.fromkeys(re.findall(r"`([a-z_.]+)`", match.group(2)), int(match.group(1))))
    return found


LAYERS = _layers()


def _package(module: str) -> str:
    """The unit a layer lists: `brts`, or `brts.<first part>`."""
    return ".".join(module.split(".")[:2])


def test_every_package_has_a_layer() -> None:
    assert len(set(LAYERS.values())) >= 5
    missing = sorted({_package(m) for m in MODULES} - set(LAYERS))
    assert not missing, f"add these to the layer list of docs/ARCHITECTURE.md: {missing}"


def test_no_module_imports_a_higher_layer() -> None:
    upward = sorted(f"{m} ({LAYERS[_package(m)]}) imports {t} ({LAYERS[_package(t)]})"
                    for m, targets in GRAPH.items() for t in targets
                    if LAYERS.get(_package(t), 0) > LAYERS.get(_package(m), 0))
    assert not upward, upward


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back() -> None:
    assert _cycles(GRAPH) == []


def _calls(name: str) -> Iterator[tuple[Path, int]]:
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name:
                yield path.relative_to(ROOT), node.lineno


@pytest.mark.parametrize("name", ["RunConfig", "PlannedRun"])
def test_only_the_plan_builds_run_configs(name: str) -> None:
    """Every run (experiment arm, sweep trial, bench configuration, GPU check) gets its config from `plan`."""
    assert {str(path) for path, _ in _calls(name)} == {"brts/runs/plan.py"}


def test_long_modules_say_why_at_the_top() -> None:
    unexplained = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        if len(lines) > MAX_LINES and not any(line.startswith(SIZE_REASON) for line in lines[:30]):
            unexplained.append(f"{name} ({len(lines)} lines)")
    assert not unexplained, f"split these or add a line '{SIZE_REASON} <why>' near the top: {unexplained}"


TOP_LEVEL_LIMIT = 6


def test_the_package_root_holds_few_modules_each_named_in_the_architecture() -> None:
    """Everything but the core's few shared modules lives in a folder per layer."""
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "__main__"})
    assert len(loose) <= TOP_LEVEL_LIMIT, f"{len(loose)} modules directly in brts/: {loose}"
    unnamed = [m for m in loose if f"brts.{m}" not in LAYERS]
    assert not unnamed, f"name these in the core layer of docs/ARCHITECTURE.md: {unnamed}"


def test_every_layer_but_the_core_is_a_folder() -> None:
    files = sorted(unit for unit, layer in LAYERS.items() if layer > 1 and not (ROOT / unit.replace(".", "/")).is_dir())
    assert not files, f"layers above the core are packages: {files}"


def test_one_function_sets_up_a_trainer() -> None:
    """A run, a rank of a multi-process launch, the bench and the measurement scripts all call `build_trainer`."""
    assert {(str(path)) for path, _ in _calls("Trainer")} == {"brts/training/trainer.py"}
    assert len(list(_calls("Trainer"))) == 1
