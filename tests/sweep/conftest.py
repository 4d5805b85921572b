"""Sweep fixtures: a sweep spec over the tiny experiment of tests/conftest.py (2 x 2 grid, one seed)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from brts.models.recipe import BuiltModels
from tests.conftest import tiny_spec_text

SWEEP = """\
experiment: tiny.yaml
arm: brts
seeds: [0]
space:
  method:
    teacher_samples: {choices: [2, 4]}
    aux_weight: {low: 0.1, high: 1.0, log: true, grid: [0.1, 0.5]}
sampler: {name: grid}
trials: 4
"""


def write_sweep(folder: Path, models: BuiltModels, text: str = SWEEP, experiment_lines: str = "") -> Path:
    """`folder/tiny.yaml` (the tiny experiment, arms opd and brts) and `folder/sweep.yaml`; returns the sweep."""
    (folder / "tiny.yaml").write_text(tiny_spec_text(models) + experiment_lines)
    path = folder / "sweep.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def tiny_sweep(tmp_path: Path, tiny_models: BuiltModels) -> Path:
    return write_sweep(tmp_path, tiny_models)


def plain_study(store: Path, name: str = "sweep") -> optuna.Study:
    """The sweep's study, opened with plain Optuna (as a user would)."""
    path = store / "sweeps" / name / "study.log"
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))
