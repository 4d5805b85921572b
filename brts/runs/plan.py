"""Planning: an experiment spec becomes arms x seeds runs, each with its resolved config and content-hashed id.

`plan` is the one place a run's config is built: an experiment's arms, a sweep trial (an experiment spec with
one arm whose `set` carries the sampled values), the bench's configurations and the GPU check all get theirs here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

import brts
from brts.models.builtin import builtin_identity
from brts.spec import ExperimentSpec, PoolSpec, ResourcesSpec, RunConfig, TrackingSpec

# Bump when the meaning of a resolved config changes without its fields changing, so old run folders are not reused.
# What each format meant: docs/LOG.md ("Run formats").
RUN_FORMAT = 5

# Where a run's folder lives in the store: an experiment's runs, or a sweep's trials (brts.store knows the paths).
Kind = Literal["experiment", "sweep"]


@dataclass(frozen=True)
class PlannedRun:
    experiment: str  # the experiment's (or sweep's) name: a label, not part of the run id
    arm: str
    seed: int
    config: RunConfig
    run_id: str
    pool: PoolSpec = field(default_factory=PoolSpec)  # how teacher samples are shared; not part of the run id
    # What the run asks of its machine; not in the run id (it does not change results).
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    kind: Kind = "experiment"
    # Which experiment trackers follow the run; not in the run id (a tracker changes no result).
    tracking: TrackingSpec = field(default_factory=TrackingSpec)


def run_id(config: RunConfig) -> str:
    """12 hex digits of sha256 over the canonical JSON of the config, brts.__version__ and RUN_FORMAT.

    Labels (experiment name, arm name) are not part of it: equal configs share a run id wherever they come from;
    nor are settings that bound memory without changing results (RunConfig.results_dump).
    Of `eval`, only what training reads is (EvalSpec.training_view): the final evaluation is cached apart, so
    changing k or the task list re-evaluates a finished run instead of training it again.
    A config with a `builtin:` model adds what those models are (`builtin_identity`: the shipped set's digest, or
    the recipe's for another build seed), so re-shipped models or a changed recipe train new runs.
    """
    data = config.results_dump()
    data["eval"] = config.eval.training_view()
    payload = {"brts": brts.__version__, "format": RUN_FORMAT, "config": data}
    builtin = builtin_identity(config.models)
    if builtin is not None:  # absent otherwise: the run ids of configs without built-in models stay as they were
        payload["builtin"] = builtin
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def plan(spec: ExperimentSpec, kind: Kind = "experiment") -> list[PlannedRun]:
    """One run per (arm, seed), arm-major: all seeds of the first arm, then the next arm."""
    runs = []
    for arm in spec.arms:
        method = spec.method_for(arm)
        for seed in spec.seeds:
            config = RunConfig(task=spec.task, models=spec.models, train=spec.train, eval=spec.eval,
                               rollout=spec.rollout, method=method, seed=seed)
            runs.append(PlannedRun(experiment=spec.name, arm=arm.name, seed=seed, config=config,
                                   run_id=run_id(config), pool=spec.pool, resources=spec.resources, kind=kind,
                                   tracking=spec.tracking))
    return runs
