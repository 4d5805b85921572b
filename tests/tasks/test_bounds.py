"""A problem file's rows are bounded: a row too large to use is refused before a run starts, one line naming the
file and the line."""

from __future__ import annotations

import json

import pytest

from brts.tasks.bounds import MAX_ANSWER_CHARS, MAX_PROBLEM_CHARS, check_problem_file
from brts.tasks.sources import TaskDataError

GOOD = json.dumps({"id": "p0", "problem": "What is 1+1?", "answer": "2"}) + "\n"


@pytest.mark.parametrize(("line", "why"), [
    (json.dumps({"id": "p1", "problem": "x" * (MAX_PROBLEM_CHARS + 1), "answer": "2"}),
     f"problem 'problem' is {MAX_PROBLEM_CHARS + 1} characters, more than the {MAX_PROBLEM_CHARS}"),
    (json.dumps({"id": "p1", "problem": "x", "answer": "9" * (MAX_ANSWER_CHARS + 1)}),
     f"answer 'answer' is {MAX_ANSWER_CHARS + 1} characters"),
    ('{"id": "p1", "problem": "x", "answer": ' + "9" * 5001 + "}", "is not JSON that can be read"),
    ('{"id": "p1", "problem": "caf\xe9"}', "is not UTF-8 text"),
    (json.dumps({"id": "p1", "problem": "x" * (10 << 20), "answer": "2"}), "is longer than 1024 KiB"),
], ids=["long problem", "long answer", "5001-digit integer", "not UTF-8", "10 MB problem"])
def test_a_row_too_large_to_use_is_one_line_naming_the_file_and_the_line(tmp_path, line, why):
    path = tmp_path / "aime24.jsonl"
    data = GOOD.encode() + (line.encode("latin-1") if "\xe9" in line else line.encode()) + b"\n" + GOOD.encode()
    path.write_bytes(data)
    with pytest.raises(TaskDataError) as caught:
        check_problem_file(path, "brts_aime24")
    assert str(caught.value).startswith(f"brts_aime24: {path}: line 2") and why in str(caught.value), caught.value


def test_rows_within_the_caps_pass_and_other_fields_are_not_capped(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(GOOD + json.dumps({"q": "x" * MAX_PROBLEM_CHARS, "a": 7, "solution": "y" * 100_000}) + "\n\n")
    check_problem_file(path, "task.train", problem_field="q", answer_field="a")
