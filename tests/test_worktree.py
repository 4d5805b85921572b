import subprocess
from pathlib import Path

import pytest

from tests import worktree


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "kept.txt").write_text("x")
    return tmp_path


def test_a_file_written_during_the_session_is_left_behind(repo: Path) -> None:
    before = worktree.status(repo)
    (repo / "mlflow.db").write_text("stray")
    (repo / "sub").mkdir()
    (repo / "sub" / "out.json").write_text("{}")
    assert worktree.left_behind(before, worktree.status(repo)) == ["?? mlflow.db", "?? sub/out.json"]


def test_what_was_there_before_is_not_blamed_on_the_tests(repo: Path) -> None:
    before = worktree.status(repo)
    assert before == {"?? kept.txt"}
    assert worktree.left_behind(before, worktree.status(repo)) == []


def test_outside_a_checkout_nothing_is_known(tmp_path: Path) -> None:
    assert worktree.status(tmp_path / "nowhere") is None
    assert worktree.left_behind(None, {"?? x"}) == []
