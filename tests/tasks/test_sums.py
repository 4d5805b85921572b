"""The sums task: pools disjoint and fixed by the text, deterministic from the seed, gold answers right, the prompt
asks for the format, the hint is a silent key whose mention is a leak; its lm-eval rows carry training's prompt."""

from __future__ import annotations

import json
import re

import pytest

from brts.evaluation.data import task_data, write_task_folder
from brts.evaluation.hooks import FORMAT_FILE, answer_format_beside, task_prompt
from brts.spec import EvalSpec, TaskSpec
from brts.tasks.registry import make_task
from brts.tasks.sums import SPLIT, pool_of

SPEC = TaskSpec(name="sums", answer_format="last_number", max_operand=9)


def test_pools_are_disjoint_cover_every_problem_and_follow_the_seed():
    task = make_task(SPEC)
    train, validation, test = task.train_problems(), task.validation_problems(SPLIT), task.eval_problems(SPLIT)
    texts = [{p.problem for p in pool} for pool in (train, validation, test)]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert sum(map(len, texts)) == 4 * 9 * 9 and min(map(len, texts)) > 30
    assert all(pool_of(p.problem) == "test" for p in test)
    assert [p.id for p in make_task(SPEC).train_problems()] == [p.id for p in train]
    other = make_task(SPEC.model_copy(update={"seed": 1})).train_problems()
    assert [p.id for p in other] != [p.id for p in train] and {p.id for p in other} == {p.id for p in train}


def test_gold_answers_are_the_sums_of_the_addends():
    for problem in make_task(SPEC).train_problems():
        a, b = map(int, re.search(r"/(\d+)\+(\d+)$", problem.id).groups())
        assert problem.answer == str(a + b) and str(a) in problem.problem and str(b) in problem.problem


def test_the_hint_is_a_key_and_mentioning_it_is_a_leak():
    task = make_task(SPEC)
    problem = task.validation_problems(SPLIT)[0]
    hinted = task.prompt(problem, hint=problem.answer)
    assert f"verification key is given: {problem.answer}" in hinted
    assert hinted.endswith("end your answer with the final number.")
    assert task.leaks("The verification key says 7, so 7.", "7") and not task.leaks("3 + 4 = 7", "7")
    with pytest.raises(KeyError, match="sums"):
        task.eval_problems("easy")


def test_lm_eval_rows_carry_the_training_prompt_and_the_folder_its_format(tmp_path):
    task = make_task(SPEC)
    data = task_data("brts_sums", EvalSpec(tasks=["brts_sums"]), SPEC)
    rows = [json.loads(line) for line in data.rows]
    assert [r["id"] for r in rows] == [p.id for p in task.eval_problems(SPLIT)]
    assert task_prompt(rows[0]) == task.prompt(task.eval_problems(SPLIT)[0])
    write_task_folder(tmp_path / "include", data, k=2)
    assert (tmp_path / "include" / FORMAT_FILE).is_file()
    assert answer_format_beside(tmp_path / "include") == SPEC.answer_format
    boxed = task_data("brts_sums", EvalSpec(tasks=["brts_sums"]), TaskSpec(name="sums"))
    write_task_folder(tmp_path / "boxed", boxed, k=2)
    assert not (tmp_path / "boxed" / FORMAT_FILE).exists()
    assert boxed.digest != data.digest  # the prompt asks for another format: other rows, another cache key
