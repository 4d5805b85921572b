"""`brts models build`: the recipe's build beside the shipped models (bits and accuracies), and `--ship`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from brts.cli import app
from brts.models.recipe import BuiltModels
from tests.models.test_builtin import a_build_of_the_shipped


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BuiltModels:
    """What `build_default_models` returns: here the shipped bits, their student's weights changed."""
    built = a_build_of_the_shipped(tmp_path)
    data = bytearray((built.student_dir / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (built.student_dir / "model.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr("brts.models.recipe.build_default_models", lambda *args, **kwargs: built)
    monkeypatch.setenv("COLUMNS", "200")
    return built


def test_build_compares_with_the_shipped_models(build: BuiltModels) -> None:
    result = CliRunner().invoke(app, ["models", "build", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "built" in result.output and "shipped" in result.output
    teacher_easy = next(line for line in result.output.splitlines() if "teacher" in line and " easy " in line)
    assert teacher_easy.count(f"{100 * build.accuracies['teacher/easy']:.1f}") == 2  # built and shipped columns
    assert "teacher: identical bits to the shipped teacher" in result.output
    assert "tokenizer: identical bits to the shipped tokenizer" in result.output
    assert "student: differs from the shipped student" in result.output
    assert "the properties the grid needs (PROPERTIES in brts/models/builtin.py): all met" in result.output


def test_ship_writes_the_build(build: BuiltModels, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = []
    monkeypatch.setattr("brts.models.builtin.ship", lambda built: shipped.append(built) or Path("/x/manifest.json"))
    result = CliRunner().invoke(app, ["models", "build", "--quiet", "--ship"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert shipped == [build] and "shipped: /x" in result.output


def test_another_seed_is_not_compared_and_not_shipped(build: BuiltModels) -> None:
    result = CliRunner().invoke(app, ["models", "build", "--quiet", "--seed", "7"], catch_exceptions=False)
    assert result.exit_code == 0 and "build seed 7 is not the shipped one" in result.output
    assert "identical" not in result.output and "differs" not in result.output
    refused = CliRunner().invoke(app, ["models", "build", "--quiet", "--seed", "7", "--ship"])
    assert refused.exit_code == 2 and "only the default build seed" in refused.output
