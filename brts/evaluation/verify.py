"""Whether an evaluation folder's files agree with each other: `problems.csv` against `summary.json` (its tasks,
their number of problems, k samples each, and avg@k recomputed from the rows). A manifest says whether a file is
the one written; this says whether the files could have been written together, also where no manifest was kept.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from brts.evaluation.parse import PROBLEM_COLUMNS, PROBLEMS_FILE, SUMMARY_FILE

_TOLERANCE = 1e-6  # percentage points: avg@k from the rows and from lm-eval differ by float rounding only


def check_eval(folder: Path) -> list[str]:
    """Every disagreement in an `eval/` folder, one line each naming the file (empty when none, or when the
    folder holds no `problems.csv`)."""
    table, summary_path = folder / PROBLEMS_FILE, folder / SUMMARY_FILE
    if not table.exists():
        return []
    summary, problem = _summary(summary_path)
    if problem is not None:
        return [problem]
    rows, problem = _rows(table)
    if problem is not None:
        return [problem]
    return _agreement(table, summary_path, summary, rows)


def _summary(path: Path) -> tuple[dict[str, Any], str | None]:
    if not path.exists():
        return {}, f"{path}: missing beside {PROBLEMS_FILE}"
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {}, f"{path}: not JSON ({getattr(exc, 'msg', None) or exc.reason})"
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict) or not isinstance(data.get("k"), int):
        return {}, f"{path}: not an evaluation summary (no `k` and `tasks`)"
    return data, None


def _rows(path: Path) -> tuple[list[dict[str, str]], str | None]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != list(PROBLEM_COLUMNS):
                return [], f"{path}: header {header} is not {list(PROBLEM_COLUMNS)}"
            rows = []
            for number, values in enumerate(reader, 2):
                if len(values) != len(PROBLEM_COLUMNS):
                    return [], f"{path}: line {number} has {len(values)} fields, not {len(PROBLEM_COLUMNS)}"
                row = dict(zip(PROBLEM_COLUMNS, values, strict=True))
                if row["correct"] not in ("0", "1") or not row["sample"].isdigit():
                    return [], f"{path}: line {number} is not a graded sample (correct {row['correct']!r}, " \
                               f"sample {row['sample']!r})"
                rows.append(row)
    except (UnicodeDecodeError, csv.Error) as exc:
        return [], f"{path}: not a CSV table ({exc})"
    return rows, None


def _agreement(table: Path, summary_path: Path, summary: dict[str, Any],
               rows: list[dict[str, str]]) -> list[str]:
    k, tasks = summary["k"], summary["tasks"]
    by_task: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_task[row["task"]][row["problem_id"]].append(int(row["correct"]))
    problems = []
    if set(by_task) != set(tasks):
        problems.append(f"{table}: holds tasks {sorted(by_task)}, {summary_path.name} {sorted(tasks)}")
    for task in sorted(set(by_task) & set(tasks)):
        entry, samples = tasks[task], by_task[task]
        if not isinstance(entry, dict):
            problems.append(f"{summary_path}: tasks.{task} is not a mapping")
            continue
        counts, task_k = {len(v) for v in samples.values()}, entry.get("k", k)
        if entry.get("problems") is not None and len(samples) != entry["problems"]:
            problems.append(f"{table}: {task} has {len(samples)} problems, {summary_path.name} says "
                            f"{entry['problems']}")
        elif counts != {task_k}:
            problems.append(f"{table}: {task} has {sorted(counts)} samples per problem, {summary_path.name} says "
                            f"k = {task_k}")
        elif isinstance(entry.get("avg@k"), (int, float)):
            avg = 100.0 * sum(map(sum, samples.values())) / sum(map(len, samples.values()))
            if not math.isclose(avg, float(entry["avg@k"]), abs_tol=_TOLERANCE):
                problems.append(f"{table}: {task} rows give avg@k {avg:.4f}, {summary_path.name} says "
                                f"{float(entry['avg@k']):.4f}")
    return problems
