"""Progress on stderr: a Rich progress bar on a terminal, an occasional line in a log.

On a terminal (stderr is one), Rich's progress with the rate and, when the
total is known, the time left; it disappears when done. Otherwise a plain
line at most every few seconds, so a short run prints nothing and a long one
shows it is alive. stdout is never touched: it carries the data.
"""

from __future__ import annotations

import sys
import time
from typing import Any

_LOG_EVERY_S = 5.0


def regular_file(stream) -> bool:
    """True when `stream` reads a regular file (a named file, or stdin
    redirected from one), not a pipe or a terminal: its size is known."""
    import os
    import stat

    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # no real file (a test runner's buffer)
        return False


def file_size(stream) -> int | None:
    """The bytes left to read in the regular file behind `stream`; None for a
    pipe or a terminal. Progress is shown against it."""
    import os

    if not regular_file(stream):
        return None
    try:
        fd = stream.fileno()
        return max(0, os.fstat(fd).st_size - os.lseek(fd, 0, os.SEEK_CUR))
    except OSError:
        return None


def _rate_text(done: float, seconds: float, unit: str) -> str:
    if seconds <= 0 or done <= 0:
        return f"? {unit}/s"
    return _amount(done / seconds, unit) + "/s"


def _amount(n: float, unit: str) -> str:
    if unit == "B":  # decimal units, as Rich's own columns show them
        for scale in ("B", "kB", "MB", "GB"):
            if n < 1000 or scale == "GB":
                return f"{n:,.0f} {scale}" if scale == "B" else f"{n:,.1f} {scale}"
            n /= 1000
    return f"{n:,.0f} {unit}"


def _left_text(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _rich_progress(unit: str, total_known: bool) -> Any:
    """Rich's Progress on stderr: what, the bar, how many, the rate, the time left."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.text import Text

    from stroute.cli.output import console

    class Rate(ProgressColumn):
        """Items per second, as Rich measures it (over the last 30 s)."""

        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("? " + unit + "/s" if speed is None else f"{speed:,.0f} {unit}/s", style="progress.data.speed")

    if unit == "B":
        count, rate = DownloadColumn(), TransferSpeedColumn()
    else:
        count, rate = MofNCompleteColumn() if total_known else TextColumn("{task.completed:,.0f}"), Rate()
    columns = [TextColumn("{task.description}"), BarColumn()]
    if total_known:
        columns.append(TaskProgressColumn())
    columns += [count, TextColumn("{task.fields[detail]}"), rate]
    columns.append(TimeRemainingColumn() if total_known else TimeElapsedColumn())
    # stdout is left alone: rows a command streams while the bar runs are data, not the bar's to redraw.
    return Progress(*columns, console=console(stderr=True), transient=True, redirect_stdout=False,
                    redirect_stderr=False)


class Bar:
    """Progress out of a known total: a Rich bar with rate and ETA on a terminal.

    `unit` names what is counted ("links", or "B" for bytes of a file).
    """

    def __init__(self, description: str, unit: str = "links") -> None:
        self.description = description
        self.unit = unit
        self.tty = sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None
        self._first: tuple[float, int] | None = None  # (when, completed) of the first update
        self._logged: int | None = None  # `completed` of the last log line
        self._last_log = time.monotonic()

    def update(self, total: int, completed: int, detail: str = "") -> None:
        total = max(total, completed)
        if self.tty:
            if self._progress is None:
                self._progress = _rich_progress(self.unit, total_known=True)
                self._progress.start()
                self._task = self._progress.add_task(self.description, total=total, detail=detail)
            self._progress.update(self._task, total=total, completed=completed, detail=detail)
            return
        now = time.monotonic()
        if self._first is None:
            self._first = (now, completed)  # the rate counts from the first update (after a scan, say)
        if now - self._last_log >= _LOG_EVERY_S and completed != self._logged:  # a log line says something new
            self._last_log, self._logged = now, completed
            sys.stderr.write(f"stroute: {self.description}: {self.log_line(total, completed, now)}"
                             f"{', ' + detail if detail else ''}\n")
            sys.stderr.flush()

    def log_line(self, total: int, completed: int, now: float) -> str:
        """'N of M UNIT, R UNIT/s, about T left' (the line a log gets)."""
        unit = self.unit
        text = f"{_amount(completed, unit)} of {_amount(total, unit)}" if unit == "B" else f"{completed} of {total}"
        since, before = self._first or (now, completed)
        done, seconds = completed - before, now - since
        text += f", {_rate_text(done, seconds, unit)}"
        if done > 0 and seconds > 0 and total > completed:
            text += f", about {_left_text((total - completed) * seconds / done)} left"
        return text

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class Counter:
    """A running count whose total is unknown: Rich's progress with the rate on a terminal."""

    def __init__(self, description: str, unit: str = "links", *, enabled: bool = True) -> None:
        """enabled=False: no count at all (the command's rows go to the terminal the count would draw on)."""
        self.description = description
        self.unit = unit
        self.tty = sys.stderr.isatty()
        self.enabled = enabled
        self.shown = False
        self._progress: Any = None
        self._task: Any = None
        self._first: tuple[float, int] | None = None  # (when, n) of the first tick
        self._last = time.monotonic()

    def tick(self, n: int) -> None:
        if not self.enabled:
            return
        if self.tty:
            if self._progress is None:
                self._progress = _rich_progress(self.unit, total_known=False)
                self._progress.start()
                self._task = self._progress.add_task(self.description, total=None, detail="")
                self.shown = True
            self._progress.update(self._task, completed=n)
            return
        now = time.monotonic()
        if self._first is None:
            self._first = (now, n)
        if now - self._last >= _LOG_EVERY_S:
            self._last = now
            since, before = self._first
            sys.stderr.write(f"stroute: {self.description}... {n} so far "
                             f"({_rate_text(n - before, now - since, self.unit)})\n")
            sys.stderr.flush()

    def done(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.shown = False
