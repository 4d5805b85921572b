"""The GPU check script's CPU path (tiny random Qwen2 models, HF backend): every part but vLLM and CUDA."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_with_tiny_models():
    done = subprocess.run(["bash", str(SCRIPT), "--size", "tiny", "--backend", "hf", "--steps", "2",
                           "--max-new-tokens", "16", "--prompts", "4"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for arm in ("opd", "brts"):
        assert f"{arm} step 2:" in out
    table = out[out.index("arm     setup s"):]
    assert table.count("\n") >= 3 and "device: cpu; backend: hf" in table


def test_gpu_check_refuses_vllm_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--backend vllm needs a GPU" in done.stderr
