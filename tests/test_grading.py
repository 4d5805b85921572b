import pytest

from brts.grading import Grader, IntegerGrader, MathGrader, extract_boxed


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


def test_math_grader_counts_a_timeout_as_incorrect(monkeypatch: pytest.MonkeyPatch) -> None:
    import math_verify
    from math_verify.errors import TimeoutException

    def slow_verify(*args: object, **kwargs: object) -> bool:
        raise TimeoutException("Timeout during comparison")

    monkeypatch.setattr(math_verify, "verify", slow_verify)
    grader = MathGrader(timeout_s=1)
    assert not grader.grade("\\boxed{1}", "1")
    assert grader.timeouts == 1
