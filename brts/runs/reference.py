"""Reference rows: the teacher and the starting student, evaluated once per experiment like any run.

`<store>/<experiment>/reference/<role>/` (role `teacher` or `student_start`) holds a `record.json`
(`role`, `model`, `model_path`, `status`, `eval` = {TASK: avg@k in percent}, `eval_key`, `error`) and the same
`eval/` folder a run has. A reference whose model and evaluation settings are unchanged is not evaluated again.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from brts.evaluation.evaluate import evaluate_model, model_fingerprint, settings_digest
from brts.runs.run import resolve_model
from brts.runs.store import RunFolder, now
from brts.spec import ExperimentSpec

ROLES = {"teacher": "teacher", "student_start": "student"}  # role -> the spec's models field


def reference_folder(store_root: Path, experiment: str, role: str) -> RunFolder:
    return RunFolder(store_root / experiment / "reference" / role)


def evaluate_references(spec: ExperimentSpec, store_root: Path,
                        log: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """The record of each reference model, evaluated now if its cache does not match; failures are recorded."""
    return {role: _evaluate_reference(spec, store_root, role, log) for role in ROLES}


def _evaluate_reference(spec: ExperimentSpec, store_root: Path, role: str,
                        log: Callable[[str], None] | None) -> dict[str, Any]:
    folder = reference_folder(store_root, spec.name, role)
    folder.path.mkdir(parents=True, exist_ok=True)
    name = getattr(spec.models, ROLES[role])
    model = resolve_model(name, spec.models)
    key = f"{settings_digest(spec.eval)}:{model_fingerprint(model)}:{spec.task.seed}"
    lock = FileLock(str(folder.path / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return {**folder.record(), "status": "running"}  # another process is evaluating it
    try:
        record = folder.record()
        if record.get("status") == "finished" and record.get("eval_key") == key:
            return record
        if log is not None:
            log(f"evaluating the reference {role} ({name})")
        folder.update_record(role=role, model=name, model_path=model, status="running", error=None, started=now())
        started = time.perf_counter()
        try:
            evaluation = evaluate_model(model, spec.eval, folder.path / "eval", task_seed=spec.task.seed, quiet=True)
        except Exception as exc:  # recorded and shown; the experiment's table goes on without this row
            line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            (folder.path / "error.log").write_text(traceback.format_exc())
            return folder.update_record(status="failed", error=line, ended=now())
        return folder.update_record(status="finished", eval=evaluation.avg_at_k(), eval_key=key, ended=now(),
                                    eval_seconds=round(time.perf_counter() - started, 2))
    finally:
        lock.release()
