"""Grading: the answer is read in the task's answer format (the last `\\boxed{...}`, the last number, or a regex's
capture group) and compared with the gold answer; one grader serves every stage."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

from brts.errors import UserError
from brts.spec.task import BOXED, AnswerFormat

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


# A number as lm-eval's flexible-extract reads one: an optional sign, digits with optional thousands commas and an
# optional decimal part (a sentence's final period is not part of it).
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def extract_last_number(text: str) -> str | None:
    """The last number in `text`, thousands commas removed; None if it has none."""
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "") if numbers else None


def extract_regex(text: str, pattern: str) -> str | None:
    """The capture group of the last match of `pattern` in `text` (stripped); None if it does not match."""
    matches = list(re.finditer(pattern, text))
    return matches[-1].group(1).strip() if matches and matches[-1].group(1) is not None else None


def extract_answer(text: str, answer_format: AnswerFormat = BOXED) -> str | None:
    """A response's final answer in `answer_format`; None when the response has none (a format error)."""
    if answer_format.kind == "last_number":
        return extract_last_number(text)
    if answer_format.kind == "regex":
        assert answer_format.pattern is not None  # AnswerFormat checks it
        return extract_regex(text, answer_format.pattern)
    return extract_boxed(text)


@runtime_checkable
class Grader(Protocol):
    """Decides whether a response's final answer equals the gold answer; `name` and `version` are recorded
    with every result."""

    name: str
    version: str
    answer_format: AnswerFormat

    def grade(self, response: str, answer: str) -> bool: ...

    def extract(self, response: str) -> str | None:
        """The response's final answer in the grader's answer format; None when it has none."""
        ...

    def equivalent(self, extracted: str, answer: str) -> bool:
        """Whether an extracted answer equals the gold answer."""
        ...


def _version(base: str, answer_format: AnswerFormat) -> str:
    return base if answer_format == BOXED else f"{base}+{answer_format.label}"


class IntegerGrader:
    """Exact integer comparison of the extracted answer (the synthetic and sums tasks' grader)."""

    name = "integer"
    version = "1"
    answer_format = BOXED

    def __init__(self, answer_format: AnswerFormat = BOXED) -> None:
        self.answer_format = answer_format
        self.version = _version("1", answer_format)

    def extract(self, response: str) -> str | None:
        return extract_answer(response, self.answer_format)

    def grade(self, response: str, answer: str) -> bool:
        extracted = self.extract(response)
        return extracted is not None and self.equivalent(extracted, answer)

    def equivalent(self, extracted: str, answer: str) -> bool:
        try:
            return int(extracted.strip()) == int(answer.strip())
        except ValueError:
            return False


class GraderTimeoutStorm(UserError, RuntimeError):
    """Too many answers hit the time limit: the machine is overloaded or the answers are pathological."""


class MathGrader:
    """math-verify equivalence of the boxed content and the gold answer under a hard time limit.

    Parsing and comparison run in a separate worker process; an answer that takes longer than `timeout_s`
    counts as incorrect, is counted in `timeouts`, and the worker is killed and replaced. A signal or a
    thread could not stop a computation stuck inside sympy or C code; killing a process always does, and it
    works from any thread. More than `storm_fraction` of answers timing out (once at least `storm_min` have)
    raises GraderTimeoutStorm: the numbers would mean nothing.
    """

    name = "math_verify"

    def __init__(self, timeout_s: float = 5.0, storm_min: int = 10, storm_fraction: float = 0.2,
                 answer_format: AnswerFormat = BOXED) -> None:
        import importlib.metadata

        self.answer_format = answer_format
        self.version = _version(importlib.metadata.version("math-verify"), answer_format)
        self.timeout_s = timeout_s
        self.storm_min, self.storm_fraction = storm_min, storm_fraction
        self.timeouts = 0
        self.graded = 0

    def extract(self, response: str) -> str | None:
        return extract_answer(response, self.answer_format)

    def grade(self, response: str, answer: str) -> bool:
        extracted = self.extract(response)
        return False if extracted is None else self.equivalent(extracted, answer)

    def equivalent(self, extracted: str, answer: str) -> bool:
        """Whether an extracted answer equals the gold answer (a timeout counts as not equal)."""
        self.graded += 1
        if _squeeze(extracted) == _squeeze(answer):
            return True  # identical text needs no parser (and no worker)
        if not extracted.strip():
            return False
        verdict = _verify_worker().check(answer, extracted, self.timeout_s)
        if verdict is None:
            self.timeouts += 1
            if self.timeouts >= self.storm_min and self.timeouts > self.storm_fraction * self.graded:
                raise GraderTimeoutStorm(
                    f"math-verify timed out on {self.timeouts} of {self.graded} answers (limit {self.timeout_s:g} s "
                    "each): the machine is overloaded or the answers are pathological; rerun on an idle machine"
                )
            return False
        return verdict


