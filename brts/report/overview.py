"""The arm x task table `brts exp run` prints when it ends: the report's table (brts.report.tables) of the
experiment's planned runs and its reference models, read from their folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from brts.report.aggregate import read_references, read_runs
from brts.report.tables import arm_task_table


def experiment_table(store: Path, experiment: str, folders: Sequence[Path], arms: Sequence[str]) -> pd.DataFrame:
    """One row per arm x task of the finished runs in `folders` (avg@k in percent, its interval, `seed_sd`,
    `seeds`) and per reference model x task (`kind` "reference"); empty when nothing is finished yet."""
    data = read_runs(folders)
    _, references, _ = read_references(store, experiment)
    samples = data.samples
    if samples.empty and references.empty:
        return pd.DataFrame(columns=["kind", "arm", "task", "avg", "seed_sd", "seeds"])
    if samples.empty:  # only reference rows
        samples = references.iloc[:0]
    return arm_task_table(samples, arms, baseline=None, references=references)
