"""The GPU check script: its CPU path (tiny random Qwen2 models, HF backend) end to end, and its verdicts."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SCRIPT = SCRIPTS / "gpu_check.sh"
# The script runs `python`: this interpreter's, wherever the tests are started from.
ENV = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPTS / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_with_tiny_models():
    done = subprocess.run(["bash", str(SCRIPT), "--size", "tiny", "--backend", "hf", "--steps", "2",
                           "--max-new-tokens", "16", "--prompts", "4", "--max-peak-gib", "8"],
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for arm in ("opd", "brts"):
        assert f"{arm} step 2:" in out
    table = out[out.index("arm      step s"):].splitlines()
    assert [line.split()[0] for line in table[1:3]] == ["opd", "brts"]
    assert all(line.endswith("pass") for line in table[1:3])
    assert "device: cpu; backend: hf; size: tiny" in table[3]


@pytest.mark.slow
def test_memory_estimate_is_within_30_percent_of_the_long_vocabulary_peak(tmp_path):
    # Qwen2's 151,936-token vocabulary on a tiny body, one step, 64 new tokens: the whole process's peak, and its
    # peak while the keyed decode loop draws (the teacher's 32 Tier-1 rows in brts, the student's 16 in opd).
    out = tmp_path / "results.json"
    done = subprocess.run(["bash", str(SCRIPT), "--size", "tiny-qwen-vocab", "--backend", "hf", "--steps", "1",
                           "--max-new-tokens", "64", "--json", str(out)], capture_output=True, text=True,
                          timeout=1800, env={**ENV, "GPU_CHECK_TIMEOUT": "1700"})
    assert done.returncode == 0, done.stderr[-2000:]
    for result in json.loads(out.read_text()):
        assert abs(result["estimate_gib"] - result["peak_gib"]) <= 0.3 * result["peak_gib"], result
        assert abs(result["sampling_estimate_gib"] - result["sampling_peak_gib"]) <= 0.3 * result["sampling_peak_gib"]
        assert result["sampling_peak_gib"] <= result["peak_gib"]
        assert result["unstreamed_gib"] > result["estimate_gib"]


def test_a_verdict_fails_an_arm_that_broke_or_passed_its_memory_limit():
    verdict = _module().verdict
    args = argparse.Namespace(max_peak_gib=3.0)
    assert verdict({"finite": True, "peak_gib": 2.5}, args) == "pass"
    assert verdict({"finite": True, "peak_gib": 3.5}, args) == "FAIL (peak above 3.0 GiB)"
    assert verdict({"finite": False, "peak_gib": 1.0}, args) == "FAIL (a loss is not finite)"
    assert verdict({"error": "exit 1"}, args) == "FAIL (exit 1)"
    assert verdict({"finite": True, "peak_gib": 99.0}, argparse.Namespace(max_peak_gib=None)) == "pass"


def test_gpu_check_refuses_vllm_without_a_gpu_and_a_chunk_below_one():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 2 and "--backend vllm needs a GPU" in done.stderr
    done = subprocess.run(["bash", str(SCRIPT), "--backend", "hf", "--logprob-chunk", "0"], capture_output=True,
                          text=True, timeout=300, env=ENV)
    assert done.returncode == 2 and done.stderr.strip() == "error: --logprob-chunk must be at least 1"
