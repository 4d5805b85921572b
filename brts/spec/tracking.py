"""The `tracking` section: which experiment trackers (through accelerate's tracking API) follow each run.

Not part of any run id: a tracker sees a run's numbers and changes none of them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from brts.spec.errors import show

# The backends brts configures (run name, tags, where local files go, resuming the same tracker run); the
# names are accelerate's (`Accelerator(log_with=...)`), and so is each client.
BACKENDS = ("tensorboard", "mlflow", "wandb")


def _check_backend(value: str) -> str:
    if value not in BACKENDS:
        raise PydanticCustomError("tracking_backend", "unknown tracker {got}; expected one of: {known}",
                                  {"got": show(value), "known": ", ".join(BACKENDS)})
    return value


Backend = Annotated[str, AfterValidator(_check_backend)]


class TrackingSpec(BaseModel):
    """`backends`: the trackers each run reports to (none: metrics.jsonl only). `project`: the W&B project and
    MLflow experiment (default: the experiment's name). `tags`: added to every run's own (run id, arm, seed,
    experiment)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backends: tuple[Backend, ...] = ()
    project: str | None = Field(None, min_length=1, description="W&B project / MLflow experiment; default: the "
                                                                "experiment's name")
    tags: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.backends)
