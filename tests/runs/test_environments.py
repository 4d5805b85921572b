"""The named floating-point environments of `brts exp repro`: their variables, the child's environment and command,
and running a command in one (output to a log, exit status, last line)."""

from __future__ import annotations

import sys

import pytest

from brts.errors import UserError
from brts.runs.environments import (
    CONTROLLED,
    DEFAULT_ENVIRONMENTS,
    ENVIRONMENTS,
    child_environment,
    exp_run_command,
    reference_of,
    resolve,
    run_in,
)


def test_names_set_the_variables_they_say():
    variables = {name: dict(e.variables) for name, e in ENVIRONMENTS.items()}
    assert variables == {
        "reference": {},
        "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
        "avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
        "plain-x86": {"ATEN_CPU_CAPABILITY": "default"},
        "avx2-mkl-compatible": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"},
        "one-thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        "two-threads": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"},
    }
    assert ENVIRONMENTS["one-thread"].overrides == ("train.threads=1",)
    assert ENVIRONMENTS["two-threads"].overrides == ("train.threads=2",)
    assert all(set(e.variables) <= set(CONTROLLED) for e in ENVIRONMENTS.values())
    assert ENVIRONMENTS["reference"].settings() == "nothing set"
    assert ENVIRONMENTS["one-thread"].settings() == "OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 --set train.threads=1"


def test_resolve_defaults_keeps_order_drops_duplicates_and_refuses_unknown_names():
    assert [e.name for e in resolve(None)] == list(DEFAULT_ENVIRONMENTS) == [
        "reference", "avx2-mkl-compatible", "plain-x86"]
    assert [e.name for e in resolve(["plain-x86", "reference", "plain-x86"])] == ["plain-x86", "reference"]
    with pytest.raises(UserError, match=r"--env avx512: no such environment; choose from reference, "):
        resolve(["reference", "avx512"])
    with pytest.raises(UserError, match=r"--env reference alone: a comparison needs two environments or more"):
        resolve(["reference", "reference"])
    assert reference_of(resolve(["plain-x86", "reference"])).name == "reference"
    assert reference_of(resolve(["avx2", "plain-x86"])).name == "avx2"


def test_a_child_gets_exactly_its_environments_variables():
    shell = {"PATH": "/bin", "ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "4", "MKL_CBWR": "AUTO"}
    reference = child_environment(ENVIRONMENTS["reference"], shell)
    assert reference["PATH"] == "/bin" and not set(CONTROLLED) & set(reference)
    assert reference["BRTS_PROGRESS"] == "lines"
    compatible = child_environment(ENVIRONMENTS["mkl-compatible"], shell)
    assert compatible["MKL_CBWR"] == "COMPATIBLE" and "ATEN_CPU_CAPABILITY" not in compatible


def test_exp_run_command_puts_the_environments_overrides_after_the_users(tmp_path):
    command = exp_run_command("smoke", ["seeds=[0,1]"], ENVIRONMENTS["two-threads"], tmp_path / "s", workers=2)
    assert command[:6] == [sys.executable, "-m", "brts.cli", "exp", "run", "smoke"]
    assert command[6:] == ["--set", "seeds=[0,1]", "--set", "train.threads=2", "--store", str(tmp_path / "s"),
                           "--workers", "2"]
    assert exp_run_command("smoke", [], ENVIRONMENTS["reference"], tmp_path, quiet=True)[-1] == "--quiet"


def test_run_in_logs_the_output_and_returns_the_status_and_last_line(tmp_path):
    script = "import os; print('MKL_CBWR', os.environ.get('MKL_CBWR')); print('last words'); print(); raise SystemExit(3)"
    lines: list[str] = []
    log = tmp_path / "repro" / "mkl-compatible.log"
    launch = run_in(ENVIRONMENTS["mkl-compatible"], [sys.executable, "-c", script], log, lines.append)
    assert launch.returncode == 3 and launch.last_line == "last words"
    assert lines == ["MKL_CBWR COMPATIBLE", "last words", ""]
    assert log.read_text() == "MKL_CBWR COMPATIBLE\nlast words\n\n"
