"""The evaluation tasks `brts` ships (lm-eval task names; their YAMLs are in brts/evaluation/tasks) and where each
one's problems come from: what a spec's `eval.tasks` can name.

Every task reads rows `{"id", "problem", "answer"}`: from `<data dir>/<source>.jsonl` when a data folder is
given, else (benchmarks) from the copies packaged with brts (`benchmarks/`, with a SHA-256 manifest) or, with
`eval.data_source: hub`, from its public dataset on the Hugging Face hub, renamed to those fields.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# The packaged copies are package data of brts.evaluation; tasks and specs name them too, so the path lives here.
PACKAGED_DIR = Path(__file__).resolve().parent.parent / "evaluation" / "benchmarks"  # aime24.jsonl, ..., manifest.json
PREFIX = "brts_"
SYNTHETIC_PREFIX = "brts_synthetic_"
REQUIRED_FIELDS = ("id", "problem", "answer")


@dataclass(frozen=True)
class HubDataset:
    """A public dataset on the Hugging Face hub and the names of its fields."""

    path: str
    split: str
    problem: str
    answer: str
    id: str | None = None
    url_contains: str | None = None  # keep only rows whose `url` field contains this


@dataclass(frozen=True)
class TaskSource:
    """Where one of our tasks reads its problems: `<data dir>/<name>.jsonl`, else `hub` when it has one."""

    name: str
    hub: HubDataset | None = None
    grader: str = "math_verify"
    generated_by: tuple[str, str] | None = None  # (task, split): rows written from that brts task's generator


SOURCES: dict[str, TaskSource] = {
    "brts_aime24": TaskSource("aime24", HubDataset("Maxwell-Jia/AIME_2024", "train", "Problem", "Answer", "ID")),
    "brts_aime25": TaskSource("aime25", HubDataset("math-ai/aime25", "test", "problem", "answer", "id")),
    # The AIMO AMC set holds AMC 2022 and 2023; its 2023 rows (by their AoPS url) are AMC 2023's 40 problems.
    "brts_amc23": TaskSource(
        "amc23", HubDataset("AI-MO/aimo-validation-amc", "train", "problem", "answer", "id", url_contains="2023")
    ),
    "brts_math500": TaskSource("math500", HubDataset("HuggingFaceH4/MATH-500", "test", "problem", "answer", "unique_id")),
    **{
        f"{SYNTHETIC_PREFIX}{split}": TaskSource(f"synthetic_{split}", None, grader="integer",
                                                 generated_by=("synthetic", split))
        for split in ("easy", "medium", "hard")
    },
    "brts_sums": TaskSource("sums", None, grader="integer", generated_by=("sums", "sums")),
}
OUR_TASKS = tuple(SOURCES)
DEFAULT_TASKS = tuple(name for name in OUR_TASKS if name.startswith(SYNTHETIC_PREFIX))


PACKAGED_SETS = tuple(source.name for source in SOURCES.values() if source.hub is not None)
PACKAGED_PREFIX = "brts:"  # a math task's problem set `brts:aime24` is the packaged copy


def packaged_file(name: str) -> Path:
    """The packaged copy of a benchmark set (`aime24` -> .../benchmarks/aime24.jsonl)."""
    return PACKAGED_DIR / f"{name}.jsonl"


def is_ours(task: str) -> bool:
    return task.startswith(PREFIX)


def synthetic_split(task: str) -> str | None:
    """`easy` for `brts_synthetic_easy`; None for any other task."""
    return task.removeprefix(SYNTHETIC_PREFIX) if task.startswith(SYNTHETIC_PREFIX) else None


def generated_task(task: str) -> tuple[str, str] | None:
    """(the brts task, its split) whose generator writes an evaluation task's problems (`brts_synthetic_easy`:
    synthetic, easy; `brts_sums`: sums, sums); None for a benchmark or an lm-eval task."""
    source = SOURCES.get(task)
    return source.generated_by if source is not None else None


def display_name(task: str) -> str:
    """The short name tables show: `easy` for `brts_synthetic_easy`, `aime24` for `brts_aime24`."""
    return task.removeprefix(SYNTHETIC_PREFIX).removeprefix(PREFIX)


def quiet_lm_eval() -> None:
    """lm-eval logs every override it applies at WARNING; brts reports what matters itself."""
    logging.getLogger("lm_eval").setLevel(logging.ERROR)


@lru_cache(maxsize=1)
def _lm_eval_task_names() -> frozenset[str]:
    quiet_lm_eval()
    from lm_eval.tasks import TaskManager

    return frozenset(TaskManager(include_defaults=True).all_tasks)  # seconds: it indexes every task YAML


def known_lm_eval_task(name: str) -> str | None:
    """None when lm-eval knows `name`; else a one-line reason with the closest names it knows."""
    known = _lm_eval_task_names()
    if name in known:
        return None
    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    return f"unknown task {name!r}: not a brts task and not one of lm-eval's {len(known)} tasks{hint}"
