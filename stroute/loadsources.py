"""Where a server driver's load comes from: a file or a command.

Both are callables for ServerDriver's `load_source`: each call returns the
load now or raises LoadUnavailable with a one-line reason. The driver, not
the source, keeps the last good value and decides what to publish without
one (stroute.server), so an application's own callable gets the same rules.

Every read is bounded, whatever is at the other end:
- a file is opened non-blocking and must be a regular file (a FIFO with no
  writer would block the open forever, a device could be endless), and at
  most OUTPUT_LIMIT bytes of it are read;
- a command runs in its own process group with no stdin; at most
  OUTPUT_LIMIT bytes of its output are read, and at its timeout, or when it
  prints more, the whole group is killed (a pipeline's grandchildren too).
"""

from __future__ import annotations

import os
import selectors
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

from stroute import names
from stroute.errors import InvalidInput

# A load is a few digits: 64 KiB of output is already far more than any
# honest source prints, and small enough to hold in memory every period.
OUTPUT_LIMIT = 64 * 1024
_CHUNK = 16 * 1024


class LoadUnavailable(Exception):
    """The source gave no load this time; str() is a one-line reason."""


def _parse(data: bytes, where: str) -> int:
    text = data.decode("utf-8", errors="replace").strip()
    try:
        return names.load(text)
    except InvalidInput:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise LoadUnavailable(f"{where} gave {shown!r}, not a load ({names.LOAD_RULE})") from None


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


class FileLoad:
    """The load is the integer in a regular file, re-read on every reading."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.what = f"load file {str(self.path)!r}"
        try:
            mode = os.stat(self.path).st_mode
        except OSError:
            return  # it may appear later: until then the pod says why it has no load
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"invalid load file {str(self.path)!r}: it is {_file_kind(mode)}; "
                               "the load file must be a regular file holding an integer")

    def __call__(self) -> int:
        try:
            # O_NONBLOCK: a FIFO put in the file's place later opens at once
            # instead of waiting for a writer (and is then refused below).
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as exc:
            raise LoadUnavailable(f"cannot read {self.what}: {exc.strerror or exc}") from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise LoadUnavailable(f"{self.what} is {_file_kind(mode)}, not a regular file")
            data = os.read(fd, OUTPUT_LIMIT + 1)
        except OSError as exc:
            raise LoadUnavailable(f"cannot read {self.what}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)
        if len(data) > OUTPUT_LIMIT:
            raise LoadUnavailable(f"{self.what} is larger than {OUTPUT_LIMIT // 1024} KiB, not a load")
        return _parse(data, self.what)


class CommandLoad:
    """The load is what a shell command prints, run on every reading."""

    def __init__(self, command: str, *, timeout: float = 5.0) -> None:
        if not timeout > 0:
            raise InvalidInput(f"invalid load command timeout {timeout!r}: must be a number of seconds greater than 0")
        self.command = command
        self.timeout = timeout
        self.what = f"load command {command!r}"
        self._running: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def __call__(self) -> int:
        deadline = time.monotonic() + self.timeout
        with self._lock:
            try:
                # Its own session and process group, so the timeout kills the
                # whole pipeline and no grandchild keeps our pipes open.
                proc = subprocess.Popen(self.command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
            except OSError as exc:
                raise LoadUnavailable(f"cannot run {self.what}: {exc.strerror or exc}") from None
            self._running = proc
        try:
            out, err, problem = _read_bounded(proc, deadline)
            if problem is None:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    problem = "timeout"
            if problem is not None:
                _kill_group(proc)
                if problem == "timeout":
                    raise LoadUnavailable(f"{self.what} timed out after {self.timeout:g} s (killed)")
                raise LoadUnavailable(f"{self.what} printed more than {OUTPUT_LIMIT // 1024} KiB (killed)")
        finally:
            with self._lock:
                self._running = None
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            if proc.returncode is None:
                _kill_group(proc)
        if proc.returncode != 0:
            first = (err.decode("utf-8", errors="replace").strip().splitlines() or [""])[0][:200]
            how = (f"was killed by {_signal_name(-proc.returncode)}" if proc.returncode < 0
                   else f"exited with {proc.returncode}")
            raise LoadUnavailable(f"{self.what} {how}" + (f": {first}" if first else ""))
        return _parse(out, self.what)

    def cancel(self) -> None:
        """Kill the command running now, if any (its reading then fails);
        the driver calls this on stop, so no command outlives a stop."""
        with self._lock:
            proc = self._running
            if proc is not None and proc.returncode is None:
                _kill_group(proc, reap=False)


def _read_bounded(proc: subprocess.Popen, deadline: float) -> tuple[bytes, bytes, str | None]:
    """stdout and stderr until both close: (out, err, None), or (.., 'timeout' | 'too much')."""
    out, err = bytearray(), bytearray()
    sink = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    with selectors.DefaultSelector() as selector:
        for fd in sink:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return bytes(out), bytes(err), "timeout"
            for key, _ in selector.select(left):
                try:
                    chunk = os.read(key.fd, _CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                sink[key.fd] += chunk
                if len(out) + len(err) > OUTPUT_LIMIT:
                    return bytes(out), bytes(err), "too much"
    return bytes(out), bytes(err), None


def _kill_group(proc: subprocess.Popen, *, reap: bool = True) -> None:
    # The group is killed before the leader is reaped: until then its pid,
    # and so the group id, cannot be reused by an unrelated process.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    if reap:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover (SIGKILL cannot be ignored)
            pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
