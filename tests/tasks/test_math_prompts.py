"""The prompt the math task builds asks for exactly one answer format, the one the grader reads."""

from __future__ import annotations

import json

from brts.spec import DatasetSpec, TaskSpec
from brts.tasks.math import DAPO_PREFIX, DAPO_SUFFIX
from brts.tasks.registry import make_task

SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."


def test_dapo_prompts_ask_only_for_the_boxed_answer(tmp_path):
    # A DAPO-Math-17k row as open-r1/DAPO-Math-17k-Processed stores it: its "Answer:" instruction around the problem.
    problem = "Find the sum of all integers $n$ with $n^2 < 10$."
    rows = [{"prompt": f"{DAPO_PREFIX}\n\n{problem}\n\n{DAPO_SUFFIX}", "solution": "0"},
            {"prompt": "  What is $2+2$?  ", "solution": "4"}]
    train = tmp_path / "dapo.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = make_task(TaskSpec(name="math", train=DatasetSpec(path=str(train), problem_field="prompt",
                                                             answer_field="solution"), prompt_suffix=SUFFIX))
    dapo, plain = task.train_problems()
    assert dapo.problem == problem and plain.problem == "What is $2+2$?"
    prompt = task.prompt(dapo)
    assert prompt == f"{problem} {SUFFIX}"
    assert "Answer:" not in prompt and prompt.count("\\boxed{}") == 1
