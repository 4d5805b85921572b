"""The built-in teacher, student and tokenizer as shipped with brts: the same bits on every machine.

`brts/models/shipped/` holds the three `save_pretrained` folders of one build of the recipe (`brts.models.recipe`) and
`manifest.json` (each file's path, size and SHA-256; the build's seed, recipe digest, accuracies and floating-point
environment). A spec's `builtin:*` models with `models.build_seed` equal to the shipped seed load these folders,
verified once per process, and nothing is built; another build seed builds from the recipe on first use (cached
under `$BRTS_CACHE`), as the recipe's kernels make those bits depend on the machine.

After a recipe change a developer re-ships: `brts models build --ship` (builds the default seed, then `ship`),
then updates `PROPERTIES` if the new recipe aims elsewhere, and commits `brts/models/shipped/`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from brts.errors import ModelLoadError, UserError
from brts.spec import BUILTIN_MODELS, ModelsSpec
from brts.store.files import UMASK

if TYPE_CHECKING:
    from brts.models.recipe import BuildSettings, BuiltModels

# brts.models.recipe (torch, transformers) is imported where a model is built or loaded: run ids and the manifest need neither.

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
MANIFEST = "manifest.json"
PARTS = ("tokenizer", "teacher", "student")  # the shipped folders, as BuiltModels names them
MANIFEST_FORMAT = 1
_REINSTALL = "reinstall brts (pip install --force-reinstall brts; in a clone: git checkout -- brts/models/shipped)"


# --- the properties the default grid needs of the pair -----------------------------------------------------

@dataclass(frozen=True)
class Bound:
    """`key`'s accuracy `op` `value`, plus the accuracy of `than` when it names another key."""

    key: str
    op: Literal[">", ">=", "<", "<="]
    value: float
    than: str | None = None
    why: str = ""


# The one place these thresholds live: the shipped models must meet them (tested), and a redesigned recipe changes
# them together with the models it ships. Keys are `brts.models.recipe.measure`'s.
PROPERTIES = (
    Bound("teacher/easy", ">=", 0.9, why="the teacher knows the task"),
    Bound("teacher/hard", ">=", 0.5, why="the teacher is right on hard chains often enough to teach them"),
    Bound("teacher/hard", "<=", 0.75, why="wrong often enough that choosing among N samples matters"),
    Bound("teacher/hard_any_correct", ">", 0.1, than="teacher/hard", why="one of N samples is right more often"),
    Bound("teacher_hint/hard", ">", 0.2, than="teacher/hard", why="Tier 2 has something to recover"),
    Bound("teacher_hint/hard_leak_rate", ">", 0.0, why="the leak filter has something to drop"),
    Bound("student/easy", "<=", -0.2, than="teacher/easy", why="room to learn on every split"),
    Bound("student/medium", "<=", -0.25, than="teacher/medium", why="room to learn on every split"),
    Bound("student/hard", "<=", -0.25, than="teacher/hard", why="room to learn on every split"),
)
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def property_violations(accuracies: Mapping[str, float], tolerance: float = 0.0,
                        bounds: tuple[Bound, ...] = PROPERTIES) -> list[str]:
    """One line per bound the accuracies miss (empty when the pair is as the grid needs it); `tolerance` loosens
    every bound by that much (a measurement on fewer problems is noisier)."""
    missed = []
    for b in bounds:
        if b.key not in accuracies or (b.than is not None and b.than not in accuracies):
            missed.append(f"{b.key}: not measured")
            continue
        limit = b.value + (accuracies[b.than] if b.than is not None else 0.0)
        loosened = limit - tolerance if b.op.startswith(">") else limit + tolerance
        if not _OPS[b.op](accuracies[b.key], loosened):
            against = f" ({b.than} {b.value:+.2f})" if b.than is not None else ""
            missed.append(f"{b.key} = {accuracies[b.key]:.3f}, expected {b.op} {limit:.3f}{against}"
                          f"{f' within {tolerance}' if tolerance else ''}: {b.why}")
    return missed


# --- the shipped folders -----------------------------------------------------------------------------------

@cache
def read_manifest(folder: Path = SHIPPED_DIR) -> dict[str, Any]:
    """The shipped set's manifest (read once per process)."""
    path = folder / MANIFEST
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: cannot read the built-in models' manifest ({type(exc).__name__}); "
                             f"{_REINSTALL}") from None


def shipped_seed(folder: Path = SHIPPED_DIR) -> int:
    """The build seed of the shipped models: `models.build_seed` that loads them."""
    return int(read_manifest(folder)["seed"])


def shipped_digest(folder: Path = SHIPPED_DIR) -> str:
    """16 hex digits naming the shipped set: sha256 over its files' paths and SHA-256s."""
    lines = "".join(f"{f['path']}\0{f['sha256']}\n" for f in read_manifest(folder)["files"])
    return hashlib.sha256(lines.encode()).hexdigest()[:16]


def verify(folder: Path = SHIPPED_DIR) -> None:
    """Raise ModelLoadError (one line, naming the file) unless the folder holds exactly the manifest's files."""
    listed = {f["path"]: f for f in read_manifest(folder)["files"]}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    extras = sorted(present - set(listed))
    if extras:  # from_pretrained reads more than weights (an adapter or generation config changes the model)
        raise ModelLoadError(f"{folder / extras[0]}: a file the built-in models were not shipped with; {_REINSTALL}")
    for path, entry in listed.items():
        file = folder / path
        if path not in present:
            raise ModelLoadError(f"{file}: missing from the built-in models; {_REINSTALL}")
        if file.stat().st_size != entry["size"] or _sha256(file) != entry["sha256"]:
            raise ModelLoadError(f"{file}: not the bytes brts shipped (size or SHA-256 differs from {MANIFEST}); "
                                 f"{_REINSTALL}")


