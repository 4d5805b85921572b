"""What a test run left in the working tree: the files `git status` shows after the session that it did not
show before (tests write only under temporary folders)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def status(root: Path) -> set[str] | None:
    """`git status --porcelain` lines of `root` (untracked files listed one by one); None outside a git checkout."""
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=all"],
                          capture_output=True, text=True, check=False)
    return set(done.stdout.splitlines()) if done.returncode == 0 else None


def left_behind(before: set[str] | None, after: set[str] | None) -> list[str]:
    """The status lines that appeared during the session (nothing when either side is unknown)."""
    if before is None or after is None:
        return []
    return sorted(after - before)
