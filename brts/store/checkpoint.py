"""Atomic training checkpoints: model, optimiser, every RNG state, step and running counters."""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

KEEP_LAST = 2


@dataclass
class TrainState:
    """What a resumed run needs besides the weights: where it was and what it has counted so far."""

    step: int = 0
    counters: dict[str, float] | None = None


def _step_dir(root: Path, step: int) -> Path:
    return root / f"step_{step:06d}"


def save(root: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState) -> Path:
    """Write the checkpoint for `state.step` atomically (temp folder, then rename) and prune old ones."""
    root.mkdir(parents=True, exist_ok=True)
    final = _step_dir(root, state.step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    payload: dict[str, Any] = {
        "step": state.step,
        "counters": state.counters or {},
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
    }
    torch.save(payload, tmp / "checkpoint.pt")
    with open(tmp / "checkpoint.pt", "rb") as fh:
        os.fsync(fh.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(root.glob("step_*"))[:-KEEP_LAST]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete(root: Path) -> list[Path]:
    """The complete checkpoint folders, oldest first."""
    return sorted(p for p in root.glob("step_*") if (p / "checkpoint.pt").exists()) if root.exists() else []


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    done = complete(root)
    return done[-1] if done else None


def read(path: Path) -> dict[str, Any]:
    """A checkpoint's saved states, read whole (nothing applied yet); raises whatever torch raises on a damaged
    file (a truncated, empty or garbled checkpoint.pt)."""
    payload = torch.load(path / "checkpoint.pt", weights_only=False)
    if not isinstance(payload, dict) or not {"step", "model", "optimizer", "rng"} <= set(payload):
        raise ValueError(f"{path / 'checkpoint.pt'} is not a brts checkpoint")
    return payload


def read_into(path: Path, payloads: dict[Path, dict[str, Any]]) -> str | None:
    """Read a checkpoint into `payloads[path]`; why it cannot be read (one line), or None when it can."""
    try:
        payloads[path] = read(path)
    except Exception as exc:  # torch raises many kinds on a damaged file; any means "not this one"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}"
    return None


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         payload: dict[str, Any] | None = None) -> TrainState:
    """Restore weights, optimiser and RNG states in place (from `payload` when it was read already); return the
    step and counters."""
    payload = payload if payload is not None else read(path)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"])
    random.setstate(payload["rng"]["python"])
    np.random.set_state(payload["rng"]["numpy"])
    return TrainState(step=int(payload["step"]), counters=dict(payload["counters"]))
