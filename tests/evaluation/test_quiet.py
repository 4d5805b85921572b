"""`silenced_progress`: lm-eval's bars are off inside it, also in a process that has not imported lm-eval yet."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import sys
assert "lm_eval.api.task" not in sys.modules
from brts.evaluation.runner import silenced_progress
with silenced_progress(True):
    import lm_eval.api.task as task
    for _ in task.tqdm(range(3), total=3):
        pass
for _ in task.tqdm(range(2), total=2, desc="after"):
    pass
"""


def test_the_first_evaluation_of_a_process_prints_no_lm_eval_bar() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}  # `exp run` in this process may have set it
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "3/3" not in done.stderr  # silenced inside
    assert "after" in done.stderr and "2/2" in done.stderr  # restored outside
