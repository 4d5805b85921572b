"""What makes a run folder verifiable: its manifest (every sealed file's size and SHA-256), the check of each
artefact against it, and the repairs that move what cannot be trusted aside so that running the run again redoes
exactly that work.

    manifest.json    {"format": 1, "files": {"final/model.safetensors": {"size": N, "sha256": "..."}, ...}}

A part (`final`, `checkpoints/step_000040`, `eval`) is sealed right after it is written, by the process that
wrote it, and the manifest is replaced atomically. What a check finds is a `Damage`, one line naming the file.
What the repairs move goes to `<run folder>/.quarantine/<UTC time>/`; nothing is deleted:

- `record.json` unreadable: moved aside; the next invocation writes a new record from the plan and the folder;
- `metrics.jsonl` or `validation.jsonl` with a bad line: moved aside and written again up to the line before
  it; `final/` and the checkpoints past that point go too, so training resumes from the newest checkpoint the
  logs still cover (the steps are repeated exactly: every draw is keyed);
- a checkpoint that is not what was sealed: moved aside (training resumes from the newest intact one);
- `final/` not what was sealed: moved aside (training saves it again from the last checkpoint);
- an `eval/` file not what was sealed: that task's folder (or the combined file) is moved aside and evaluated
  again;
- a part that holds files the manifest does not list (written, then killed before it was sealed): moved aside;
- `manifest.json` unreadable, or missing while `final/`, `eval/` or a checkpoint exists: it, `final/`, `eval/`
  and every checkpoint are moved aside (nothing can be verified; the run is done again and sealed as it goes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brts.store.files import (
    DamagedFile,
    quarantine,
    read_json,
    read_jsonl_intact,
    sha256_file,
    write_json_atomic,
)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
STEP_DIR = re.compile(r"step_(\d+)$")


@dataclass(frozen=True)
class Damage:
    """One damaged or inconsistent artefact: the file, what is wrong, and the part a repair moves aside."""

    path: Path
    what: str
    part: str  # what a repair moves aside ("record.json", "final", "checkpoints/step_000040", "eval/tasks/T", "eval",
    # ...), or "manifest" or "logs" (repaired as the module docstring says)

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"

    @classmethod
    def of(cls, line: str, part: str) -> Damage:
        """From a one-line message `<path>: <what>` (a DamagedFile's, a check's)."""
        path, _, what = line.partition(": ")
        return cls(Path(path), what, part)


class Manifest:
    """A folder's manifest.json (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / MANIFEST

    def files(self) -> dict[str, dict[str, Any]]:
        """Relative path -> {size, sha256}; empty without a manifest. DamagedFile when it cannot be read."""
        data = read_json(self.path, {"files": {}})
        files = data.get("files")
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise DamagedFile(f"{self.path}: not a manifest (no `files` mapping)")
        return files

    def seal(self, part: str) -> None:
        """Record the size and SHA-256 of every file under `part` (a file or folder, relative), replacing what the
        manifest held for it, and forget entries whose files are gone (pruned checkpoints)."""
        try:
            files = self.files()
        except DamagedFile:
            files = {}
        files = {name: entry for name, entry in files.items()
                 if not _under(name, part) and (self.folder / name).is_file()}
        for path in _walk(self.folder / part):
            files[path.relative_to(self.folder).as_posix()] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        write_json_atomic(self.path, {"format": MANIFEST_FORMAT, "files": dict(sorted(files.items()))})

    def prune(self) -> None:
        """Forget the entries whose files are gone (moved aside), keeping every other entry as it is."""
        try:
            files = self.files()
        except DamagedFile:
            return
        kept = {name: entry for name, entry in files.items() if (self.folder / name).is_file()}
        if kept != files:
            write_json_atomic(self.path, {"format": MANIFEST_FORMAT, "files": kept})

    def verify(self, part: str, hashes: bool = True, files: dict[str, dict[str, Any]] | None = None
               ) -> list[Damage]:
        """The sealed files under `part` that are missing, of another size or (with `hashes`) another content
        (`files`: the manifest's entries when already read)."""
        found = []
        for name, entry in (self.files() if files is None else files).items():
            if not _under(name, part):
                continue
            path = self.folder / name
            if not path.is_file():
                found.append(Damage(path, "missing (sealed in manifest.json)", _part_of(name)))
            elif path.stat().st_size != entry.get("size"):
                found.append(Damage(path, f"{path.stat().st_size} bytes, sealed with {entry.get('size')}",
                                    _part_of(name)))
            elif hashes and sha256_file(path) != entry.get("sha256"):
                found.append(Damage(path, "content differs from its SHA-256 in manifest.json", _part_of(name)))
        return found