def _squeeze(text: str) -> str:
    return "".join(text.split())


class _VerifyWorker:
    """One lazily started worker process per grading process, shared by every MathGrader in it.

    The worker is `python -m brts.tasks.grading`, speaking JSON lines on stdin/stdout; a plain subprocess and not
    multiprocessing, so that it starts the same under any main script (lm-eval's CLI, pytest, a notebook).
    """

    _START_TIMEOUT_S = 120.0  # a cold start imports sympy, which takes a while on a busy machine
    _GRACE_S = 1.0  # for the round trip and the worker's own timeout handling

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def check(self, gold: str, pred: str, timeout_s: float) -> bool | None:
        with self._lock:
            process = self._ensure_started()
            assert process.stdin is not None
            try:
                process.stdin.write(json.dumps([gold, pred, timeout_s]).encode() + b"\n")
                process.stdin.flush()
                line = self._read_line(process, timeout_s + self._GRACE_S)
            except OSError:
                line = None
            if line is None:
                self._stop()
                return None
            verdict: bool | None = json.loads(line)
            return verdict

    @staticmethod
    def _read_line(process: subprocess.Popen[bytes], timeout_s: float) -> bytes | None:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout_s)
        line = process.stdout.readline() if ready else b""
        return line or None

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        process = subprocess.Popen(
            [sys.executable, "-m", "brts.tasks.grading"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env,
        )
        if self._read_line(process, self._START_TIMEOUT_S) != b"ready\n":
            process.kill()
            raise RuntimeError("the math-verify worker process (python -m brts.tasks.grading) did not start")
        self._process = process
        return process

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=5)
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
        self._process = None


_WORKER: _VerifyWorker | None = None


def _verify_worker() -> _VerifyWorker:
    global _WORKER
    if _WORKER is None:
        _WORKER = _VerifyWorker()
    return _WORKER


class _Expired(BaseException):  # not Exception: library code must not swallow it
    pass


def _expire(signum: int, frame: object) -> None:
    raise _Expired


def _serve() -> None:
    """The worker: reads `[gold, pred, timeout_s]` lines, answers true/false, or null on its own timeout."""
    import signal

    from math_verify import parse, verify

    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the libraries print must not corrupt the answers
    signal.signal(signal.SIGALRM, _expire)
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        gold, pred, timeout_s = json.loads(line)
        verdict: bool | None
        # One budget for both parses and the comparison; the parent kills this process if even this hangs.
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            parsed_gold = parse(f"${gold}$", parsing_timeout=None, raise_on_error=True)
            parsed_pred = parse(f"${pred}$", parsing_timeout=None, raise_on_error=True)
            verdict = bool(verify(parsed_gold, parsed_pred, timeout_seconds=None, raise_on_error=True))
        except _Expired:
            verdict = None
        except Exception:
            verdict = False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        out.write(json.dumps(verdict) + "\n")
        out.flush()


if __name__ == "__main__":
    _serve()