_verified: set[Path] = set()


def shipped_models(folder: Path = SHIPPED_DIR) -> BuiltModels:
    """The shipped tokenizer, teacher and student, their files verified against the manifest once per process."""
    from brts.models.recipe import BuiltModels

    if folder not in _verified:
        verify(folder)
        _verified.add(folder)
    manifest = read_manifest(folder)
    return BuiltModels(root=folder, tokenizer_dir=folder / "tokenizer", teacher_dir=folder / "teacher",
                       student_dir=folder / "student", accuracies=dict(manifest["accuracies"]),
                       build_seconds=float(manifest.get("build_seconds", 0.0)))


# --- resolving builtin: ------------------------------------------------------------------------------------

def builtin_models(seed: int, cache_root: Path | None = None, progress: bool = False) -> BuiltModels:
    """The built-in pair of build seed `seed`: the shipped folders for the shipped seed, else built from the
    recipe on first use (cached under `cache_root`)."""
    from brts.models.recipe import build_default_models

    if seed == shipped_seed():
        return shipped_models()
    return build_default_models(cache_root, seed=seed, progress=progress)


def cached_builtin_models(seed: int, cache_root: Path | None = None) -> BuiltModels | None:
    """`builtin_models` when nothing needs building (the shipped seed, or a build already cached), else None."""
    from brts.models.recipe import cached_default_models

    return shipped_models() if seed == shipped_seed() else cached_default_models(cache_root, seed=seed)


def builtin_identity(models: ModelsSpec) -> str | None:
    """What a run's built-in models are, for keys that must change with them (run ids): the shipped set's
    digest, or the recipe's digest for another build seed; None when neither model is built in."""
    if models.teacher not in BUILTIN_MODELS and models.student not in BUILTIN_MODELS:
        return None
    if models.build_seed == shipped_seed():
        return f"shipped:{shipped_digest()}"
    from brts.models.recipe import BuildSettings

    return f"recipe:{BuildSettings(seed=models.build_seed).digest()}"


# --- shipping a build ----------------------------------------------------------------------------------------

def ship(built: BuiltModels, folder: Path = SHIPPED_DIR) -> Path:
    """Write `built` (a build of the current recipe, its `build.json` beside the folders) as the shipped set into
    `folder`, replacing what was there: the three folders and a manifest of their files. Returns the manifest."""
    from brts.models.recipe import RECIPE_VERSION, BuildSettings

    record = json.loads((built.root / "build.json").read_text())
    settings = _settings(record["settings"])
    if record.get("recipe_version") != RECIPE_VERSION or settings != BuildSettings(seed=settings.seed):
        raise UserError(f"{built.root}: not a build of the current recipe (version {RECIPE_VERSION}, default "
                        "settings); ship a fresh `brts models build`")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    staging.chmod(0o777 & ~UMASK)
    try:
        for part in PARTS:
            shutil.copytree(getattr(built, f"{part}_dir"), staging / part)
        files = [{"path": p.relative_to(staging).as_posix(), "size": p.stat().st_size, "sha256": _sha256(p)}
                 for p in sorted(staging.rglob("*")) if p.is_file()]
        for file in staging.rglob("*"):  # readable by all, as package data is (safetensors writes 0600)
            file.chmod((0o777 if file.is_dir() else 0o666) & ~UMASK)
        manifest = {
            "format": MANIFEST_FORMAT,
            "about": "The built-in models brts ships (brts/models/builtin.py): one build of the recipe in "
                     "brts/models/recipe.py; `builtin:*` with models.build_seed = seed loads these files, verified against "
                     "their SHA-256 here.",
            "seed": settings.seed, "recipe_digest": settings.digest(), "recipe_version": RECIPE_VERSION,
            "settings": record["settings"], "accuracies": record["accuracies"],
            "build_seconds": record.get("build_seconds"), "torch": record.get("torch"),
            "float_environment": record.get("float_environment"),
            "files": files,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        old = folder.parent / f".{folder.name}-old"
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    read_manifest.cache_clear()
    _verified.discard(folder)
    return folder / MANIFEST


def compare_with_shipped(built: BuiltModels, folder: Path = SHIPPED_DIR) -> dict[str, bool]:
    """Per part (tokenizer, teacher, student): whether `built` has exactly the shipped files, bit for bit."""
    shipped = {f["path"]: f["sha256"] for f in read_manifest(folder)["files"]}
    same = {}
    for part in PARTS:
        source = getattr(built, f"{part}_dir")
        ours = {f"{part}/{p.relative_to(source).as_posix()}": _sha256(p) for p in source.rglob("*") if p.is_file()}
        same[part] = ours == {k: v for k, v in shipped.items() if k.startswith(f"{part}/")}
    return same


def measure_shipped(problems: int, samples: int, folder: Path = SHIPPED_DIR) -> dict[str, float]:
    """`brts.models.recipe.measure` of the shipped pair on the first `problems` problems per split, `samples` each (the
    build measured 100 x 2)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from brts.models.recipe import measure
    from brts.tasks.synthetic import SyntheticTask

    built = shipped_models(folder)
    settings = dataclasses.replace(_settings(read_manifest(folder)["settings"]), eval_problems=problems,
                                   eval_samples=samples)
    teacher, student = (AutoModelForCausalLM.from_pretrained(d) for d in (built.teacher_dir, built.student_dir))
    tokenizer = AutoTokenizer.from_pretrained(built.tokenizer_dir)
    return measure(teacher, student, tokenizer, SyntheticTask(seed=settings.seed), settings)


def _settings(recorded: Mapping[str, Any]) -> BuildSettings:
    from brts.models.recipe import BuildSettings

    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()}
    return BuildSettings(**values)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
