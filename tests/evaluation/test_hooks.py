"""The functions our lm-eval task YAMLs call: data loading, prompts, answer extraction and scoring."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from brts.evaluation import hooks
from brts.evaluation.hooks import load_docs, resolve_data_dir
from brts.spec.catalog import SOURCES
from brts.tasks.sources import TaskDataError
from brts.tasks.synthetic import format_prompt


def write_rows(folder: Path, name: str, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_docs_reads_a_local_folder_as_text_fields(tmp_path: Path) -> None:
    write_rows(tmp_path, "amc23", [{"id": 7, "problem": "p", "answer": 27.0, "extra": 1},
                                   {"id": "b", "problem": "q", "answer": "\\frac{1}{2}"}])
    docs = load_docs(brts_task="brts_amc23", data_dir=str(tmp_path), pretrained="ignored", version=1.0)["test"]
    assert list(docs) == [{"id": "7", "problem": "p", "answer": "27"},
                          {"id": "b", "problem": "q", "answer": "\\frac{1}{2}"}]


def test_the_data_folder_is_explicit_then_beside_the_yamls_then_the_environment(tmp_path, monkeypatch) -> None:
    beside = tmp_path / "beside"
    write_rows(beside, "aime24", [{"id": 1, "problem": "p", "answer": 1}])
    monkeypatch.setenv("BRTS_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir("brts_aime24", str(tmp_path / "given"), beside) == tmp_path / "given"
    assert resolve_data_dir("brts_aime24", None, beside) == beside
    assert resolve_data_dir("brts_aime25", None, beside) == tmp_path / "env"  # nothing beside for aime25
    monkeypatch.delenv("BRTS_DATA_DIR")
    assert resolve_data_dir("brts_aime25", None, beside) is None  # the HF hub


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("no_folder", "data folder"),
        ("no_file", "aime24.jsonl not found"),
        ("missing_field", "line 2 lacks field(s) answer"),
        ("not_json", "line 1 is not JSON"),
        ("empty", "holds no problems"),
    ],
)
def test_unreadable_data_is_one_line(tmp_path: Path, setup: str, expected: str) -> None:
    folder = tmp_path / "data"
    if setup != "no_folder":
        folder.mkdir()
    if setup == "missing_field":
        write_rows(folder, "aime24", [{"id": 1, "problem": "p", "answer": 1}, {"id": 2, "problem": "q"}])
    elif setup == "not_json":
        (folder / "aime24.jsonl").write_text("{id: 1}\n")
    elif setup == "empty":
        (folder / "aime24.jsonl").write_text("\n")
    with pytest.raises(TaskDataError) as info:
        load_docs(brts_task="brts_aime24", data_dir=str(folder))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_hub_rows_are_renamed_and_amc_keeps_its_2023_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    # The hub is out of reach here: a real Dataset with the hub set's columns stands in for the download.
    table = datasets.Dataset.from_list([
        {"id": 0, "problem": "a", "answer": 27.0, "url": "https://aops/wiki/2023_AMC_12A_Problems/Problem_1"},
        {"id": 1, "problem": "b", "answer": 5.0, "url": "https://aops/wiki/2022_AMC_12B_Problems/Problem_2"},
        {"id": 2, "problem": "c", "answer": 3.5, "url": "https://aops/wiki/2023_AMC_12B_Problems/Problem_3"},
    ])
    asked: list[tuple[str, str]] = []

    def load_dataset(path: str, split: str) -> datasets.Dataset:
        asked.append((path, split))
        return table

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.delenv("BRTS_DATA_DIR", raising=False)
    docs = load_docs(brts_task="brts_amc23")["test"]
    assert asked == [("AI-MO/aimo-validation-amc", "train")]
    assert list(docs) == [{"id": "0", "problem": "a", "answer": "27"}, {"id": "2", "problem": "c", "answer": "3.5"}]
    with pytest.raises(TaskDataError, match="has no field"):
        hooks.hub_rows("brts_aime24", SOURCES["brts_aime24"].hub)  # AIME 2024 is read as Problem/Answer


def test_prompts_are_the_training_prompt_and_the_paper_prompt() -> None:
    assert hooks.synthetic_prompt({"problem": "7+3*2"}) == format_prompt("7+3*2")
    assert hooks.math_prompt({"problem": "Find $x$."}) == (
        "Find $x$. Please reason step by step, and put your final answer within \\boxed{}.")


def test_extraction_and_scoring_of_one_problem() -> None:
    extracted = hooks.extract_answers([["A1\n\\boxed{5}", "\\boxed{6}", "no box", "\\boxed{5}"]], [{}])
    assert extracted == [["5", "6", None, "5"]]
    scores = hooks.process_synthetic({"answer": "5"}, extracted)
    assert scores == {"avg@k": 0.5, "pass@k": 1.0, "maj@k": 1.0, "correct": [1, 0, 0, 1]}
    math = hooks.process_math({"answer": "\\frac{1}{2}"}, [["0.5", None, "1/3"]])
    assert math["correct"] == [1, 0, 0] and math["avg@k"] == pytest.approx(1 / 3)
    assert hooks.sample_mean([[1, 0], [1, 1]]) == 0.75
