"""Reference rows: the teacher and the starting student, evaluated once per experiment like any run.

`<store>/<experiment>/reference/<role>/` (role `teacher` or `student_start`) holds a `record.json`
(`role`, `model`, `model_path`, `status`, `eval` = {TASK: avg@k in percent}, `eval_key`, `error`) and the same
`eval/` folder a run has. A reference whose model and evaluation settings are unchanged is not evaluated again.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from brts.evaluation.evaluate import evaluate_model, model_fingerprint, settings_digest
from brts.models.load import resolve_model
from brts.runs import integrity
from brts.spec import BOXED, ExperimentSpec
from brts.store import REFERENCE_ROLES, RunFolder, RunLocked, RunStore, now

ROLES = dict(zip(REFERENCE_ROLES, ("teacher", "student"), strict=True))  # role -> the spec's models field
Log = Callable[[str], None]


def evaluate_references(spec: ExperimentSpec, store: RunStore, log: Log | None = None,
                        wait: bool = True) -> dict[str, dict[str, Any]]:
    """The record of each reference model, evaluated now if its cache does not match; failures are recorded.
    One that another process is evaluating is waited for (`wait`), else returned with status "running"."""
    return {role: _evaluate_reference(spec, store, role, log, wait) for role in ROLES}


def _evaluate_reference(spec: ExperimentSpec, store: RunStore, role: str, log: Log | None,
                        wait: bool) -> dict[str, Any]:
    folder = store.reference(spec.name, role)
    while True:
        try:
            return _evaluate_locked(spec, folder, role, log)
        except RunLocked:
            if not wait:
                return {**folder.record(), "status": "running"}  # another process is evaluating it
        if log is not None:
            log(f"the reference {role} is being evaluated by another process; waiting for it")
        folder.wait_unlocked()


def _evaluate_locked(spec: ExperimentSpec, folder: RunFolder, role: str, log: Log | None) -> dict[str, Any]:
    """Evaluate the reference under its lock unless its cache matches; raises RunLocked when another holds it."""
    folder.path.mkdir(parents=True, exist_ok=True)
    name = getattr(spec.models, ROLES[role])
    model = resolve_model(name, spec.models)
    key = f"{settings_digest(spec.eval)}:{model_fingerprint(model)}:{spec.task.seed}{_task_part(spec)}"
    with folder.lock():
        record = folder.record()
        damages = integrity.untrusted(folder)
        if not damages and record.get("status") == "finished" and record.get("eval_key") == key:
            return record
        integrity.repair(folder, damages)  # a damaged record or evaluation file is moved aside, made again
        if log is not None:
            log(f"evaluating the reference {role} ({name})")
        return _evaluate(spec, folder, role, name, model, key)


def _task_part(spec: ExperimentSpec) -> str:
    """What else of the task the evaluation reads (absent for the synthetic task in `boxed`: keys stay as they were)."""
    task = spec.task
    part = "" if task.answer_format == BOXED else f":{task.answer_format.model_dump_json()}"
    return part + (f":max_operand={task.max_operand}" if task.name == "sums" else "")


def _evaluate(spec: ExperimentSpec, folder: RunFolder, role: str, name: str, model: str, key: str) -> dict[str, Any]:
    folder.update_record(role=role, model=name, model_path=model, status="running", error=None, started=now())
    started = time.perf_counter()
    try:
        evaluation = evaluate_model(model, spec.eval, folder.eval_dir, task_spec=spec.task, quiet=True)
        folder.seal("eval")
    except Exception as exc:  # recorded and shown; the experiment's table goes on without this row
        line = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        folder.write_error(traceback.format_exc())
        return folder.update_record(status="failed", error=line, ended=now())
    return folder.update_record(status="finished", eval=evaluation.avg_at_k(), eval_key=key, ended=now(),
                                eval_seconds=round(time.perf_counter() - started, 2))
