import pytest

from brts.tasks.base import Problem, Task
from brts.tasks.synthetic import (
    MAX_OPS,
    SPLIT_OPS,
    SyntheticTask,
    gold_solution,
    leaked_solution,
    n_ops,
    pool_of,
    shortcut_solution,
)


def recompute(expression: str) -> int:
    digits = [int(d) for d in expression[0::2]]
    value = digits[0]
    for op, digit in zip(expression[1::2], digits[1:], strict=True):
        value = {"+": value + digit, "-": value - digit, "*": value * digit}[op] % 10
    return value


def expression(problem: Problem) -> str:
    return problem.problem


@pytest.fixture(scope="module")
def task() -> SyntheticTask:
    return SyntheticTask(seed=0)


def test_is_a_task(task: SyntheticTask) -> None:
    assert isinstance(task, Task)
    assert task.splits == ("easy", "medium", "hard")


def test_is_deterministic_from_the_seed(task: SyntheticTask) -> None:
    again = SyntheticTask(seed=0)
    assert again.train_problems() == task.train_problems()
    for split in task.splits:
        assert again.eval_problems(split) == task.eval_problems(split)
    assert SyntheticTask(seed=1).eval_problems("hard") != task.eval_problems("hard")


def test_sizes_and_difficulties(task: SyntheticTask) -> None:
    train = task.train_problems()
    assert len(train) == 4000
    assert {n_ops(p.problem) for p in train} == set(range(1, MAX_OPS + 1))
    for split, lengths in SPLIT_OPS.items():
        problems = task.eval_problems(split)
        assert len(problems) == 200
        assert {n_ops(p.problem) for p in problems} == set(lengths)
        assert all(p.difficulty == split for p in problems)
    assert len({p.id for p in train}) == len(train)
    for split in SPLIT_OPS:
        validation = {p.problem for p in task.validation_problems(split)}
        assert len(validation) == 100
        assert not validation & {p.problem for p in task.eval_problems(split)}
        assert all(pool_of(e) == "validation" for e in validation)


def test_splits_are_disjoint_across_seeds_and_from_model_building(task: SyntheticTask) -> None:
    other = SyntheticTask(seed=7)
    train = {p.problem for p in task.train_problems()} | {p.problem for p in other.train_problems()}
    evaluation = {p.problem for t in (task, other) for s in t.splits for p in t.eval_problems(s)}
    assert not train & evaluation
    assert all(pool_of(e) == "train" for e in train)
    assert all(pool_of(e) == "eval" for e in evaluation)


def test_answers_are_correct_by_recomputation(task: SyntheticTask) -> None:
    problems = task.train_problems()[:500] + task.eval_problems("hard")
    assert all(int(p.answer) == recompute(p.problem) for p in problems)
    assert task.eval_problems("hard")[0].answer.isdigit()


def test_gold_solution_grades_correct_and_a_wrong_one_incorrect(task: SyntheticTask) -> None:
    for problem in task.eval_problems("hard")[:50]:
        assert task.grader.grade(gold_solution(problem.problem), problem.answer)
        wrong = str((int(problem.answer) + 1) % 10)
        assert not task.grader.grade(shortcut_solution(problem.problem, 2, int(wrong)), problem.answer)
        assert not task.grader.grade(gold_solution(problem.problem).replace("\\boxed", ""), problem.answer)


def test_short_sequences(task: SyntheticTask) -> None:
    longest = max(task.eval_problems("hard"), key=lambda p: len(p.problem))
    assert len(gold_solution(longest.problem)) <= 64
    assert len(task.prompt(longest, hint=longest.answer)) <= 40


def test_prompt_and_hinted_prompt(task: SyntheticTask) -> None:
    problem = task.eval_problems("easy")[0]
    plain, hinted = task.prompt(problem), task.prompt(problem, hint=problem.answer)
    assert plain.startswith("Q:") and plain.endswith("\n")
    assert "key" not in plain
    assert f"key:{problem.answer}" in hinted
    assert not task.leaks(gold_solution(problem.problem), problem.answer)
    assert task.leaks(leaked_solution(problem.problem, problem.answer), problem.answer)
    assert task.leaks("the key is 5\n\\boxed{5}", "5")
