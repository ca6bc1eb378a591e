"""Where a server driver's load comes from: a file or a command.

Both are callables for ServerDriver's `load_source`. A failed read never
stops heartbeats: the last good load is kept, and the problem is logged once
when it starts and once when it ends (not on every heartbeat).
"""

from __future__ import annotations

import abc
import logging
import os
import signal
import subprocess
from pathlib import Path

from stroute import names
from stroute.errors import InvalidInput

log = logging.getLogger("stroute.load")


class _Source(abc.ABC):
    """Keeps the last good load and logs changes of health, not every failure."""

    what = "load source"

    def __init__(self) -> None:
        self.last = 0
        self.ok: bool | None = None  # None until the first read
        self._problem: str | None = None

    @abc.abstractmethod
    def read(self) -> int:
        """The load now; raises _Failed with a one-line reason."""

    def __call__(self) -> int:
        try:
            value = self.read()
        except _Failed as exc:
            problem = str(exc)
            if problem != self._problem:
                log.warning("%s; keeping load %d", problem, self.last)
            self._problem, self.ok = problem, False
            return self.last
        if self._problem is not None:
            log.info("%s works again: load %d", self.what, value)
        self._problem, self.ok, self.last = None, True, value
        return value


class _Failed(Exception):
    pass


def _parse(text: str, where: str) -> int:
    try:
        return names.load(text.strip())
    except InvalidInput:
        shown = text.strip()
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise _Failed(f"{where} gave {shown!r}, not a load ({names.LOAD_RULE})") from None


class FileLoad(_Source):
    """The load is the integer in a file, re-read on every heartbeat."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.what = f"load file {str(self.path)!r}"

    def read(self) -> int:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise _Failed(f"cannot read {self.what}: {exc.strerror or exc}") from None
        return _parse(text, self.what)


class CommandLoad(_Source):
    """The load is what a shell command prints, run on every heartbeat."""

    def __init__(self, command: str, *, timeout: float = 5.0) -> None:
        super().__init__()
        self.command = command
        self.timeout = timeout
        self.what = f"load command {command!r}"

    def read(self) -> int:
        # Its own process group, so a timeout kills the whole pipeline and
        # no grandchild keeps our pipes (and us) waiting.
        try:
            proc = subprocess.Popen(
                self.command,
                shell=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            raise _Failed(f"cannot run {self.what}: {exc.strerror or exc}") from None
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.communicate()
            raise _Failed(f"{self.what} timed out after {self.timeout:g} s") from None
        if proc.returncode != 0:
            first = (err.strip().splitlines() or [""])[0][:200]
            raise _Failed(f"{self.what} exited with {proc.returncode}" + (f": {first}" if first else ""))
        return _parse(out, self.what)
