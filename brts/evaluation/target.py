"""What `brts eval` evaluates: a model folder, an HF id, a built-in model, or a run (folder or id) of a store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from brts.evaluation.runner import EvaluationError
from brts.evaluation.spec import EvalSpec

_RUN_ID = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class Target:
    """A loadable model, a name for its results folder, and the evaluation settings to start from."""

    model: str
    name: str
    base: dict[str, Any]  # EvalSpec fields: a run's own, else the defaults
    task_seed: int = 0


def resolve_target(target: str, store_root: Path) -> Target:
    """Raises EvaluationError (one line) when `target` is a folder that holds no model or no finished run."""
    if target.startswith("builtin:"):
        from brts.runs.run import resolve_model
        from brts.spec import ModelsSpec

        if target not in ("builtin:teacher", "builtin:student"):
            raise EvaluationError(f"unknown built-in model {target!r}; expected builtin:teacher or builtin:student")
        models = ModelsSpec.model_validate({})
        return Target(resolve_model(target, models, progress=True), target.split(":")[1], {})
    path = Path(target).expanduser()
    if not path.exists() and _RUN_ID.fullmatch(target):
        found = sorted(store_root.glob(f"*/{target}"))
        if not found:
            raise EvaluationError(f"no run {target} in the store {store_root}; pass --store or a run folder")
        path = found[0]
    if path.is_dir() and (path / "record.json").is_file():
        return _run_target(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EvaluationError(f"no model at {path}: expected a model folder (config.json) or a run folder "
                                  "(record.json)")
        return Target(str(path.resolve()), path.resolve().name, {})
    if path.suffix == ".gguf" and path.is_file():
        raise EvaluationError(f"{target}: a GGUF file; make a model folder from it first: "
                              f"brts models import-gguf {target} OUT")
    if path.exists() or target.startswith((".", "/", "~")):
        raise EvaluationError(f"{target}: not a model folder, run folder or HF model id")
    return Target(target, target.replace("/", "__"), {})


def _run_target(run: Path) -> Target:
    final = run / "final"
    if not (final / "config.json").is_file():
        raise EvaluationError(f"run {run} has no final checkpoint yet (it saves final/ when training ends); "
                              "finish it with brts exp run")
    config = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() else {}
    base = dict(config.get("eval") or {})
    EvalSpec.model_validate(base)  # a run's own settings are valid, unless written by another version
    return Target(str(final.resolve()), run.resolve().name, base, int((config.get("task") or {}).get("seed", 0)))
