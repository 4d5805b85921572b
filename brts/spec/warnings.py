"""Warnings about a valid experiment spec that is probably not what its author wants (the CLI prints them, one line
each; nothing stops)."""

from __future__ import annotations

from pathlib import Path

from brts.spec.catalog import SOURCES, display_name
from brts.spec.experiment import ExperimentSpec


def spec_warnings(spec: ExperimentSpec) -> list[str]:
    """Lines about a valid spec that is probably not what its author wants; the CLI prints them, nothing stops."""
    out = []
    for split, data in spec.task.eval_sets.items():
        stem = Path(data.path).name.removesuffix(".jsonl").removesuffix(".json").lower()
        for task in spec.eval.tasks:
            source = SOURCES.get(task)
            hub = source.hub.path.lower() if source is not None and source.hub is not None else None
            names = {display_name(task).lower(), *((source.name.lower(),) if source is not None else ())}
            if split.lower() in names or stem in names or data.path.lower() == hub:
                out.append(f"task.eval_sets.{split} validates on {task}, which eval.tasks also reports as the final "
                           "test: whatever is chosen from the validation curves is then chosen on the test problems; "
                           "validate on held-out training problems instead (task.validation_holdout: 200)")
                break
    return out
