"""Tasks by spec name."""

from __future__ import annotations

from brts.spec import TaskSpec
from brts.tasks.base import Task
from brts.tasks.synthetic import SyntheticTask


def make_task(spec: TaskSpec) -> Task:
    """The task a spec names, built deterministically from its seed."""
    if spec.name == "synthetic":
        return SyntheticTask(seed=spec.seed, answer_format=spec.answer_format)
    if spec.name == "sums":
        from brts.tasks.sums import SumsTask

        return SumsTask(spec)
    if spec.name == "math":
        from brts.tasks.math import MathTask

        return MathTask(spec)
    raise KeyError(spec.name)  # unreachable: TaskSpec validates the name
