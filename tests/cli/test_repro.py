"""`brts exp repro` end to end on the tiny models: two environments, each its own process and store, one table;
a failed environment in one line and exit status 1; usage errors in one line and exit status 2."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from brts.cli import app
from brts.runs import environments
from tests.conftest import tiny_spec_text

runner = CliRunner()
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_repro_runs_each_environment_in_its_store_and_compares_their_tables(tmp_path, tiny_models, monkeypatch):
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(tiny_spec_text(tiny_models).replace("arms: [opd, brts]", "arms: [opd]"))
    store = tmp_path / "store"
    args = ["exp", "repro", str(spec), "--store", str(store), "--set", "train.steps=2", "--quiet"]
    result = runner.invoke(app, [*args, "--env", "reference", "--env", "mkl-compatible"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for env in ("reference", "mkl-compatible"):
        records = [json.loads(p.read_text()) for p in (store / "repro" / env / "tiny").glob("*/record.json")]
        assert [r["status"] for r in records] == ["finished"], env
        assert "1 ran here" in (store / "repro" / f"{env}.log").read_text()
    assert "[2/2] mkl-compatible: MKL_CBWR=COMPATIBLE (torch CPU kernels" in result.output
    table = result.output[result.output.index("tiny: final avg@k"):]
    header = next(line for line in table.splitlines() if "spread" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "arm", "task", "reference", "mkl-compatible", "spread", "±CI", "≤ CI", "verdict"]
    assert "teacher (reference)" in table and "reproducible within 8 points" in table
    rows = (store / "repro" / "tiny.csv").read_text().splitlines()
    assert rows[0].startswith("kind,arm,task,seeds,reference,mkl-compatible,spread,half_width,")
    assert len(rows) == 1 + 3 * 3  # opd, the teacher and the starting student on the three synthetic tasks
    data = json.loads((store / "repro" / "tiny.json").read_text())
    assert data["ok"] is True and [e["exit_status"] for e in data["environments"]] == [0, 0]
    assert data["environments"][1]["float_environment"]["MKL_CBWR"] == "COMPATIBLE"

    # Again, with avx2 whose `exp run` fails at once: reference's run is reused, avx2 has no rows, exit 1.
    real = environments.exp_run_command

    def failing(name, overrides, environment, *rest, **options):
        if environment.name == "avx2":
            return [sys.executable, "-c", "print('warming up'); print('error: no luck'); raise SystemExit(2)"]
        return real(name, overrides, environment, *rest, **options)

    monkeypatch.setattr(environments, "exp_run_command", failing)
    again = runner.invoke(app, [*args, "--env", "reference", "--env", "avx2"], catch_exceptions=False)
    assert again.exit_code == 1, again.output
    assert "1 cached" in (store / "repro" / "reference.log").read_text()
    failed = [line for line in again.output.splitlines() if line.startswith("failed")]
    assert len(failed) == 1 and failed[0].startswith("failed environment avx2: `brts exp run` exited with status 2 "
                                                     "after ")
    assert failed[0].endswith(f"s: error: no luck (its output: {store / 'repro' / 'avx2.log'})")
    assert "Traceback" not in again.output
    assert "incomplete: 9 of 9 rows have no result at the reference's seeds in avx2" in again.output
    assert "missing (avx2)" in again.output and "not a pass: `brts exp run` failed in avx2" in again.output


@pytest.mark.parametrize(("args", "message"), [
    (["--env", "avx512"], "error: --env avx512: no such environment; choose from reference, mkl-compatible"),
    (["--env", "reference"], "error: --env reference alone: a comparison needs two environments or more"),
    (["--set", "train.steps=many"], "train.steps"),
])
def test_usage_errors_are_one_line_exit_2_nothing_run(tmp_path, args, message):
    spec = tmp_path / "plain.yaml"
    spec.write_text("arms: [opd]\nseeds: [0]\n")
    result = runner.invoke(app, ["exp", "repro", str(spec), "--store", str(tmp_path / "store"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert not (tmp_path / "store").exists()
