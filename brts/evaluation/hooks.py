"""The functions our lm-eval task YAMLs call (through `tasks/utils.py`): data loading, prompts, answer
extraction and scoring. They run inside lm-eval, from `brts` or from the plain `lm_eval` CLI alike."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from brts.evaluation.metrics import problem_metrics
from brts.spec.catalog import REQUIRED_FIELDS, SOURCES, HubDataset
from brts.spec.task import BOXED, BOXED_INSTRUCTION, AnswerFormat
from brts.tasks.grading import Grader, IntegerGrader, MathGrader, extract_answer
from brts.tasks.sources import TaskDataError, answer_text, load_hub, read_jsonl
from brts.tasks.synthetic import format_prompt

MATH_INSTRUCTION = BOXED_INSTRUCTION
DATA_DIR_ENV = "BRTS_DATA_DIR"
# Beside the task YAMLs of an evaluation: the task's answer format as JSON (absent: `boxed`).
FORMAT_FILE = "answer_format.json"


@lru_cache(maxsize=8)
def answer_format_beside(folder: Path) -> AnswerFormat:
    """The answer format an evaluation's task folder was written with (FORMAT_FILE), `boxed` when it has none."""
    path = folder / FORMAT_FILE
    return AnswerFormat.model_validate_json(path.read_text()) if path.is_file() else BOXED


def resolve_data_dir(task: str, data_dir: str | None, beside: Path | None) -> Path | None:
    """The folder a task reads `<source>.jsonl` from: `data_dir` (lm-eval `--metadata`), else a `data/` folder
    beside the task YAMLs that holds the file (a frozen evaluation folder), else `$BRTS_DATA_DIR`, else None
    (the HF hub)."""
    name = SOURCES[task].name
    if data_dir:
        return Path(data_dir).expanduser()
    if beside is not None and (beside / f"{name}.jsonl").is_file():
        return beside
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else None


def read_rows(path: Path, task: str) -> list[dict[str, str]]:
    """The `{"id", "problem", "answer"}` rows of a local JSONL file (answers and ids as text)."""
    if not path.is_file():
        where = "folder" if not path.parent.is_dir() else "file"
        missing = path.parent if where == "folder" else path
        raise TaskDataError(f"{task}: data {where} {missing} not found; give a folder with {path.name} "
                            f"(eval.data_dir or ${DATA_DIR_ENV}) or leave both unset to use the copies packaged with brts")
    rows = []
    for number, row in read_jsonl(path, task):
        missing_fields = [f for f in REQUIRED_FIELDS if f not in row]
        if missing_fields:
            raise TaskDataError(f"{task}: {path}: line {number} lacks field(s) {', '.join(missing_fields)}; "
                                f"every row needs {', '.join(REQUIRED_FIELDS)}")
        rows.append({"id": str(row["id"]), "problem": str(row["problem"]), "answer": answer_text(row["answer"]),
                     **({"prompt": str(row["prompt"])} if "prompt" in row else {})})
    if not rows:
        raise TaskDataError(f"{task}: {path} holds no problems")
    return rows


def hub_rows(task: str, hub: HubDataset) -> list[dict[str, str]]:
    """The rows of a task's public HF hub dataset, renamed to `id`, `problem`, `answer`."""
    table = load_hub(hub.path, hub.split, task, f"give a local folder with {SOURCES[task].name}.jsonl through "
                                                f"eval.data_dir or ${DATA_DIR_ENV}")
    fields = [f for f in (hub.problem, hub.answer, hub.id, "url" if hub.url_contains else None) if f]
    missing = [f for f in fields if f not in table.column_names]
    if missing:
        raise TaskDataError(f"{task}: {hub.path} has no field(s) {', '.join(missing)} (it has "
                            f"{', '.join(table.column_names)}); give a local JSONL folder instead")
    rows = []
    for i, row in enumerate(table):
        if hub.url_contains and hub.url_contains not in str(row["url"]):
            continue
        rows.append({"id": str(row[hub.id]) if hub.id else f"{SOURCES[task].name}-{i:03d}",
                     "problem": str(row[hub.problem]), "answer": answer_text(row[hub.answer])})
    return rows


