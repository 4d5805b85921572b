"""Verifiable tasks behind one protocol."""

from brts.tasks.base import Problem, Task
from brts.tasks.synthetic import SyntheticTask

__all__ = ["Problem", "SyntheticTask", "Task"]
