"""Specs: the typed data a user writes (experiment specs and their `eval` section, the names of the evaluation
tasks brts ships), read from YAML files (`extends`, `--set`) and validated once, with one-line errors.

`experiment` holds the models; `load` reads a spec file into them (`load_spec`); `evaluation` the `eval` section;
`catalog` the shipped tasks; `files` the reading of spec files shared with sweep specs; `tracking` the experiment
trackers; `errors` the one-line messages; `warnings` what a
valid spec probably did not mean. The rest of brts
imports the names below from `brts.spec` and trusts what it gets.
"""

from brts.spec.errors import SpecError
from brts.spec.evaluation import EvalSpec
from brts.spec.experiment import (
    BUILTIN_MODELS,
    DEFAULT_BUILD_SEED,
    MEMORY_ONLY_TRAIN_FIELDS,
    STORE_FOLDERS,
    ArmSpec,
    ExperimentSpec,
    ModelsSpec,
    Name,
    PoolSpec,
    ProducerSpec,
    ResourcesSpec,
    RolloutSpec,
    RunConfig,
    TrainSpec,
    resolved_yaml,
)
from brts.spec.load import default_search_dirs, list_specs, load_spec
from brts.spec.task import BOXED, HOLDOUT_SPLIT, AnswerFormat, DatasetSpec, TaskSpec
from brts.spec.tracking import TrackingSpec
from brts.spec.warnings import spec_warnings

__all__ = [
    "BOXED", "AnswerFormat", "BUILTIN_MODELS", "DEFAULT_BUILD_SEED", "HOLDOUT_SPLIT", "MEMORY_ONLY_TRAIN_FIELDS", "ArmSpec", "DatasetSpec", "EvalSpec", "ExperimentSpec",
    "ModelsSpec", "Name", "PoolSpec", "ProducerSpec", "STORE_FOLDERS", "ResourcesSpec", "RolloutSpec", "RunConfig", "SpecError", "TaskSpec",
    "TrackingSpec", "TrainSpec", "default_search_dirs", "list_specs", "load_spec", "resolved_yaml", "spec_warnings",
]