def load_docs(brts_task: str, data_dir: str | None = None, beside: Path | None = None, **_: Any) -> Any:
    """lm-eval `custom_dataset`: a DatasetDict with one `test` split of `{"id", "problem", "answer"}` rows.

    lm-eval passes the task's `dataset_kwargs` (`brts_task`) and the run's `--metadata` (`data_dir`, and
    whatever else it carries, ignored here); `tasks/utils.py` adds `beside`, the `data/` folder next to it.
    """
    import datasets

    source = SOURCES[brts_task]
    folder = resolve_data_dir(brts_task, data_dir, beside)
    if folder is not None:
        rows = read_rows(folder / f"{source.name}.jsonl", brts_task)
    elif source.hub is not None:
        rows = hub_rows(brts_task, source.hub)
    else:
        raise TaskDataError(f"{brts_task}: no data folder given; `brts` writes synthetic_*.jsonl into the "
                            f"evaluation folder's tasks/data/, or pass --metadata '{{\"data_dir\": ...}}'")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def synthetic_prompt(doc: dict[str, str]) -> str:
    """The synthetic task's prompt (`Q:7 +3 *2   ...` and a newline), exactly as in training."""
    return format_prompt(doc["problem"])


def math_prompt(doc: dict[str, str], answer_format: AnswerFormat = BOXED) -> str:
    """The paper's evaluation prompt, `<problem> <the format's instruction>` (for `boxed`: `Please reason step by
    step, and put your final answer within \\boxed{}.`)."""
    return f"{doc['problem']} {answer_format.prompt_instruction}"


def task_prompt(doc: dict[str, str]) -> str:
    """A generated task's prompt, frozen with its row exactly as training builds it."""
    return doc["prompt"]


def extract_answers(resps: list[list[str]], docs: list[dict[str, str]],
                    answer_format: AnswerFormat = BOXED) -> list[list[str | None]]:
    """lm-eval filter: each sample's answer in the task's format (None when it has none)."""
    return [[extract_answer(r, answer_format) for r in samples] for samples in resps]


_GRADERS: dict[tuple[str, AnswerFormat], Grader] = {}


def reset_graders() -> None:
    """Fresh graders (and timeout counts) for the next task."""
    _GRADERS.clear()


def _grader(name: str, answer_format: AnswerFormat) -> Grader:
    if (name, answer_format) not in _GRADERS:
        made = IntegerGrader(answer_format) if name == "integer" else MathGrader(answer_format=answer_format)
        _GRADERS[(name, answer_format)] = made
    return _GRADERS[(name, answer_format)]


def _process(doc: dict[str, str], extracted: list[str | None], grader: Grader) -> dict[str, Any]:
    correct = [answer is not None and grader.equivalent(answer, doc["answer"]) for answer in extracted]
    return {**problem_metrics(extracted, correct), "correct": [int(c) for c in correct]}


def process_synthetic(doc: dict[str, str], results: list[list[str | None]],
                      answer_format: AnswerFormat = BOXED) -> dict[str, Any]:
    """lm-eval `process_results` of the generated tasks (the synthetic splits, sums): exact integer match."""
    return _process(doc, results[0], _grader("integer", answer_format))


def process_math(doc: dict[str, str], results: list[list[str | None]],
                 answer_format: AnswerFormat = BOXED) -> dict[str, Any]:
    """lm-eval `process_results` of the math benchmarks: math-verify under a time limit."""
    return _process(doc, results[0], _grader("math_verify", answer_format))


def sample_mean(items: list[list[int]]) -> float:
    """lm-eval aggregation of the per-sample `correct` lists: the fraction of all samples graded correct."""
    flat = [c for item in items for c in item]
    return sum(flat) / len(flat) if flat else 0.0