def _under(name: str, part: str) -> bool:
    """Whether a manifest entry lies in `part` ("" is the whole folder)."""
    return not part or name == part or name.startswith(part.rstrip("/") + "/")


def _walk(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []


def _part_of(name: str) -> str:
    """What a repair moves for a damaged sealed file: a checkpoint's folder, an evaluation task's folder, `final`,
    or the file itself (eval/summary.json and the other combined files are made again from the task folders)."""
    parts = name.split("/")
    if parts[0] == "checkpoints" and len(parts) > 1:
        return "/".join(parts[:2])
    if parts[0] == "eval" and len(parts) > 2 and parts[1] == "tasks":
        return "/".join(parts[:3])
    return "final" if parts[0] == "final" else name


# --- checks ---------------------------------------------------------------------------------------------------


ARTEFACTS = ("final", "checkpoints", "eval")  # the parts a manifest vouches for


def artefact_parts(folder: Path) -> dict[str, list[Path]]:
    """The artefact parts present in a folder (`final`, `checkpoints/step_N`, `eval/tasks/T`, each other file of
    `eval/`), each with its files; a checkpoint folder still being written (`.tmp-*`) is none."""
    parts: dict[str, list[Path]] = {}
    for top in ARTEFACTS:
        for path in _walk(folder / top):
            name = path.relative_to(folder).as_posix()
            if top == "checkpoints" and not STEP_DIR.search(name.split("/")[1] if "/" in name else ""):
                continue
            parts.setdefault(_part_of(name), []).append(path)
    return parts


def sealed_damage(folder: Path, parts: Sequence[str] = ("",), hashes: bool = True, unsealed: bool = True
                  ) -> list[Damage]:
    """What a folder's artefacts hold that cannot be trusted: a manifest that cannot be read, or that is missing
    while an artefact exists (one Damage, part "manifest"); else every part holding files the manifest does not
    list, and every sealed file under `parts` ("" is all) that is missing, of another size or (`hashes`) another
    content. Without `unsealed` (a folder a live process is writing), files not sealed yet are not damage."""
    manifest = Manifest(folder)
    present = artefact_parts(folder) if unsealed else {}
    try:
        files = manifest.files() if manifest.path.exists() else None
    except DamagedFile as exc:
        return [Damage(manifest.path, _reason(exc), "manifest")]
    if files is None:
        if not present:
            return []
        shown = ", ".join(f"{top}/" for top in ARTEFACTS if any(p.split("/")[0] == top for p in present))
        return [Damage(manifest.path, f"missing while {shown} exist, which cannot be verified without it",
                       "manifest")]
    found = [Damage(folder / part, f"{len(loose)} file(s) not sealed in manifest.json (written, not verified)", part)
             for part, paths in sorted(present.items())
             if (loose := [p for p in paths if p.relative_to(folder).as_posix() not in files])]
    for part in parts:
        found += manifest.verify(part, hashes, files)
    return found


def log_damage(folder: Path) -> tuple[list[Damage], int | None]:
    """Bad lines in the metrics and validation logs, and the last training step both still cover (None when both
    are intact): training may resume from a checkpoint at or before it."""
    found, covered = [], None
    for name in ("metrics.jsonl", "validation.jsonl"):
        records, bad = read_jsonl_intact(folder / name)
        if bad is None:
            continue
        found.append(Damage(folder / name, bad, "logs"))
        last = max((int(r["step"]) for r in records), default=-1)
        covered = last if covered is None else min(covered, last)
    return found, covered


def check(folder: Path, hashes: bool = True, unsealed: bool = True) -> list[Damage]:
    """Everything wrong with a run (or reference) folder, one Damage each: an unreadable record, config,
    manifest or log, a missing manifest, files never sealed (unless `unsealed` is off: a live process writes the
    folder), and every sealed file that is not what was sealed (`hashes`: compare contents too, not only sizes;
    checkpoints and `final/` are read whole then)."""
    found: list[Damage] = []
    try:
        read_json(folder / "record.json")
    except DamagedFile as exc:
        found.append(Damage(folder / "record.json", _reason(exc), "record.json"))
    config = folder / "config.yaml"
    if config.is_file() and not _yaml_mapping(config):
        found.append(Damage(config, "not a YAML mapping (written again from the plan by the next run)", "config.yaml"))
    found += log_damage(folder)[0]
    return found + sealed_damage(folder, ("",), hashes, unsealed)


def _reason(exc: DamagedFile) -> str:
    return str(exc).split(": ", 1)[-1]


def _yaml_mapping(path: Path) -> bool:
    import yaml

    try:
        return isinstance(yaml.safe_load(path.read_text()), dict)
    except (yaml.YAMLError, UnicodeDecodeError):
        return False


# --- repairs --------------------------------------------------------------------------------------------------


def repair(folder: Path, damages: Iterable[Damage]) -> list[str]:
    """Move aside what `damages` name (see the module docstring); returns one line per thing moved, naming the
    damaged file and where it went."""
    damages = list(damages)
    lines: list[str] = []
    moved: set[str] = set()

    def move(part: str, why: str) -> None:
        path = folder / part
        if part in moved or not path.exists():
            if part not in moved and why.endswith(": missing (sealed in manifest.json)"):
                moved.add(part)  # sealed, then deleted: its entries go, the work is done again
                lines.append(f"{why}; made again")
            return
        moved.add(part)
        target = quarantine(path, folder)
        what = "it" if why.startswith(f"{path}:") else path.relative_to(folder).as_posix()
        lines.append(f"{why}; moved {what} aside to {target}")

    for damage in damages:
        if damage.part == "manifest":
            move("manifest.json", str(damage))
            for part in ("final", "eval", *(p.relative_to(folder).as_posix()
                                           for p in sorted((folder / "checkpoints").glob("step_*")))):
                move(part, f"{folder / part}: cannot be verified without its manifest")
        elif damage.part != "logs":
            move(damage.part, str(damage))
    if any(d.part == "logs" for d in damages):
        lines += _repair_logs(folder, move)
    if "manifest.json" not in moved and moved - {"record.json", "config.yaml"}:
        Manifest(folder).prune()  # what was moved is no longer sealed; it is sealed again when made again
    if moved - {"record.json", "config.yaml"}:
        _unfinish(folder)
    return lines


def _unfinish(folder: Path) -> None:
    """A record that says finished after part of the run was moved aside says `planned` instead (with when it
    was repaired), so nothing reuses the run before it is done again."""
    path = folder / "record.json"
    try:
        record = read_json(path)
    except DamagedFile:
        return
    if record.get("status") == "finished":
        from datetime import datetime, timezone

        write_json_atomic(path, {**record, "status": "planned", "eval_key": None,
                                 "repaired": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def _repair_logs(folder: Path, move: Any) -> list[str]:
    """Cut the logs back to what both cover, and move aside the checkpoints past it and `final/`."""
    covered = log_damage(folder)[1]
    if covered is None:
        return []
    lines = []
    for name in ("metrics.jsonl", "validation.jsonl"):
        path = folder / name
        if not path.exists():
            continue
        records, _ = read_jsonl_intact(path)
        target = quarantine(path, folder)
        kept = [r for r in records if int(r["step"]) <= covered]
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        lines.append(f"{path}: kept up to step {covered}; the damaged file moved aside to {target}")
    for checkpoint in sorted((folder / "checkpoints").glob("step_*")):
        match = STEP_DIR.search(checkpoint.name)
        if match and int(match.group(1)) > covered:
            move(checkpoint.relative_to(folder).as_posix(), f"{checkpoint}: past step {covered}, the last the logs cover")
    move("final", f"{folder / 'final'}: trained past step {covered}, the last the logs cover")
    return lines
