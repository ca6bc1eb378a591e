"""Progress on stderr: live on a terminal, an occasional line in a log.

On a terminal, a Rich bar (or a live counter when the total is unknown)
that disappears when done; otherwise a plain line at most every few
seconds, so a short run prints nothing and a long one shows it is alive.
stdout is never touched: it carries the data.
"""

from __future__ import annotations

import sys
import time

_LOG_EVERY_S = 5.0


class Bar:
    """Links left out of a total: a Rich progress bar on a terminal."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.tty = sys.stderr.isatty()
        self._progress = None
        self._task = None
        self._last_log = time.monotonic()

    def update(self, total: int, completed: int, detail: str = "") -> None:
        if self.tty:
            if self._progress is None:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                from stroute.cli.output import console

                self._progress = Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
                    TimeElapsedColumn(), console=console(stderr=True), transient=True,
                )
                self._progress.start()
                self._task = self._progress.add_task(self.description, total=total, detail=detail)
            self._progress.update(self._task, total=max(total, completed), completed=completed, detail=detail)
            return
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_S:
            self._last_log = now
            sys.stderr.write(f"stroute: {self.description}: {completed} of {total}{', ' + detail if detail else ''}\n")
            sys.stderr.flush()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class Counter:
    """A running count (the total is unknown): a live line on a terminal."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.tty = sys.stderr.isatty()
        self.shown = False
        self._last = 0.0 if self.tty else time.monotonic()

    def tick(self, n: int) -> None:
        now = time.monotonic()
        if self.tty:
            if now - self._last >= 0.1:
                self._last = now
                sys.stderr.write(f"\rstroute: {self.description}... {n}")
                sys.stderr.flush()
                self.shown = True
        elif now - self._last >= _LOG_EVERY_S:
            self._last = now
            sys.stderr.write(f"stroute: {self.description}... {n} so far\n")
            sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False
