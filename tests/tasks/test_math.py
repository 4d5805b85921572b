"""The math task over local JSONL benchmark files (no hub): loading, prompts, hints, leaks, grading, errors."""

from __future__ import annotations

import json

import pytest

from brts.models.tokenizer import build_char_tokenizer
from brts.runs.plan import plan
from brts.spec import DatasetSpec, SpecError, TaskSpec, load_spec
from brts.spec.catalog import PACKAGED_DIR
from brts.tasks.base import prompt_ids
from brts.tasks.math import KEY_MARKER, MathTask, TaskDataError
from brts.tasks.registry import make_task

BENCHMARKS = PACKAGED_DIR
SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


def _task(**extra) -> MathTask:
    spec = TaskSpec(name="math", train=str(BENCHMARKS / "math500.jsonl"), prompt_suffix=SUFFIX,
                    eval_sets={"aime24": str(BENCHMARKS / "aime24.jsonl"), "amc23": str(BENCHMARKS / "amc23.jsonl")},
                    **extra)
    task = make_task(spec)
    assert isinstance(task, MathTask)
    return task


def test_problems_prompts_and_grading_from_jsonl():
    task = _task()
    assert len(task.train_problems()) == 500
    aime = task.eval_problems("aime24")
    assert len(aime) == 30 and len(task.eval_problems("amc23")) == 40
    first = json.loads((BENCHMARKS / "aime24.jsonl").read_text().splitlines()[0])
    assert (aime[0].id, aime[0].answer) == (first["id"], str(first["answer"]))
    assert task.prompt(aime[0]) == f"{first['problem'].strip()} {SUFFIX}"
    assert task.grader.grade(f"so the answer is \\boxed{{{aime[0].answer}}}", aime[0].answer)
    assert not task.grader.grade("\\boxed{-1}", aime[0].answer)
    assert task.validation_problems("aime24") == aime


def test_hinted_prompt_carries_a_silent_key_and_leaks_are_caught():
    task = _task()
    problem = task.eval_problems("aime24")[0]
    hinted = task.prompt(problem, hint=problem.answer)
    assert KEY_MARKER in hinted and problem.answer in hinted and hinted.endswith(SUFFIX)
    assert task.leaks("Using the verification key, the answer is 3", problem.answer)
    assert task.leaks("I will use the key only to check", problem.answer)
    assert not task.leaks(f"Adding up gives \\boxed{{{problem.answer}}}", problem.answer)


def test_chat_template_wraps_the_prompt_when_the_tokenizer_has_one():
    tok = build_char_tokenizer()
    task, plain = _task(), _task(chat_template=False)
    assert prompt_ids(tok, task, "1+2") == list(tok("1+2")["input_ids"])  # no template: plain encoding
    tok.chat_template = "{% for m in messages %}{{ 'Q' + m['content'] }}{% endfor %}{% if add_generation_prompt %}A{% endif %}"
    assert prompt_ids(tok, task, "1+2") == list(tok("Q1+2A", add_special_tokens=False)["input_ids"])
    assert prompt_ids(tok, plain, "1+2") == list(tok("1+2")["input_ids"])


def test_bad_problem_files_give_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1", "answer": "2"}\n')
    with pytest.raises(TaskDataError, match="has no field 'problem'.*problem_field"):
        make_task(TaskSpec(name="math", train=str(bad))).train_problems()
    renamed = TaskSpec(name="math", train=DatasetSpec(path=str(bad), problem_field="question"))
    assert make_task(renamed).train_problems()[0].problem == "1+1"
    with pytest.raises(TaskDataError, match="not found"):
        make_task(TaskSpec(name="math", train=str(tmp_path / "none.jsonl"))).train_problems()
    bad.write_text('{"problem": "1+1", "answer": 2.0}\n[1, 2]\n')  # read by the evaluation's JSONL reader
    with pytest.raises(TaskDataError, match=r"train: .*bad\.jsonl: line 2 is not a JSON object"):
        make_task(TaskSpec(name="math", train=str(bad))).train_problems()


def test_spec_checks_the_math_fields(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text("task: {name: math}\narms: [opd]\nseeds: [0]\n")
    with pytest.raises(SpecError, match=r"task\.train: the math task needs training prompts"):
        load_spec(str(spec))
    math = f"task: {{name: math, train: {BENCHMARKS / 'math500.jsonl'}, eval_sets: {{aime24: x.jsonl, amc23: y.jsonl}}}}\n"
    spec.write_text(math + "arms: [opd]\nseeds: [0]\n")  # eval.tasks left at the synthetic default
    with pytest.raises(SpecError, match=r"eval\.tasks: brts_synthetic_easy, brts_synthetic_medium, "
                                        r"brts_synthetic_hard evaluate the synthetic task, not the math task"):
        load_spec(str(spec))
    spec.write_text(math + "eval: {tasks: [brts_aime24]}\narms: [opd]\nseeds: [0]\n")
    config = plan(load_spec(str(spec)))[0].config
    assert config.validation_splits == ("aime24", "amc23") and config.eval.splits == ()
    spec.write_text("task: {train: x.jsonl}\narms: [opd]\nseeds: [0]\n")
    with pytest.raises(SpecError, match=r"task\.train: train, eval_sets and validation_holdout are for the math task"):
        load_spec(str(spec))
    spec.write_text("models: {student: some-org/some-model}\narms: [opd]\nseeds: [0]\n")
    with pytest.raises(SpecError, match=r"models\.teacher: required when models\.student is a hub model"):
        load_spec(str(spec))


def test_packaged_sets_are_named_brts_colon_set_and_unknown_names_are_refused(tmp_path):
    task = make_task(TaskSpec(name="math", train="brts:math500", eval_sets={"aime25": "brts:aime25"}))
    assert len(task.train_problems()) == 500 and len(task.eval_problems("aime25")) == 30
    first = json.loads((BENCHMARKS / "aime25.jsonl").read_text().splitlines()[0])
    assert (task.eval_problems("aime25")[0].id, task.eval_problems("aime25")[0].answer) == (first["id"], first["answer"])
    spec = tmp_path / "m.yaml"
    spec.write_text("task: {name: math, train: 'brts:math500', eval_sets: {aime: 'brts:aime2024'}}\n"
                    "eval: {tasks: [brts_aime24]}\narms: [opd]\nseeds: [0]\n")
    with pytest.raises(SpecError, match=r"task\.eval_sets\.aime\.path: 'brts:aime2024' is not a set packaged with "
                                        r"brts; the packaged sets are brts:aime24, brts:aime25, brts:amc23, brts:math500"):
        load_spec(str(spec))
