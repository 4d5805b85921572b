"""What `brts eval` evaluates: a model folder, an HF id, a built-in model, or a run (folder or id) of a store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brts.evaluation.runner import EvaluationError
from brts.models.load import resolve_model
from brts.spec import BUILTIN_MODELS, ModelsSpec, TaskSpec
from brts.spec.evaluation import EvalSpec
from brts.store import DamagedFile, RunFolder, RunStore

_RUN_ID = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class Target:
    """A loadable model, a name for its results folder, and the evaluation settings to start from."""

    model: str
    name: str
    base: dict[str, Any]  # EvalSpec fields: a run's own, else the defaults
    task: TaskSpec | None = None  # a run's own task (its generated problems, its answer format)


def resolve_target(target: str, store_root: Path) -> Target:
    """Raises EvaluationError (one line) when `target` is a folder that holds no model or no finished run."""
    if target.startswith("builtin:"):
        if target not in BUILTIN_MODELS:
            raise EvaluationError(f"unknown built-in model {target!r}; expected {' or '.join(BUILTIN_MODELS)}")
        return Target(resolve_model(target, ModelsSpec(), progress=True), BUILTIN_MODELS[target], {})
    path = Path(target).expanduser()
    if not path.exists() and _RUN_ID.fullmatch(target):
        found = RunStore(store_root).find(target)
        if found is None:
            raise EvaluationError(f"no run {target} in the store {store_root}; pass --store or a run folder")
        path = found.path
    if path.is_dir() and RunFolder(path).is_run:
        return _run_target(RunFolder(path))
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


def _run_target(run: RunFolder) -> Target:
    if not (run.final / "config.json").is_file():
        raise EvaluationError(f"run {run.path} has no final checkpoint yet (it saves final/ when training ends); "
                              "finish it with brts exp run")
    try:
        damaged = run.manifest.verify("final")
    except DamagedFile as exc:
        raise EvaluationError(f"{exc}; `brts store check --repair` and `brts exp run` make the run whole") from None
    if damaged:  # never evaluated as it is: the numbers would not be the run's
        raise EvaluationError(f"{damaged[0]}; `brts store check --repair` then `brts exp run` saves final/ again "
                              "from the run's last checkpoint")
    config = run.config_data()
    base = dict(config.get("eval") or {})
    EvalSpec.model_validate(base)  # a run's own settings are valid, unless written by another version
    return Target(str(run.final.resolve()), run.path.resolve().name, base, TaskSpec.model_validate(config.get("task") or {}))
