"""Loading an experiment spec: find the file, merge its layers (`extends`, `--set`, through `brts.spec.files`),
validate it into `ExperimentSpec`, then the checks that need the file system or lm-eval (model folders, data
folder, lm-eval task names). Reads files only; writes, builds and downloads nothing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from brts.spec.catalog import is_ours, known_lm_eval_task
from brts.spec.errors import SpecError, source, validation_message
from brts.spec.evaluation import missing_benchmark_file
from brts.spec.experiment import BUILTIN_MODELS, HUB_ID_RE, LOCAL_PREFIXES, ExperimentSpec
from brts.spec.files import list_yaml, read_layers, search_dirs


def default_search_dirs() -> list[Path]:
    """`$BRTS_EXPERIMENTS` (os.pathsep-separated), `./experiments`, then the repository's `experiments/`."""
    return search_dirs("BRTS_EXPERIMENTS", "experiments")


def list_specs(search_dirs: Sequence[Path] | None = None) -> list[tuple[str, Path]]:
    """(name, path) of every `<dir>/<name>.yaml`, sorted by name; an earlier dir shadows a later one."""
    return list_yaml(default_search_dirs() if search_dirs is None else search_dirs)


def load_spec(name_or_path: str | Path, overrides: Sequence[str] = (),
              search_dirs: Sequence[Path] | None = None,
              merge: Sequence[tuple[str, dict[str, Any]]] = ()) -> ExperimentSpec:
    """Load, merge (`extends`, then each `(what, data)` of `merge`, e.g. a sweep's overrides), override
    (`--set dotted.key=value`) and validate a spec; raises SpecError.

    A name (no `/`, no `.yaml`) is looked up as `<dir>/<name>.yaml` in the search dirs. `name` defaults to the
    leaf file's stem (a parent's name is not inherited). Reads files only; writes nothing.
    """
    dirs = default_search_dirs() if search_dirs is None else search_dirs
    merged, layers, _ = read_layers(name_or_path, overrides, dirs, merge=merge)
    try:
        spec = ExperimentSpec.model_validate(merged)
    except ValidationError as exc:
        raise SpecError(validation_message(exc, layers, ExperimentSpec)) from None
    _check_local_models(spec, layers)
    _check_data_dir(spec, layers)
    _check_lm_eval_tasks(spec, layers)
    return spec


def _check_local_models(spec: ExperimentSpec, layers: list[tuple[str, Any]]) -> None:
    for role in ("teacher", "student"):
        value: str = getattr(spec.models, role)
        path = Path(value).expanduser()
        where = f"{source(layers, ('models', role))}: models.{role}"
        if value.startswith(LOCAL_PREFIXES) and not path.exists():
            raise SpecError(f"{where}: local model folder {value!r} does not exist; give an existing folder, "
                            f"'builtin:{role}', or an HF model id")
        if path.exists() and not (path / "config.json").is_file():
            raise SpecError(f"{where}: {value!r} is not a model folder (no config.json); give a save_pretrained "
                            "folder (`brts models import-gguf` makes one from a GGUF file)")
        if value not in BUILTIN_MODELS and not path.exists() and not HUB_ID_RE.fullmatch(value):
            raise SpecError(f"{where}: {value!r} is neither an existing model folder nor a Hugging Face model id "
                            "(name or owner/name); give one of those or 'builtin:" + role + "'")


def _check_data_dir(spec: ExperimentSpec, layers: list[tuple[str, Any]]) -> None:
    problem = missing_benchmark_file(spec.eval)
    if problem is not None:
        raise SpecError(f"{source(layers, ('eval', 'data_dir'))}: eval.data_dir: {problem}")


def _check_lm_eval_tasks(spec: ExperimentSpec, layers: list[tuple[str, Any]]) -> None:
    for i, task in enumerate(spec.eval.tasks):
        if not is_ours(task) and (problem := known_lm_eval_task(task)) is not None:
            raise SpecError(f"{source(layers, ('eval', 'tasks'))}: eval.tasks[{i}]: {problem}")
