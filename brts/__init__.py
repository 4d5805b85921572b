"""brts: on-policy distillation with Best-of-N teacher rollout selection."""

import os

# MKL's strict reproducibility mode: its matrix products give the same bits on any thread count, so CPU jobs may
# use the cores that are free (brts.cpu) without changing a result. Read by MKL at its first call, so set here,
# before torch is imported.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

__version__ = "0.1.0"
