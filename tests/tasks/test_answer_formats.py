"""Answer formats: where each reads the answer in hand-written responses, the graders and lm-eval's hooks that
follow them, the prompt instruction, the format-error statistic, and the spec's one-line refusals."""

from __future__ import annotations

import pytest

from brts.evaluation import hooks
from brts.evaluation.metrics import has_format_error
from brts.spec import AnswerFormat, SpecError, TaskSpec, load_spec
from brts.tasks.grading import IntegerGrader, MathGrader, extract_answer
from brts.tasks.registry import make_task

BOXED = AnswerFormat()
LAST = AnswerFormat(kind="last_number")
ANSWER_LINE = AnswerFormat.model_validate({"regex": r"Answer:\s*(\S+)", "instruction": "End with 'Answer: N'."})


@pytest.mark.parametrize(("text", "boxed", "last", "regex"), [
    ("3 + 4 = 7, so \\boxed{7}.", "7", "7", None),
    ("First 12, then 30. Answer: 42", None, "42", "42"),
    ("Answer: 5 ... on second thought Answer: 6.", None, "6", "6."),
    ("The total is 1,234.", None, "1234", None),
    ("It is -3.5 degrees", None, "-3.5", None),
    ("\\boxed{12} and then 13 more", "12", "13", None),
    ("no digits at all", None, None, None),
    ("", None, None, None),
])
def test_each_format_reads_its_own_answer(text, boxed, last, regex):
    assert extract_answer(text, BOXED) == boxed
    assert extract_answer(text, LAST) == last
    assert extract_answer(text, ANSWER_LINE) == regex


def test_graders_follow_the_format():
    response = "Mia has 3 and finds 5 more: 3 + 5 = 8. So she has 8 apples."
    assert IntegerGrader(LAST).grade(response, "8")
    assert not IntegerGrader(LAST).grade(response, "5")
    assert not IntegerGrader(BOXED).grade(response, "8")  # no \boxed{}: wrong under the default format
    assert IntegerGrader(BOXED).grade("\\boxed{8}", "8")
    assert IntegerGrader(ANSWER_LINE).grade("3 + 5 = 8\nAnswer: 8", "8")
    assert not IntegerGrader(ANSWER_LINE).grade("3 + 5 = 8", "8")
    assert MathGrader(answer_format=LAST).grade("half of 4 is 2", "2")
    assert IntegerGrader(LAST).version == "1+last_number" and IntegerGrader().version == "1"


def test_lm_eval_hooks_follow_the_format():
    resps = [["so 3 + 5 = 8", "\\boxed{9}", "none"]]
    assert hooks.extract_answers(resps, [{}], LAST) == [["8", "9", None]]
    assert hooks.extract_answers(resps, [{}]) == [[None, "9", None]]
    scored = hooks.process_synthetic({"answer": "8"}, [["8", "9", None]], LAST)
    assert scored["correct"] == [1, 0, 0]
    assert hooks.math_prompt({"problem": "What is 2 + 2?"}, LAST).endswith("end your answer with the final number.")
    assert hooks.math_prompt({"problem": "What is 2 + 2?"}).endswith("within \\boxed{}.")


def test_format_errors_follow_the_format():
    assert has_format_error("the answer is 7") and not has_format_error("\\boxed{7}")
    assert not has_format_error("the answer is 7", LAST) and has_format_error("the answer is seven", LAST)
    assert has_format_error("the answer is 7", ANSWER_LINE) and not has_format_error("Answer: 7", ANSWER_LINE)


def test_the_prompt_instruction_follows_the_format():
    for answer_format, wanted in ((LAST, "end your answer with the final number."),
                                  (BOXED, "within \\boxed{}."), (ANSWER_LINE, "End with 'Answer: N'.")):
        task = make_task(TaskSpec(name="sums", answer_format=answer_format))
        problem = task.train_problems()[0]
        assert task.prompt(problem).endswith(wanted)
        assert task.grader.answer_format == answer_format


@pytest.mark.parametrize(("fmt", "message"), [
    ("{regex: '(a'}", "is not a regular expression"),
    ("{regex: 'Answer: \\S+', instruction: x}", "has 0 capture groups"),
    ("{regex: '(a)(b)', instruction: x}", "has 2 capture groups"),
    ("{regex: 'Answer: (\\S+)'}", "needs an instruction"),
    ("{kind: regex}", "needs a pattern"),
    ("{kind: last_number, pattern: '(x)'}", "needs a pattern and the others take none"),
    ("numbers", "task.answer_format"),
])
def test_a_bad_format_is_one_line_naming_the_field(tmp_path, fmt, message):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ntask: {{name: sums, answer_format: {fmt}}}\neval: {{tasks: [brts_sums]}}\n"
                    "arms: [opd]\nseeds: [0]\n")
    with pytest.raises(SpecError) as caught:
        load_spec(str(path))
    text = str(caught.value)
    assert "\n" not in text and message in text and "answer_format" in text, text


def test_run_ids_change_with_the_format_and_stay_for_specs_that_do_not_set_it(tmp_path):
    from brts.runs.plan import plan

    path = tmp_path / "s.yaml"
    path.write_text("name: s\narms: [opd]\nseeds: [0]\n")
    config = plan(load_spec(str(path)))[0].config
    assert "answer_format" not in config.results_dump()["task"] and "max_operand" not in config.results_dump()["task"]
    other = plan(load_spec(str(path), ["task.answer_format=last_number"]))[0]
    assert other.config.results_dump()["task"]["answer_format"]["kind"] == "last_number"
    assert other.run_id != plan(load_spec(str(path)))[0].run_id


def test_a_generated_task_of_another_task_is_refused(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\ntask: {name: sums}\narms: [opd]\nseeds: [0]\n")  # eval.tasks: the synthetic splits
    with pytest.raises(SpecError, match="evaluate the synthetic task, not the sums task"):
        load_spec(str(path))
