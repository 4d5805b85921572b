"""Shared fixtures: a tiny built-in model pair (seconds to build) and specs that use it."""

from __future__ import annotations

from pathlib import Path

import pytest

from brts.models.recipe import BuildSettings, BuiltModels, build_default_models
from brts.spec.catalog import PACKAGED_DIR
from tests import worktree

ROOT = Path(__file__).resolve().parents[1]
_STATUS_BEFORE: set[str] | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _STATUS_BEFORE
    _STATUS_BEFORE = worktree.status(ROOT)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The session fails when a test left a file in the working tree (tests write under temporary folders)."""
    left = worktree.left_behind(_STATUS_BEFORE, worktree.status(ROOT))
    if left:
        print(f"\ntests left these in the working tree (write under tmp_path instead): {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """The AIME 2024/2025, AMC 2023 and MATH-500 files packaged with brts ({"id", "problem", "answer"} per line)."""
    return PACKAGED_DIR


TINY = BuildSettings(
    hidden_size=32, layers=1, heads=2, intermediate_size=64, base_steps=20, teacher_steps=20, student_steps=10,
    batch_size=16, warmup_steps=2, eval_problems=4, eval_samples=1,
)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> BuiltModels:
    return build_default_models(tmp_path_factory.mktemp("zoo"), seed=0, progress=False, settings=TINY)


# A job's requests sized for this machine (cluster executors) and a two-step run.
SMALL_JOBS = ("resources.memory_gb=0.5", "resources.cpus=1", "resources.time_min=20", "train.steps=2")


def tiny_spec_text(models: BuiltModels, **extra: str) -> str:
    """A small experiment spec over the tiny models; `extra` adds top-level YAML lines."""
    lines = [
        "name: tiny",
        f"models: {{teacher: {models.teacher_dir}, student: {models.student_dir}}}",
        "train: {steps: 4, prompts_per_step: 2, samples_per_prompt: 2, max_new_tokens: 24, checkpoint_every: 2,"
        " validate_every: 2, validation_problems: 2}",
        "eval: {problems: 2, k: 1, max_new_tokens: 24}",
        "method: {alignment_top_k: 3, aux_weight: 0.5}",
        "arms: [opd, brts]",
        "seeds: [0]",
    ]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def tiny_spec_file(tmp_path: Path, tiny_models: BuiltModels) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_spec_text(tiny_models))
    return path
