"""lm-eval's output -> the contract's summary entry and per-sample rows, for our tasks and a built-in one."""

from __future__ import annotations

import pytest

from brts.evaluation.evaluate import check_settings
from brts.evaluation.parse import grader_rows, primary_metric, problem_rows, statistics_entry, summary_entry
from brts.evaluation.runner import EvaluationError
from brts.spec.evaluation import EvalSpec


def chars(text: str) -> int:
    return len(text)


def test_our_task_reports_percentages_and_one_row_per_sample() -> None:
    results = {"results": {"brts_aime24": {"alias": "brts_aime24", "avg@k,boxed": 0.25, "pass@k,boxed": 0.5,
                                           "maj@k,boxed": 0.5, "avg@k_stderr,boxed": 0.1, "correct,boxed": 0.25}},
               "n-samples": {"brts_aime24": {"original": 30, "effective": 2}}}
    assert summary_entry("brts_aime24", results) == {
        "avg@k": 25.0, "pass@k": 50.0, "maj@k": 50.0, "problems": 2, "metric": "avg@k,boxed"}
    samples = [
        {"doc_id": 1, "doc": {"id": "aime24-001"}, "resps": [["x \\boxed{3}", "y"]], "filtered_resps": [["3", None]],
         "correct": [0, 0]},
        {"doc_id": 0, "doc": {"id": "aime24-000"}, "resps": [["\\boxed{204}", "\\boxed{7}"]],
         "filtered_resps": [["204", "7"]], "correct": [1, 0]},
    ]
    rows = problem_rows("brts_aime24", samples, "avg@k,boxed", chars)
    assert [(r["problem_id"], r["sample"], r["correct"], r["extracted"]) for r in rows] == [
        ("aime24-000", 0, 1, "204"), ("aime24-000", 1, 0, "7"), ("aime24-001", 0, 0, "3"), ("aime24-001", 1, 0, "")]
    assert rows[0]["response_tokens"] == len("\\boxed{204}")


def test_a_built_in_task_reports_its_own_first_metric() -> None:
    # The shape lm-eval gives gsm8k: two filters of exact_match, one response per problem.
    own = {"alias": "gsm8k", "exact_match,strict-match": 0.5, "exact_match_stderr,strict-match": 0.3,
           "exact_match,flexible-extract": 1.0, "exact_match_stderr,flexible-extract": 0.0}
    assert primary_metric("gsm8k", own) == "exact_match,strict-match"
    entry = summary_entry("gsm8k", {"results": {"gsm8k": own}, "n-samples": {"gsm8k": {"effective": 2}}})
    assert entry == {"avg@k": 50.0, "pass@k": None, "maj@k": None, "problems": 2, "metric": "exact_match,strict-match"}
    samples = [{"doc_id": 0, "doc": {"question": "q"}, "resps": [["#### 4"]], "filtered_resps": ["4"],
                "exact_match": 1.0},
               {"doc_id": 1, "doc": {"question": "r"}, "resps": [["#### 5"]], "filtered_resps": ["5"],
                "exact_match": 0.0}]
    rows = problem_rows("gsm8k", samples, entry["metric"], chars)
    assert [(r["problem_id"], r["sample"], r["correct"], r["extracted"]) for r in rows] == [
        ("0", 0, 1, "4"), ("1", 0, 0, "5")]


@pytest.mark.slow
def test_a_task_name_known_neither_to_brts_nor_to_lm_eval_is_refused() -> None:
    # Slow: looking a name up builds lm-eval's index of its ~15000 tasks.
    with pytest.raises(EvaluationError, match="unknown task 'gsm9k'.*did you mean 'gsm8k'"):
        check_settings(EvalSpec(tasks=("brts_synthetic_easy", "gsm9k")))
    check_settings(EvalSpec(tasks=("gsm8k",)))  # a built-in name passes


def test_grader_statistics_of_a_task_in_percent() -> None:
    samples = [
        {"doc_id": 1, "resps": [["no answer here at all", "\\boxed{3}"]], "filtered_resps": [[None, "3"]],
         "correct": [0, 1]},
        {"doc_id": 0, "resps": [["a b c d \\boxed{204}", "a b c d \\boxed{204}"]], "filtered_resps": [["204", "204"]],
         "correct": [1, 1]},
    ]
    rows = problem_rows("brts_aime24", samples, "avg@k,boxed", chars)
    stats = statistics_entry("brts_aime24", samples, rows)
    # problem 0: solved by both samples, 2 distinct of 4 four-grams; problem 1: one format error, 2 of 2.
    assert stats == pytest.approx({"solved_none": 0.0, "solved_all": 50.0, "format_errors": 25.0,
                                   "response_tokens": (19 + 19 + 21 + 9) / 4, "distinct_4gram": 75.0})
    unsolved = [{"doc_id": 0, "resps": [["x", "y"]], "filtered_resps": [[None, None]], "correct": [0, 0]}]
    none = statistics_entry("brts_aime24", unsolved, problem_rows("brts_aime24", unsolved, "avg@k,boxed", chars))
    assert (none["solved_none"], none["solved_all"], none["format_errors"]) == (100.0, 0.0, 100.0)


def test_grader_rows_give_each_problems_share_and_average_to_the_task_entry() -> None:
    samples = [
        {"doc_id": 1, "resps": [["no answer here at all", "\\boxed{3}"]], "filtered_resps": [[None, "3"]],
         "correct": [0, 1], "doc": {"id": "p-one"}},
        {"doc_id": 0, "resps": [["a b c d \\boxed{204}", "a b c d \\boxed{204}"]],
         "filtered_resps": [["204", "204"]], "correct": [1, 1], "doc": {"id": "p-zero"}},
    ]
    rows = problem_rows("brts_aime24", samples, "avg@k,boxed", chars)
    per_problem = grader_rows("brts_aime24", samples, rows)
    assert per_problem == [
        {"task": "brts_aime24", "problem_id": "p-zero", "solved_none": 0.0, "solved_all": 100.0,
         "format_errors": 0.0, "response_tokens": 19.0, "distinct_4gram": 50.0},
        {"task": "brts_aime24", "problem_id": "p-one", "solved_none": 0.0, "solved_all": 0.0,
         "format_errors": 50.0, "response_tokens": 15.0, "distinct_4gram": 100.0},
    ]
    entry = statistics_entry("brts_aime24", samples, rows)
    for name, value in entry.items():
        assert value == pytest.approx(sum(r[name] for r in per_problem) / 2)
    built_in = grader_rows("gsm8k", samples, rows)
    assert [r["format_errors"] for r in built_in] == [None, None]
