"""Progress of long work (model build, runs, evaluations, sweep trials), shown the way the reader can see it.

One `Reporter` API (`start`, `update`, `finish`, `note`) with four displays:

- `bars`: rich progress bars on stderr, for a terminal;
- `lines`: plain lines on stdout for a file, a CI or a Slurm log: one when a task starts, changes stage or
  ends, and otherwise at most every 30 s per task, also while it reports nothing (a heartbeat), each with the
  stage, done/total, elapsed time, rate and ETA;
- `json`: the same events as one JSON object a line on stdout, for tools;
- `quiet`: no progress; notes (a failed run, a finished trial) still go to stderr.

Labels and notes are plain text, never rich markup: they carry user text (arm names, errors).

`auto` (the default) is `bars` when stdout is a terminal, else `lines`. The CLI sets the mode
(`--quiet`, `--json-progress`; else $BRTS_PROGRESS) with `configure`; library code asks `current()` for the
reporter.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from brts.terminal import SafeConsole, safe

Mode = Literal["auto", "bars", "lines", "json", "quiet"]
MODES: tuple[Mode, ...] = ("auto", "bars", "lines", "json", "quiet")
ENV = "BRTS_PROGRESS"  # a default mode (auto, bars, lines, json, quiet) that the CLI flags override
INTERVAL_S = 30.0


@dataclass
class Task:
    """What is known of one piece of work: its counts, its stage and when things happened."""

    key: str
    label: str
    total: int | None
    unit: str
    stage: str | None
    started: float
    done: int = 0
    stage_started: float = 0.0
    stage_done: int = 0  # `done` when the stage began: the rate counts this stage's work only
    last_shown: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def rate(self, now: float) -> float | None:
        """Units per second in the current stage (None before any progress)."""
        elapsed = now - self.stage_started
        moved = self.done - self.stage_done
        return moved / elapsed if moved > 0 and elapsed > 0 else None

    def eta(self, now: float) -> float | None:
        rate = self.rate(now)
        return (self.total - self.done) / rate if rate and self.total is not None else None


def duration(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def describe(task: Task, now: float, event: str) -> str:
    """One plain line, `HH:MM:SS label: stage done/total unit, elapsed, rate, ETA` (the parts that are known);
    a finished task says how it ended and after how long."""
    counts = (f"{task.done}/{task.total} {task.unit}" if task.total is not None
              else f"{task.done} {task.unit}" if task.done else "")
    if event == "finish":
        body = f"{task.stage} after {duration(now - task.started)}" + (f" ({counts})" if counts else "")
    else:
        parts = [" ".join(p for p in (task.stage, counts) if p) or "started", f"{duration(now - task.started)} elapsed"]
        rate, eta = task.rate(now), task.eta(now)
        if rate is not None:
            parts.append(f"{rate:.3g} {task.unit}/s")
        if eta is not None:
            parts.append(f"ETA {duration(eta)}")
        body = ", ".join(parts)
    return f"{time.strftime('%H:%M:%S')} {task.label.strip()}: {body}"


class Reporter:
    """The reporter every long step talks to; this base shows nothing (`quiet`)."""

    mode: Mode = "quiet"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.tasks: dict[str, Task] = {}
        self.lock = threading.RLock()

    # what callers use ------------------------------------------------------------------------------------------
    def start(self, key: str, label: str, total: int | None = None, *, stage: str | None = None,
              unit: str = "steps", done: int = 0, keep: bool = False) -> None:
        """A task begins (or begins again under the same key: it restarts). `keep`: its bar stays when it ends."""
        now = self.clock()
        with self.lock:
            task = Task(key, label, total, unit, stage, started=now, done=done, stage_started=now, stage_done=done,
                        last_shown=now, extra={"keep": keep})
            self.tasks[key] = task
            self._show(task, "start", now)

    def update(self, key: str, done: int | None = None, *, total: int | None = None, stage: str | None = None,
               advance: int = 0) -> None:
        """New counts or a new stage for a started task (unknown keys are ignored: the task ended already)."""
        now = self.clock()
        with self.lock:
            task = self.tasks.get(key)
            if task is None:
                return
            if total is not None:
                task.total = total
            task.done = (done if done is not None else task.done) + advance
            if stage is not None and stage != task.stage:
                task.stage, task.stage_started, task.stage_done = stage, now, task.done
                self._show(task, "stage", now)
            else:
                self._progress(task, now)

    def finish(self, key: str, status: str = "done") -> None:
        """A task ends; `status` says how (done, failed, cached, ...)."""
        now = self.clock()
        with self.lock:
            task = self.tasks.pop(key, None)
            if task is not None:
                task.stage = status
                self._show(task, "finish", now)

    def note(self, text: str) -> None:
        """A line worth showing between the progress (a failed run, a finished trial); quiet, on stderr."""
        try:
            sys.stderr.write(safe(text, newlines=False) + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        """Stop drawing; tasks still open are dropped."""
        with self.lock:
            self.tasks.clear()

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # what displays implement -----------------------------------------------------------------------------------
    def _show(self, task: Task, event: str, now: float) -> None:
        """A start, a stage change or a finish: always shown."""

    def _progress(self, task: Task, now: float) -> None:
        """New counts: shown as the display sees fit."""


class _Throttled(Reporter):
    """Lines or JSON: every start, stage change and finish; other updates at most every `interval` s per task, and a
    heartbeat thread repeats a task's state when it has been silent that long."""

    def __init__(self, stream: IO[str] | None = None, interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, heartbeat: bool = True) -> None:
        super().__init__(clock)
        self._stream = stream
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if heartbeat:
            self._thread = threading.Thread(target=self._beat, name="brts-progress", daemon=True)
            self._thread.start()

    @property
    def stream(self) -> IO[str]:
        return self._stream or sys.stdout  # looked up at each write: tests and the CLI runner swap sys.stdout

    def _progress(self, task: Task, now: float) -> None:
        if now - task.last_shown >= self.interval:
            self._show(task, "progress", now)

    def _show(self, task: Task, event: str, now: float) -> None:
        task.last_shown = now
        self._write(self._render(task, event, now))

    def _write(self, line: str) -> None:
        try:
            self.stream.write(safe(line, newlines=False) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # the reader went away (a closed pipe): progress is not worth a crash
            pass

    def _render(self, task: Task, event: str, now: float) -> str:
        raise NotImplementedError

    def heartbeat(self) -> None:
        """Show every task that has been silent for `interval` seconds (the thread calls this)."""
        now = self.clock()
        with self.lock:
            for task in list(self.tasks.values()):
                if now - task.last_shown >= self.interval:
                    self._show(task, "progress", now)

    def _beat(self) -> None:
        while not self._stop.wait(min(self.interval, 5.0)):
            self.heartbeat()

    def close(self) -> None:
        self._stop.set()
        super().close()


class LinesReporter(_Throttled):
    mode: Mode = "lines"

    def _render(self, task: Task, event: str, now: float) -> str:
        return describe(task, now, event)

    def note(self, text: str) -> None:
        with self.lock:
            self._write(f"{time.strftime('%H:%M:%S')} {text}")


class JsonReporter(_Throttled):
    mode: Mode = "json"

    def _render(self, task: Task, event: str, now: float) -> str:
        rate, eta = task.rate(now), task.eta(now)
        return json.dumps({
            "event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "task": task.key, "label": task.label,
            "stage": task.stage, "done": task.done, "total": task.total, "unit": task.unit,
            "elapsed_s": round(now - task.started, 2), "rate": round(rate, 4) if rate is not None else None,
            "eta_s": round(eta, 1) if eta is not None else None,
        })

    def note(self, text: str) -> None:
        with self.lock:
            self._write(json.dumps({"event": "note", "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                    "text": text}))


class BarsReporter(Reporter):
    """rich progress bars on stderr (a terminal): one bar per task, removed when it ends unless started with `keep`."""

    mode: Mode = "bars"

    def __init__(self, console: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or SafeConsole(stderr=True)  # notes carry user text
        self.bars = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             console=self.console, transient=False)
        self.ids: dict[str, Any] = {}
        self.bars.start()

    def _description(self, task: Task) -> str:
        return safe(f"{task.label} ({task.stage})" if task.stage else task.label, newlines=False)

    def _show(self, task: Task, event: str, now: float) -> None:
        if event == "finish":
            bar = self.ids.pop(task.key, None)
            if bar is not None and not task.extra.get("keep"):
                self.bars.remove_task(bar)
            return
        if task.key not in self.ids:
            self.ids[task.key] = self.bars.add_task(self._description(task), total=task.total, completed=task.done)
        else:
            self.bars.update(self.ids[task.key], description=self._description(task), total=task.total,
                             completed=task.done)

    def _progress(self, task: Task, now: float) -> None:
        if task.key in self.ids:
            self.bars.update(self.ids[task.key], completed=task.done, total=task.total)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def close(self) -> None:
        super().close()
        self.bars.stop()


def resolve(mode: Mode, stream: IO[str] | None = None) -> Mode:
    """`auto` -> `bars` when stdout is a terminal, else `lines`."""
    if mode != "auto":
        return mode
    out = stream or sys.stdout
    return "bars" if hasattr(out, "isatty") and out.isatty() else "lines"


def make(mode: Mode = "auto", **kwargs: Any) -> Reporter:
    chosen = resolve(mode)
    if chosen == "bars":
        return BarsReporter(**kwargs)
    if chosen == "lines":
        return LinesReporter(**kwargs)
    if chosen == "json":
        return JsonReporter(**kwargs)
    return Reporter()


_mode: Mode | None = None


def configure(quiet: bool = False, json_progress: bool = False) -> Mode:
    """The CLI's choice for this process (the flags, else $BRTS_PROGRESS, else auto); returns it resolved."""
    global _mode
    _mode = "quiet" if quiet else "json" if json_progress else None
    return resolve(mode())


def mode() -> Mode:
    """The configured mode: `configure`'s, else $BRTS_PROGRESS, else auto."""
    if _mode is not None:
        return _mode
    value = os.environ.get(ENV, "auto")
    return value if value in MODES else "auto"  # type: ignore[return-value]


def current(**kwargs: Any) -> Reporter:
    """A reporter in the configured mode (use it as a context manager: it stops its bars or heartbeat)."""
    return make(mode(), **kwargs)
