"""lm-eval's results and sample log of one task -> the contract's summary entry and per-sample rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brts.evaluation.metrics import grader_statistics, problem_grader_statistics
from brts.spec.catalog import is_ours
from brts.spec.task import BOXED, AnswerFormat

# The files of an evaluation folder that readers (reports, `brts eval`) open; brts.evaluation.evaluate writes them.
SUMMARY_FILE, PROBLEMS_FILE, COMMANDS_FILE = "summary.json", "problems.csv", "lm_eval_command.txt"
GRADER_FILE = "grader.csv"  # per task and problem, the grader statistics of its k samples
PROBLEM_COLUMNS = ("task", "problem_id", "sample", "correct", "extracted", "response_tokens")
OUR_FILTER = "boxed"  # the filter's name in our task YAMLs, whatever the answer format it reads
_NOT_METRICS = {"alias", "name", "sample_len", "samples"}


def primary_metric(task: str, task_results: dict[str, Any]) -> str:
    """`avg@k,boxed` for our tasks; for a built-in task its first reported metric (e.g. `exact_match,strict-match`)."""
    if is_ours(task):
        return f"avg@k,{OUR_FILTER}"
    for key, value in task_results.items():
        if key not in _NOT_METRICS and "_stderr" not in key and isinstance(value, (int, float)):
            return str(key)
    raise ValueError(f"lm-eval reported no numeric metric for {task!r}")


def summary_entry(task: str, results: dict[str, Any]) -> dict[str, Any]:
    """The contract's `tasks[TASK]` entry: avg@k, pass@k and maj@k in percent, and the number of problems.

    A built-in task reports its own primary metric as avg@k (and no pass@k or maj@k: its samples are its own).
    """
    own = results["results"][task]
    problems = int(results.get("n-samples", {}).get(task, {}).get("effective", own.get("sample_len", 0)))
    metric = primary_metric(task, own)
    scores: dict[str, float | None]
    if is_ours(task):
        scores = {name: 100.0 * float(own[f"{name},{OUR_FILTER}"]) for name in ("avg@k", "pass@k", "maj@k")}
    else:
        scores = {"avg@k": 100.0 * float(own[metric]), "pass@k": None, "maj@k": None}
    return {**scores, "problems": problems, "metric": metric}


def problem_rows(task: str, samples: list[dict[str, Any]], metric: str,
                 count_tokens: Callable[[str], int]) -> list[dict[str, Any]]:
    """One row per (problem, sample) with the columns of PROBLEM_COLUMNS, in problem order."""
    rows = []
    for entry in sorted(samples, key=lambda e: int(e["doc_id"])):
        doc = entry["doc"] if isinstance(entry.get("doc"), dict) else {}
        problem_id = str(doc.get("id", entry["doc_id"]))
        responses = [str(r) for r in entry["resps"][0]]
        if is_ours(task):
            extracted = entry["filtered_resps"][0]
            correct = entry["correct"]
        else:  # a built-in task: its per-problem metric, on each of its samples
            filtered = entry["filtered_resps"][0]
            extracted = filtered if isinstance(filtered, list) else [filtered] * len(responses)
            correct = [entry[metric.split(",")[0]]] * len(responses)
        for j, response in enumerate(responses):
            answer = extracted[j] if j < len(extracted) else None
            rows.append({
                "task": task, "problem_id": problem_id, "sample": j, "correct": int(bool(correct[j])),
                "extracted": "" if answer is None else str(answer), "response_tokens": count_tokens(response),
            })
    return rows


STATISTICS = ("solved_none", "solved_all", "format_errors", "response_tokens", "distinct_4gram")
GRADER_COLUMNS = ("task", "problem_id", *STATISTICS)


def _by_problem(samples: list[dict[str, Any]], rows: list[dict[str, Any]],
                ) -> list[tuple[str, list[bool], list[str], list[int]]]:
    """Per problem in `problem_rows`' order: its id, and its samples' grades, texts and token counts (the texts
    from lm-eval's sample log, grades and counts from the task's per-sample rows)."""
    out, start = [], 0
    for entry in sorted(samples, key=lambda e: int(e["doc_id"])):
        k = len(entry["resps"][0])
        mine = rows[start : start + k]
        start += k
        texts = [str(r) for r in entry["resps"][0]]
        out.append((str(mine[0]["problem_id"]), [bool(int(r["correct"])) for r in mine], texts,
                    [int(r["response_tokens"]) for r in mine]))
    return out


def _in_units(task: str, stats: dict[str, float]) -> dict[str, Any]:
    """Shares in percent, the length in tokens; no format errors for a built-in task (it asks for no `\\boxed{}`)."""
    out: dict[str, Any] = {name: 100.0 * value for name, value in stats.items()}
    out["response_tokens"] = stats["response_tokens"]
    if not is_ours(task):
        out["format_errors"] = None
    return out


def statistics_entry(task: str, samples: list[dict[str, Any]], rows: list[dict[str, Any]],
                     answer_format: AnswerFormat = BOXED) -> dict[str, Any]:
    """The authors' grader statistics of one task (brts.evaluation.metrics.grader_statistics), shares in percent,
    the mean response length in tokens: from lm-eval's sample log (texts) and the task's per-sample rows (grades
    and token counts) in the order `problem_rows` writes them. A built-in task has no format errors (it asks
    for no `\\boxed{}`)."""
    if not samples:
        return dict.fromkeys(STATISTICS)
    problems = _by_problem(samples, rows)
    stats = grader_statistics([p[1] for p in problems], [p[2] for p in problems], [p[3] for p in problems],
                              answer_format)
    return _in_units(task, stats)


def grader_rows(task: str, samples: list[dict[str, Any]], rows: list[dict[str, Any]],
                answer_format: AnswerFormat = BOXED) -> list[dict[str, Any]]:
    """One row per problem with the columns of GRADER_COLUMNS: its share of the task's grader statistics
    (brts.evaluation.metrics.problem_grader_statistics) in the units of `statistics_entry`, whose values are
    these rows' means (every problem has k samples)."""
    return [{"task": task, "problem_id": pid,
             **_in_units(task, problem_grader_statistics(correct, texts, tokens, answer_format))}
            for pid, correct, texts, tokens in _by_problem(samples, rows)]
