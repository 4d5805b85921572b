import json
import threading
import time
from pathlib import Path

import pytest

from brts.tasks.grading import (
    Grader,
    GraderTimeoutStorm,
    IntegerGrader,
    MathGrader,
    _VerifyWorker,
    extract_boxed,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{5}", "5"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{{a}{b}}", "{a}{b}"),
        ("\\fbox{7}", "7"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{1} then \\fbox{3}", "3"),
        ("\\fbox{3} then \\boxed{4}", "4"),
        ("\\boxed{}", ""),
        ("no answer here", None),
        ("\\boxed{5", None),
        ("\\boxed{\\frac{1}{2}", None),
        ("\\boxed 5", None),
    ],
)
def test_extract_boxed(text: str, expected: str | None) -> None:
    assert extract_boxed(text) == expected


def test_integer_grader() -> None:
    grader = IntegerGrader()
    assert isinstance(grader, Grader)
    assert grader.grade("1+2=3\n\\boxed{3}", "3")
    assert grader.grade("\\boxed{ 3 }", " 3")
    assert not grader.grade("\\boxed{4}", "3")
    assert not grader.grade("\\boxed{three}", "3")
    assert not grader.grade("3", "3")
    assert (grader.name, grader.version) == ("integer", "1")


@pytest.mark.parametrize("pred", ["0.5", "1/2", "\\frac{2}{4}", "\\frac{1}{2}"])
def test_math_grader_accepts_equivalent_forms(pred: str) -> None:
    assert MathGrader().grade(f"the answer is \\boxed{{{pred}}}", "\\frac{1}{2}")


def test_math_grader_rejects_wrong_and_missing_answers() -> None:
    grader = MathGrader()
    assert isinstance(grader, Grader)
    assert not grader.grade("\\boxed{\\frac{1}{3}}", "\\frac{1}{2}")
    assert not grader.grade("the answer is 1/2", "\\frac{1}{2}")
    assert grader.timeouts == 0
    assert grader.name == "math_verify" and grader.version


def gold(folder: Path, problem_id: str) -> str:
    """The gold answer of one problem in the packaged benchmark files."""
    name = problem_id.rsplit("-", 1)[0]
    for line in (folder / f"{name}.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["id"] == problem_id:
            return str(row["answer"])
    raise KeyError(problem_id)


@pytest.mark.parametrize(
    ("problem_id", "response", "expected"),
    [
        # integers (AIME, AMC)
        ("aime24-000", "The walk takes \\boxed{204} minutes.", True),
        ("aime24-000", "so \\boxed{204.0}", True),
        ("aime24-000", "so \\boxed{205}", False),
        ("amc23-000", "They meet after \\boxed{27} miles", True),
        # fractions, \frac and nested braces (MATH-500)
        ("math500-002", "\\boxed{14/3}", True),
        ("math500-002", "\\boxed{\\dfrac{28}{6}}", True),
        ("math500-002", "\\boxed{\\frac{3}{14}}", False),
        ("math500-073", "area \\boxed{\\frac{\\sqrt{27}}{4}}", True),
        ("math500-000", "\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}", True),
        # negative numbers
        ("math500-016", "\\boxed{-50}", True),
        ("math500-016", "\\boxed{50}", False),
        ("math500-053", "\\boxed{-\\pi/6}", True),
        # no box, two boxes (the last one counts)
        ("aime24-000", "The answer is 204.", False),
        ("aime24-000", "first \\boxed{7}, then after checking \\boxed{204}", True),
        ("aime24-000", "first \\boxed{204}, then after checking \\boxed{7}", False),
    ],
)
def test_math_grader_on_real_benchmark_answers(benchmarks_dir: Path, problem_id: str, response: str,
                                               expected: bool) -> None:
    grader = MathGrader()
    assert grader.grade(response, gold(benchmarks_dir, problem_id)) is expected
    assert grader.timeouts == 0


def test_benchmark_answers_used_above_have_the_forms_named(benchmarks_dir: Path) -> None:
    answers = {pid: gold(benchmarks_dir, pid) for pid in ("aime24-000", "amc23-000", "math500-000", "math500-002",
                                                           "math500-016", "math500-053", "math500-073")}
    assert answers == {
        "aime24-000": "204", "amc23-000": "27", "math500-000": "\\left( 3, \\frac{\\pi}{2} \\right)",
        "math500-002": "\\frac{14}{3}", "math500-016": "-50", "math500-053": "-\\frac{\\pi}{6}",
        "math500-073": "\\frac{3\\sqrt{3}}{4}",
    }


PATHOLOGICAL = "2^{10^{10}} - 2^{10^{10}} + 1"  # sympy expands both powers: minutes of big-integer work


def test_a_pathological_answer_times_out_and_counts_as_incorrect() -> None:
    grader = MathGrader(timeout_s=1)
    started = time.perf_counter()
    assert not grader.grade(f"\\boxed{{{PATHOLOGICAL}}}", "1")
    assert time.perf_counter() - started < 10
    assert grader.timeouts == 1
    assert grader.grade("\\boxed{1}", "1.0")  # the grader still works afterwards


def test_the_time_limit_holds_outside_the_main_thread() -> None:
    grader = MathGrader(timeout_s=1)
    verdicts: list[bool] = []
    thread = threading.Thread(target=lambda: verdicts.append(grader.grade(f"\\boxed{{{PATHOLOGICAL}}}", "1")))
    thread.start()
    thread.join(timeout=20)
    assert verdicts == [False] and grader.timeouts == 1


def test_a_hung_worker_is_killed_and_replaced() -> None:
    worker = _VerifyWorker()
    first = worker._ensure_started().pid
    # A zero budget switches the worker's own timer off: only the kill can stop it.
    assert worker.check("1", PATHOLOGICAL, 0) is None
    assert worker.check("\\frac{1}{2}", "0.5", 5) is True
    assert worker._ensure_started().pid != first
    worker._stop()


def test_a_timeout_storm_is_an_error() -> None:
    grader = MathGrader(timeout_s=0.5, storm_min=2, storm_fraction=0.5)
    assert not grader.grade(f"\\boxed{{{PATHOLOGICAL}}}", "1")
    with pytest.raises(GraderTimeoutStorm, match="timed out on 2 of 2 answers"):
        grader.grade(f"\\boxed{{{PATHOLOGICAL}}}", "2")
