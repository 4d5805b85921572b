import pytest

from brts.tasks.base import Task
from brts.tasks.synthetic import (
    MAX_OPS,
    SPLIT_OPS,
    BuildingSampler,
    SyntheticTask,
    gold_solution,
    leaked_solution,
    n_ops,
    pool_of,
    shortcut_solution,
    to_problem,
)


def recompute(expression: str) -> int:
    digits = [int(d) for d in expression[0::2]]
    value = digits[0]
    for op, digit in zip(expression[1::2], digits[1:], strict=True):
        value = {"+": value + digit, "-": value - digit, "*": value * digit}[op] % 10
    return value


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


def test_any_prefix_of_a_held_out_split_mixes_its_lengths(task: SyntheticTask) -> None:
    # Specs evaluate a prefix (`eval.problems: 100` of 200); it must not be one chain length only.
    for split, lengths in SPLIT_OPS.items():
        for problems in (task.eval_problems(split)[:100], task.validation_problems(split)[:32]):
            counts = [sum(n_ops(p.problem) == ops for p in problems) for ops in lengths]
            assert min(counts) >= 1, (split, counts)  # easy holds few one-operation chains: there are 300
            if split != "easy":
                assert min(counts) >= len(problems) // 4, (split, counts)


def test_splits_are_disjoint_across_seeds_and_from_model_building(task: SyntheticTask) -> None:
    other = SyntheticTask(seed=7)
    train = {p.problem for p in task.train_problems()} | {p.problem for p in other.train_problems()}
    evaluation = {p.problem for t in (task, other) for s in t.splits for p in t.eval_problems(s)}
    validation = {p.problem for t in (task, other) for s in t.splits for p in t.validation_problems(s)}
    assert not train & evaluation and not train & validation and not evaluation & validation
    # Model building draws only from the "build" pool, which no split touches whatever the seed.
    assert all(pool_of(e) == "train" for e in train)
    assert all(pool_of(e) == "eval" for e in evaluation)
    assert all(pool_of(e) == "validation" for e in validation)
    sampler = BuildingSampler(seed=0)
    assert all(pool_of(sampler.expression(ops)) == "build" for ops in range(1, MAX_OPS + 1) for _ in range(50))


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


def test_the_documented_example() -> None:
    task = SyntheticTask()
    problem = to_problem("7+3*2-5")
    assert problem.answer == "5"
    assert task.prompt(problem) == "Q:7 +3 *2 -5" + " " * 9 + "\n"
    assert task.prompt(problem, hint="5") == "key:5 Q:7 +3 *2 -5" + " " * 9 + "\n"
    assert gold_solution("7+3*2-5") == "A0\nB0\nC5\n\\boxed{5}"
    assert shortcut_solution("7+3*2-5", 1, 4) == "A0\n\\boxed{4}"


def test_prompts_have_one_length_and_responses_are_short(task: SyntheticTask) -> None:
    problems = [p for s in task.splits for p in task.eval_problems(s)]
    assert len({len(task.prompt(p)) for p in problems}) == 1
    assert len({len(task.prompt(p, hint=p.answer)) for p in problems}) == 1
    assert max(len(gold_solution(p.problem)) for p in problems) <= 3 * MAX_OPS + len("\\boxed{0}")


def test_prompt_and_hinted_prompt(task: SyntheticTask) -> None:
    problem = task.eval_problems("easy")[0]
    plain, hinted = task.prompt(problem), task.prompt(problem, hint=problem.answer)
    assert plain.startswith("Q:") and plain.endswith("\n")
    assert "key" not in plain
    assert f"key:{problem.answer}" in hinted
    assert not task.leaks(gold_solution(problem.problem), problem.answer)
    assert task.leaks(leaked_solution(problem.problem, problem.answer), problem.answer)
    assert task.leaks("the key is 5\n\\boxed{5}", "5")
