"""Grading (METHOD.md section 4): the answer is the last `\\boxed{...}`; one grader serves every stage."""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

_BOX_COMMANDS = ("\\boxed", "\\fbox")


def extract_boxed(text: str) -> str | None:
    """The content of the last brace-matched `\\boxed{...}` or `\\fbox{...}` in `text`; None if there is none
    or the last one is unbalanced."""
    starts = [i for command in _BOX_COMMANDS for i in _find_all(text, command + "{")]
    if not starts:
        return None
    start = max(starts)
    open_at = text.index("{", start)
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : i]
    return None


def _find_all(text: str, needle: str) -> list[int]:
    found, i = [], text.find(needle)
    while i >= 0:
        found.append(i)
        i = text.find(needle, i + 1)
    return found


@runtime_checkable
class Grader(Protocol):
    """Decides whether a response's final answer equals the gold answer; `name` and `version` are recorded
    with every result."""

    name: str
    version: str

    def grade(self, response: str, answer: str) -> bool: ...


class IntegerGrader:
    """Exact integer comparison of the boxed content (the synthetic task's grader)."""

    name = "integer"
    version = "1"

    def grade(self, response: str, answer: str) -> bool:
        boxed = extract_boxed(response)
        if boxed is None:
            return False
        try:
            return int(boxed.strip()) == int(answer.strip())
        except ValueError:
            return False


class MathGrader:
    """math-verify equivalence of the boxed content and the gold answer, each parse and comparison under
    `timeout_s`; a timeout counts as incorrect and is counted in `timeouts`."""

    name = "math_verify"

    def __init__(self, timeout_s: int = 5) -> None:
        import importlib.metadata

        self.version = importlib.metadata.version("math-verify")
        self.timeout_s = timeout_s
        self.timeouts = 0

    def grade(self, response: str, answer: str) -> bool:
        from math_verify import parse, verify
        from math_verify.errors import TimeoutException

        boxed = extract_boxed(response)
        if boxed is None:
            return False
        # math-verify times out with SIGALRM, which only the main thread may set; elsewhere it runs unbounded.
        limit = self.timeout_s if threading.current_thread() is threading.main_thread() else None
        try:
            gold = parse(f"${answer}$", parsing_timeout=limit, raise_on_error=True)
            pred = parse(f"${boxed}$", parsing_timeout=limit, raise_on_error=True)
            return bool(verify(gold, pred, timeout_seconds=limit, raise_on_error=True))
        except TimeoutException:
            self.timeouts += 1
            return False
        except Exception:
            return False
