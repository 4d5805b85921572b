"""The `eval` section: task names, the legacy `splits`, the data folder, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from brts.spec import SpecError, load_spec
from brts.spec.evaluation import EvalSpec

MINIMAL = "arms: [opd]\nseeds: [0]\n"


def load(folder: Path, eval_yaml: str):
    (folder / "x.yaml").write_text(MINIMAL + eval_yaml)
    return load_spec("x", search_dirs=[folder])


def error(folder: Path, eval_yaml: str) -> str:
    with pytest.raises(SpecError) as info:
        load(folder, eval_yaml)
    message = str(info.value)
    assert "\n" not in message and "x.yaml: eval" in message
    return message


def test_defaults_are_the_three_synthetic_splits() -> None:
    spec = EvalSpec()
    assert spec.tasks == ("brts_synthetic_easy", "brts_synthetic_medium", "brts_synthetic_hard")
    assert spec.splits == ("easy", "medium", "hard")
    assert (spec.k, spec.backend, spec.problems, spec.data_dir) == (4, "auto", None, None)


def test_the_default_grid_evaluates_the_three_splits_with_200_problems() -> None:
    spec = load_spec("ablation-grid")
    assert spec.eval.tasks == ("brts_synthetic_easy", "brts_synthetic_medium", "brts_synthetic_hard")
    assert spec.eval.problems == 200 and spec.eval.splits == ("easy", "medium", "hard")


def test_benchmarks_and_lm_eval_tasks_are_listed_by_name(tmp_path: Path) -> None:
    spec = load(tmp_path, "eval: {tasks: [brts_synthetic_hard, brts_aime24, gsm8k], k: 16}\n").eval
    assert spec.tasks == ("brts_synthetic_hard", "brts_aime24", "gsm8k") and spec.splits == ("hard",)


def test_legacy_splits_name_synthetic_tasks(tmp_path: Path) -> None:
    assert load(tmp_path, "eval: {splits: [medium, hard]}\n").eval.tasks == (
        "brts_synthetic_medium", "brts_synthetic_hard")


@pytest.mark.parametrize(
    ("eval_yaml", "expected"),
    [
        ("eval: {tasks: [brts_aime23]}\n", "unknown brts task 'brts_aime23'"),
        ("eval: {tasks: [gsm8k, gsm8k]}\n", "'gsm8k' is listed twice"),
        ("eval: {tasks: []}\n", "non-empty list"),
        ("eval: {splits: [easy], tasks: [gsm8k]}\n", "old name of tasks"),
        ("eval: {splits: [aime24]}\n", "synthetic split names"),
        ("eval: {backend: tpu}\n", "'auto', 'hf' or 'vllm'"),
        ("eval: {k: 0}\n", ">= 1"),
    ],
)
def test_bad_eval_settings_are_one_line(tmp_path: Path, eval_yaml: str, expected: str) -> None:
    assert expected in error(tmp_path, eval_yaml)


def test_a_data_folder_must_exist_and_hold_the_benchmarks_listed(tmp_path: Path) -> None:
    assert "does not exist" in error(tmp_path, f"eval: {{data_dir: {tmp_path / 'nowhere'}, tasks: [brts_aime24]}}\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "aime24.jsonl").write_text('{"id": "a", "problem": "p", "answer": "1"}\n')
    assert load(tmp_path, f"eval: {{data_dir: {tmp_path / 'data'}, tasks: [brts_aime24]}}\n").eval.data_dir
    message = error(tmp_path, f"eval: {{data_dir: {tmp_path / 'data'}, tasks: [brts_aime24, brts_amc23]}}\n")
    assert "brts_amc23 needs amc23.jsonl" in message
