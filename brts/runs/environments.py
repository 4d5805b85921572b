"""The floating-point environments `brts exp repro` emulates on one machine, and running an experiment in one.

Besides the code, a CPU result depends on the kernels torch dispatches to (ATEN_CPU_CAPABILITY: AVX-512, AVX2 or
plain x86), on MKL's code path (MKL_CBWR: the one tuned for this CPU or the generic one every x86 CPU runs) and on
thread counts. torch and MKL read these once, when they start, so each environment runs `brts exp run` in a process
of its own; and since runs are keyed by config, not by environment, each runs in a store of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brts.errors import UserError

# The variables an environment decides: a child gets exactly its environment's, none inherited from this shell.
CONTROLLED = ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Environment:
    """A named environment: variables set before torch starts, and spec overrides (`--set`) that go with them."""

    name: str
    description: str
    variables: Mapping[str, str] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()

    def settings(self) -> str:
        """`MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=avx2 --set train.threads=1`, or `nothing set`."""
        parts = [f"{k}={v}" for k, v in self.variables.items()] + [f"--set {o}" for o in self.overrides]
        return " ".join(parts) or "nothing set"


_MKL_GENERIC = {"MKL_CBWR": "COMPATIBLE"}
_AVX2 = {"ATEN_CPU_CAPABILITY": "avx2"}

ENVIRONMENTS = {e.name: e for e in (
    Environment("reference", "this machine as it is (MKL_CBWR=AUTO,STRICT, which brts sets by default)"),
    Environment("mkl-compatible", "MKL's generic code path, as on a CPU MKL does not tune for", _MKL_GENERIC),
    Environment("avx2", "torch's CPU kernels of an AVX2-only CPU", _AVX2),
    Environment("plain-x86", "torch's CPU kernels of a plain x86-64 CPU (no AVX)", {"ATEN_CPU_CAPABILITY": "default"}),
    Environment("avx2-mkl-compatible", "an AVX2-only CPU on MKL's generic code path", {**_AVX2, **_MKL_GENERIC}),
    # train.threads sets torch's threads in every run process: the variables alone would change nothing there.
    Environment("one-thread", "one thread for training and evaluation",
                {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, ("train.threads=1",)),
    Environment("two-threads", "two threads for training and evaluation",
                {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}, ("train.threads=2",)),
)}
DEFAULT_ENVIRONMENTS = ("reference", "avx2-mkl-compatible", "plain-x86")


def resolve(names: Sequence[str] | None) -> list[Environment]:
    """The environments of these names in the order given (duplicates once), at least two; the default set for
    none."""
    chosen = list(dict.fromkeys(names or DEFAULT_ENVIRONMENTS))
    unknown = [n for n in chosen if n not in ENVIRONMENTS]
    if unknown:
        raise UserError(f"--env {unknown[0]}: no such environment; choose from {', '.join(ENVIRONMENTS)}")
    if len(chosen) < 2:
        raise UserError(f"--env {chosen[0]} alone: a comparison needs two environments or more; add --env "
                        f"{'plain-x86' if chosen[0] == 'reference' else 'reference'}")
    return [ENVIRONMENTS[n] for n in chosen]


def reference_of(environments: Sequence[Environment]) -> Environment:
    """The environment the others are measured against: `reference` when chosen, else the first."""
    return next((e for e in environments if e.name == "reference"), environments[0])


def child_environment(environment: Environment, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment of a child in `environment`: `base` (default: this process's) without the
    controlled variables, plus the environment's own; progress as plain lines, unbuffered, for a pipe."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in CONTROLLED}
    return {**env, **environment.variables, "BRTS_PROGRESS": "lines", "PYTHONUNBUFFERED": "1"}


def exp_run_command(name: str, overrides: Sequence[str], environment: Environment, store: Path,
                    workers: int | None = None, quiet: bool = False) -> list[str]:
    """`python -m brts.cli exp run NAME --set ... --store STORE` for one environment (its overrides after the
    user's)."""
    command = [sys.executable, "-m", "brts.cli", "exp", "run", name]
    for item in (*overrides, *environment.overrides):
        command += ["--set", item]
    command += ["--store", str(store)]
    if workers is not None:
        command += ["--workers", str(workers)]
    return command + (["--quiet"] if quiet else [])


_PROBE = "import json, brts.cpu; print(json.dumps(brts.cpu.float_environment()))"


def probe(environment: Environment) -> dict[str, Any]:
    """What torch and MKL chose in a child of `environment` (brts.cpu.float_environment: the kernels' CPU
    capability, MKL_CBWR), so a report can say whether an emulation took; {"error": ...} when the child fails."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], env=child_environment(environment), capture_output=True,
                              text=True, timeout=120, check=False)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {"error": "the probe of torch's CPU capability failed"}


@dataclass
class Launch:
    """How one environment's `brts exp run` ended: its exit status and the last line it printed."""

    returncode: int
    last_line: str


def run_in(environment: Environment, command: Sequence[str], log: Path, on_line: Callable[[str], None],
           grace_s: float = 3.0) -> Launch:
    """Run `command` in `environment`, its output (stdout and stderr) written to `log` and handed to `on_line` line
    by line. Interrupted (KeyboardInterrupt), the child is given `grace_s` to stop on its own (Ctrl-C reaches it
    too), then SIGTERM (which `exp run` takes as Ctrl-C), and the interrupt goes on."""
    log.parent.mkdir(parents=True, exist_ok=True)
    last = ""
    with open(log, "w") as written, subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env=child_environment(environment)) as child:
        try:
            assert child.stdout is not None
            for raw in child.stdout:
                line = raw.rstrip("\n")
                written.write(raw)
                written.flush()
                last = line.strip() or last
                on_line(line)
            return Launch(child.wait(), last)
        except KeyboardInterrupt:
            try:
                child.wait(grace_s)
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGTERM)
            written.writelines(child.stdout or ())  # what it said while it stopped
            child.wait()
            raise
