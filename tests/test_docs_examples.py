"""Every console example in README.md and docs/*.md runs, and prints what the page says.

The convention (docs/cli.md, "How the examples are tested", says it for
writers):

- A ```console block holds commands, each on a `$ ` line, followed by what
  it prints on a terminal: stdout and stderr as they interleave, 80 columns,
  no colour (NO_COLOR), and `# exit N` when it exits N != 0. Blank lines
  are for reading and are not compared.
- The blocks of one page run in order, as one session: one fresh
  redis-server (stroute.testing, as the fixtures start it) per page, its
  URL in STROUTE_REDIS_URL and REDIS_URL, the repository in REPO, a fresh
  HOME that is also the working directory, the venv's `stroute` first on
  PATH and `redis-cli` pointed at that server. Each command runs under
  `bash -c` on a pseudo-terminal, so tables are drawn as a person sees them;
  a pipe in the command makes stroute's stdout a pipe, as it would.
- `export NAME=VALUE` and `unset NAME` change the environment of the
  commands after them. `cat FILE` of a file that does not exist yet writes
  it from the lines shown under it: a page shows a file, then uses it.
- `CMD &` starts a background job: the lines shown under it are waited for
  (up to 20 s) in what it prints; what it prints later is not compared.
  `kill [-SIG] %N` signals the page's N-th background job, `wait` waits for
  them all; whatever still runs at the end of the page is stopped.
- `<!-- setup: ... -->` just before a block (the rest of the comment, one
  command a line) runs first; each must exit 0, and its output is not
  compared. A `stroute serve ... &` there is waited for until it logs its
  pod's first state.
- `<!-- not run: REASON -->` just before a block marks an example that
  cannot run here (a cluster, Sentinel, TLS, fixed ports, a live display);
  test_not_run_examples_say_why lists them with their reasons, so none is
  skipped silently.
- Placeholders. Both sides are normalised before comparing: runs of spaces,
  of `-` and of `━` count as one (column widths may differ); ages and
  durations (`1.3s`, `932ms`, `1m05s`, `16.9 s ago`, `2.9 ms`) read
  `<age>`; ISO times `<time>`; 13-digit Unix ms `<epoch>`; the number of a
  JSON key ending in `_ms` `<ms>`; of `"ttl_s"` `<ttl>`; a loopback port
  `<port>`; HOME (a /tmp/hXXXXXXXX of any run) `~`; an embedded server's
  /tmp socket `<socket>`. A page may show real values or these
  placeholders. For values that differ from run to run the page may write
  `<n>` (a number), `<pod>` (a pod index) or `<any>` (a word); `...` is any
  text within a line, and any lines when alone on a line.

STROUTE_DOCS_UPDATE=1 rewrites the output of every example that differs
with what it printed (ports as placeholders); review the diff, and put the
placeholders back where values vary, before committing.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stroute.testing import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
COMMAND_TIMEOUT = 60.0
BACKGROUND_WAIT = 20.0
UPDATE = os.environ.get("STROUTE_DOCS_UPDATE") == "1"


@dataclass
class Command:
    line: int  # 1-based line of the `$ ` line in the page
    text: str
    expected: list[str]


@dataclass
class Block:
    page: str
    line: int  # the opening fence
    end: int  # the closing fence
    commands: list[Command]
    setup: list[str] = field(default_factory=list)
    not_run: str | None = None


_DIRECTIVE = re.compile(r"<!--\s*(setup|not run):(.*?)-->", re.S)


def parse(page: str, text: str) -> list[Block]:
    """The console blocks of a page, with the directive of the comment just before each."""
    lines = text.splitlines()
    blocks, i, pending = [], 0, None
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped.startswith("<!--"):
            j = i
            while "-->" not in lines[j]:
                j += 1
            match = _DIRECTIVE.search("\n".join(lines[i:j + 1]))
            pending = (match.group(1), match.group(2)) if match else pending
            i = j + 1
            continue
        if stripped.startswith("```"):
            fence, lang, start = stripped[:3], stripped[3:].strip(), i
            i += 1
            while not lines[i].strip().startswith(fence):
                i += 1
            if lang == "console":
                indent = len(lines[start]) - len(lines[start].lstrip())  # a block inside a list item
                block = Block(page, start + 1, i + 1, _commands([row[indent:] for row in lines], start + 1, i))
                if pending and pending[0] == "setup":
                    block.setup = [c.strip() for c in pending[1].strip().splitlines() if c.strip()]
                elif pending:
                    block.not_run = pending[1].strip()
                blocks.append(block)
            pending = None
        elif stripped:
            pending = None if not stripped.startswith("<!--") else pending
        i += 1
    return blocks


def _commands(lines: list[str], start: int, end: int) -> list[Command]:
    commands: list[Command] = []
    for index in range(start, end):
        row = lines[index]
        if row.startswith("$ "):
            commands.append(Command(index + 1, row[2:], []))
        elif commands:
            commands[-1].expected.append(row)
    return commands


# -- comparing ---------------------------------------------------------------

_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Z0-9]|[=>])")
_NORMALISE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?"), "<time>"),
    (re.compile(r"\b1\d{12}\b"), "<epoch>"),
    (re.compile(r'(_ms"?:\s*)\d+'), r"\1<ms>"),
    (re.compile(r'("ttl_s":\s*)\d+(\.\d+)?'), r"\1<ttl>"),
    (re.compile(r"\b(127\.0\.0\.1|localhost|\[::1\]):\d+"), r"\1:<port>"),
    (re.compile(r"/tmp/h\w{8}\b"), "~"),  # HOME of an earlier run, as a page shows it
    (re.compile(r"/tmp/stroute-\d+-[0-9a-f]+\.sock"), "<socket>"),
    (re.compile(r"\b\d+m\d+s\b"), "<age>"),
    (re.compile(r"\b\d+(\.\d+)? ?ms\b"), "<age>"),
    (re.compile(r"\b\d+\.\d+ ?s\b"), "<age>"),
    (re.compile(r"\b\d+s\b"), "<age>"),
    (re.compile(r"[ \t]+"), " "),
    (re.compile(r"-{2,}"), "-"),
    (re.compile(r"━+"), "━"),
]
_WILD = {"<n>": r"[\d.,]+(?:e-?\d+)?", "<pod>": r"\d+", "<any>": r"\S+"}


_CSI = re.compile(r"\x1b\[([0-?]*)[ -/]*([@-~])")


def clean(raw: bytes, width: int = 80) -> str:
    """What a terminal `width` columns wide shows after these bytes.

    A small screen model: text overwrites at the cursor and wraps at the
    right margin; newline, carriage return, cursor up/down and erase-line
    move or clear within the screen's rows, as a terminal does (so a
    progress bar that Rich erased is gone); other escape sequences (colour,
    cursor visibility) change nothing shown. Rows a long line wrapped onto
    are joined again, so a page shows such a line whole.
    """
    text = raw.decode("utf-8", "replace")
    screen: list[list[str]] = [[]]
    wrapped = [False]  # row i continues row i - 1
    row = col = i = 0

    def at(r: int) -> list[str]:
        while r >= len(screen):
            screen.append([])
            wrapped.append(False)
        return screen[r]

    while i < len(text):
        char = text[i]
        if char == "\x1b":
            csi = _CSI.match(text, i)
            if csi:
                arg, final = csi.group(1), csi.group(2)
                count = int(arg) if arg.isdigit() else 1
                if final == "A":
                    row = max(0, row - count)
                elif final == "B":
                    row += count
                elif final == "K":
                    line = at(row)
                    del line[col if arg in ("", "0") else 0:]
                elif final == "G":
                    col = max(0, count - 1)
                i = csi.end()
            else:
                other = _ANSI.match(text, i)
                i = other.end() if other else i + 1
            continue
        if char == "\n":
            row, col = row + 1, 0
            at(row)
        elif char == "\r":
            col = 0
        elif char >= " " or char == "\t":
            if col >= width:
                row, col = row + 1, 0
                at(row)
                wrapped[row] = True
            line = at(row)
            line.extend(" " * (col - len(line)))
            line[col:col + 1] = [char]
            col += 1
        i += 1
    lines: list[str] = []
    for index, cells in enumerate(screen):
        if wrapped[index] and lines:
            lines[-1] += "".join(cells)
        else:
            lines.append("".join(cells))
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + ("\n" if lines else "")


def normalise(text: str, workdir: str) -> list[str]:
    text = text.replace(workdir, "~")
    out = []
    for row in text.splitlines():
        for pattern, repl in _NORMALISE:
            row = pattern.sub(repl, row)
        row = row.strip()
        if row:
            out.append(row)
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    parts = []
    for row in expected:
        if row == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        body = r"[^\n]*".join(re.escape(piece) for piece in row.split("..."))
        for token, pattern in _WILD.items():
            body = body.replace(re.escape(token), pattern)
        parts.append(body + r"\n")
    return re.fullmatch("".join(parts), "".join(r + "\n" for r in actual)) is not None


# -- running -----------------------------------------------------------------

def _redis_cli_shim(bindir: Path) -> None:
    """`redis-cli` as the examples use it: the file's server, a terminal's reply format."""
    real = shutil.which("redis-cli")
    shim = bindir / "redis-cli"
    if real:
        shim.write_text(f'#!/bin/sh\nexec {real} -u "$STROUTE_REDIS_URL" "$@"\n')
    else:  # no redis-cli on this machine: enough of one for the examples, over redis-py
        shim.write_text(f"#!{sys.executable}\n" + _PY_REDIS_CLI)
    shim.chmod(0o755)


_PY_REDIS_CLI = '''
import os, sys, redis
def show(reply, indent=""):
    if reply is None: return "(nil)"
    if isinstance(reply, bool): return "OK" if reply else "(integer) 0"
    if isinstance(reply, int): return f"(integer) {reply}"
    if isinstance(reply, bytes): return '"' + reply.decode("utf-8", "backslashreplace") + '"'
    if isinstance(reply, (list, set)):
        if not reply: return "(empty array)"
        return "\\n".join(f"{indent}{i}) {show(r)}" for i, r in enumerate(reply, 1))
    return str(reply)
client = redis.Redis.from_url(os.environ["STROUTE_REDIS_URL"])
if sys.argv[1:2] == ["--scan"]:  # redis-cli --scan [--pattern P]: one key a line, raw
    args = sys.argv[2:]
    match = args[args.index("--pattern") + 1] if "--pattern" in args else None
    for key in client.scan_iter(match=match):
        print(key.decode("utf-8", "backslashreplace"))
    sys.exit(0)
try:
    reply = client.execute_command(*sys.argv[1:])
except redis.ResponseError as exc:
    print(f"(error) {exc}"); sys.exit(0)
print("OK" if reply is True or reply == b"OK" else show(reply))
'''


class Session:
    """One page's run: its redis-server, working directory, environment and background jobs."""

    def __init__(self, tmp: Path) -> None:
        self.server = RedisServer().start()
        # The working directory is HOME, as in a fresh login; a short path of
        # fixed length, so tables that show it fold the same way every run.
        self.dir = Path(tempfile.mkdtemp(prefix="h", dir="/tmp"))
        self.tmp = tmp
        bindir = tmp / "bin"
        bindir.mkdir()
        _redis_cli_shim(bindir)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STROUTE_", "REDIS"))}
        env.update(
            HOME=str(self.dir), XDG_CONFIG_HOME=str(self.dir / ".config"),
            XDG_DATA_HOME=str(self.dir / ".local" / "share"), XDG_STATE_HOME=str(self.dir / ".local" / "state"),
            PATH=os.pathsep.join([str(bindir), str(Path(sys.executable).parent), env.get("PATH", "")]),
            STROUTE_REDIS_URL=self.server.url, REDIS_URL=self.server.url, REPO=str(ROOT), COLUMNS="80", LINES="24", NO_COLOR="1", TERM="xterm", TZ="UTC",
            LC_ALL="C.UTF-8", PYTHONUNBUFFERED="1",
        )
        self.env = env
        self.jobs: list[tuple[subprocess.Popen, Path]] = []

    def run(self, command: str, expected: list[str] | None = None) -> tuple[str, int]:
        """Run one command line; its output as a terminal shows it, and its exit status."""
        exported = re.fullmatch(r"export (\w+)=(.*)", command.strip())
        if exported:
            value = subprocess.run(["bash", "-c", f"printf %s {exported.group(2)}"], capture_output=True,
                                   text=True, env=self.env, cwd=self.dir).stdout
            self.env[exported.group(1)] = value
            return "", 0
        unset = re.fullmatch(r"unset (\w+)", command.strip())
        if unset:
            self.env.pop(unset.group(1), None)
            return "", 0
        if command.strip() == "wait":
            for job, _ in self.jobs:
                job.wait(timeout=COMMAND_TIMEOUT)
            return "", 0
        shown = re.fullmatch(r"cat (\S+)", command.strip())
        if shown and expected is not None and not (self.dir / shown.group(1)).exists():
            (self.dir / shown.group(1)).write_text("".join(row + "\n" for row in _rstrip_blank(expected)))
        if re.match(r"\s*kill\b", command):
            numbers = [int(n) for n in re.findall(r"%(\d+)", command)]
            if any(not 1 <= n <= len(self.jobs) for n in numbers):
                return f"# no such job: {command} ({len(self.jobs)} jobs started)\n", -1
            command = re.sub(r"%(\d+)", lambda m: str(self.jobs[int(m.group(1)) - 1][0].pid), command)
        return self._tty(command)

    def _tty(self, command: str) -> tuple[str, int]:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, int(self.env["COLUMNS"]), 0, 0))
        proc = subprocess.Popen(["bash", "-c", command], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                env=self.env, cwd=self.dir, start_new_session=True)
        os.close(slave)
        chunks, deadline = [], time.monotonic() + COMMAND_TIMEOUT
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every writer closed the terminal
                        break
                    if not data:
                        break
                    chunks.append(data)
                elif proc.poll() is not None:
                    break  # exited; a child it left running keeps the terminal open
            else:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return clean(b"".join(chunks)) + f"# still running after {COMMAND_TIMEOUT} s: killed\n", -9
            return clean(b"".join(chunks), int(self.env["COLUMNS"])), proc.wait(timeout=COMMAND_TIMEOUT)
        finally:
            os.close(master)

    def background(self, command: str, wanted: list[str], wait: float = BACKGROUND_WAIT) -> tuple[str, bool]:
        """Start `command` as a job; wait until it has printed the lines `wanted` (normalised)."""
        log = self.tmp / f"job-{len(self.jobs) + 1}.log"
        with open(log, "wb") as sink:
            # bash runs a lone command in its own process, so `kill %N` reaches it.
            proc = subprocess.Popen(["bash", "-c", command], stdin=subprocess.DEVNULL, stdout=sink,
                                    stderr=subprocess.STDOUT, env=self.env, cwd=self.dir, start_new_session=True)
        self.jobs.append((proc, log))
        want = normalise("\n".join(wanted), str(self.dir))
        deadline = time.monotonic() + wait
        while True:
            seen = clean(log.read_bytes())
            got = normalise(seen, str(self.dir))
            if matches(want + ["..."], got) or time.monotonic() > deadline or proc.poll() is not None:
                return seen, matches(want + ["..."], got)
            time.sleep(0.05)

    def close(self) -> None:
        for proc, _ in self.jobs:
            if proc.poll() is None:  # twice: a stroute serve then skips its drain window
                for _ in range(2):
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                    time.sleep(0.05)
        for proc, _ in self.jobs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._embedded_used():  # an example started the embedded server: stop it
            env = {k: v for k, v in self.env.items() if k != "STROUTE_REDIS_URL"}
            subprocess.run(["stroute", "embedded", "stop"], env=env, cwd=self.dir, capture_output=True, timeout=30)
        self.server.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _embedded_used(self) -> bool:
        return (self.dir / ".local" / "share" / "stroute").exists()


def _display(text: str, workdir: str) -> list[str]:
    """Output as a page shows it: ports as placeholders, real values elsewhere."""
    text = re.sub(r"\b(127\.0\.0\.1|localhost):\d+", r"\1:<port>", text)
    return [row.rstrip() for row in text.strip("\n").splitlines()]


# A setup job is ready once it logs its pod's first state (`stroute serve`).
_FIRST_STATE = "...pod <n> of <any>: ..."


def run_page(page: str, tmp: Path) -> tuple[list[str], int]:
    """Run a page's examples; the failures (each naming page and line), and how many commands ran."""
    blocks = [b for b in parse(page, (ROOT / page).read_text()) if b.not_run is None]
    failures, ran, updates = [], 0, {}
    if not blocks:
        return failures, ran
    session = Session(tmp)
    try:
        for block in blocks:
            for step in block.setup:
                if step.endswith("&"):
                    seen, ok = session.background(step[:-1].rstrip(), ["...", _FIRST_STATE])
                    if not ok:
                        failures.append(f"{page}:{block.line}: setup job {step!r} published no state within "
                                        f"{BACKGROUND_WAIT} s:\n{seen}")
                    continue
                output, code = session.run(step)
                if code != 0:
                    failures.append(f"{page}:{block.line}: setup {step!r} exited {code}:\n{output}")
            for command in block.commands:
                ran += 1
                where = f"{page}:{command.line}"
                text = command.text.rstrip()
                if text.endswith("&") and not text.endswith("&&"):
                    if not _rstrip_blank(command.expected):
                        failures.append(f"{where}: background job `{text}`: show the lines it prints when it is "
                                        "ready, so the next command waits for them")
                        if UPDATE:  # what it printed in its first seconds, to trim by hand
                            seen, _ = session.background(text[:-1].rstrip(), ["<never>"], wait=3.0)
                            updates[command.line] = (len(command.expected), _display(seen, str(session.dir)))
                        else:
                            session.background(text[:-1].rstrip(), [], wait=0)
                        continue
                    seen, ok = session.background(text[:-1].rstrip(), command.expected)
                    if not ok:
                        failures.append(f"{where}: background job `{text}` did not print what the page shows "
                                        f"within {BACKGROUND_WAIT} s:\n--- page\n" + "\n".join(command.expected)
                                        + "\n--- printed\n" + seen)
                    continue
                output, code = session.run(text, command.expected)
                if code:
                    output = output.rstrip("\n") + f"\n# exit {code}"
                want, got = normalise("\n".join(command.expected), str(session.dir)), normalise(output, str(session.dir))
                if not matches(want, got):
                    failures.append(f"{where}: `{text}` printed something else than the page shows:\n--- page\n"
                                    + "\n".join(command.expected).rstrip() + "\n--- printed\n" + output.rstrip())
                    updates[command.line] = (len(command.expected), _display(output, str(session.dir)))
    finally:
        session.close()
    if UPDATE and updates:
        _rewrite(page, updates)
    return failures, ran


def _rewrite(page: str, updates: dict[int, tuple[int, list[str]]]) -> None:
    lines = (ROOT / page).read_text().splitlines()
    for line in sorted(updates, reverse=True):
        count, new = updates[line]
        old = lines[line:line + count]
        trailing = len(old) - len(list(_rstrip_blank(old)))
        lines[line:line + count] = new + [""] * trailing
    (ROOT / page).write_text("\n".join(lines) + "\n")


def _rstrip_blank(rows: list[str]) -> list[str]:
    rows = list(rows)
    while rows and not rows[-1].strip():
        rows.pop()
    return rows


# -- the tests ---------------------------------------------------------------

RUN_PAGES = [p for p in PAGES if any(b.not_run is None for b in parse(p, (ROOT / p).read_text()))]


@pytest.mark.realserver
@pytest.mark.parametrize("page", RUN_PAGES)
def test_console_examples_print_what_the_page_shows(page, tmp_path):
    failures, ran = run_page(page, tmp_path)
    assert ran > 0
    assert not failures, f"{len(failures)} of {ran} examples in {page} differ:\n\n" + "\n\n".join(failures)


def test_not_run_examples_say_why():
    listed = []
    for page in PAGES:
        for block in parse(page, (ROOT / page).read_text()):
            if block.not_run is not None:
                assert block.not_run, f"{page}:{block.line}: a `not run` marker must give its reason"
                listed.append(f"{page}:{block.line}: {block.not_run}")
    print(f"\n{len(listed)} console blocks not run:\n" + "\n".join(listed))
    ran = sum(1 for page in PAGES for b in parse(page, (ROOT / page).read_text()) if b.not_run is None)
    assert ran >= len(listed), "most examples run: a not-run block is the exception"


def test_only_console_blocks_hold_commands_with_output():
    # A `$ stroute` example in another kind of block would never be run: it
    # must be a console block (run, or marked not run with a reason).
    hidden = []
    for page in PAGES:
        lang = None
        for number, row in enumerate((ROOT / page).read_text().splitlines(), 1):
            if row.strip().startswith("```"):
                lang = row.strip()[3:].strip() if lang is None else None
            elif lang is not None and lang != "console" and row.startswith("$ stroute"):
                hidden.append(f"{page}:{number}: ```{lang or ''} block")
    assert hidden == []


def test_the_comparison_tolerates_times_and_nothing_else():
    page = ["pod 0  READY  120  1.3s ago  11.3s", '{"heartbeat_age_ms": 3435, "epoch_ms": 1796026142569}',
            "stroute: placed on pod <pod>", "..."]
    assert matches(normalise("\n".join(page), "/w"),
                   normalise("pod 0    READY    120  932ms ago  1m05s\n"
                             '{"heartbeat_age_ms": 12, "epoch_ms": 1796026149999}\nstroute: placed on pod 2\nmore\n', "/w"))
    assert not matches(normalise("pod 0  READY  120", "/w"), normalise("pod 0  READY  121", "/w"))
    assert not matches(normalise("pod 0  READY", "/w"), normalise("pod 0  DRAINING", "/w"))
    assert not matches(normalise("a\nb", "/w"), normalise("a\nb\nc", "/w"))  # no unannounced extra lines


@pytest.mark.realserver
def test_a_listing_or_export_on_a_terminal_is_not_overwritten_by_the_scan_count(tmp_path):
    # With stdout and stderr on one terminal, the live count on stderr used to
    # draw over the rows (or the JSON) that `link list` and `export` print as they scan.
    session = Session(tmp_path)
    try:
        for uid in ("a", "b", "c"):
            assert session.run(f"stroute link set {uid} -s game --pod 1")[1] == 0
        output, code = session.run("stroute -o json link list -s game")
        assert code == 0 and "scanning links" not in output, output
        assert sorted(link["uid"] for link in json.loads(output)["links"]) == ["a", "b", "c"]
        output, code = session.run("stroute --no-headers link list")
        assert code == 0 and "scanning links" not in output, output
        rows = [row.split()[0] for row in output.splitlines() if row.strip() and not row.startswith("stroute:")]
        assert sorted(rows) == ["a", "b", "c"], output
        output, code = session.run("stroute export -s game")  # its lines are data on the terminal too
        assert code == 0 and "exporting links" not in output, output
        lines = [line for line in output.splitlines() if line.startswith("{")]
        assert sorted(json.loads(line)["uid"] for line in lines) == ["a", "b", "c"], output
    finally:
        session.close()


@pytest.mark.realserver
def test_the_redis_cli_stand_in_answers_as_redis_cli_does_on_a_terminal(tmp_path):
    # A machine without redis-cli runs the pages' redis-cli lines through the
    # stand-in; its replies must read as redis-cli's on a terminal.
    session = Session(tmp_path)
    try:
        stand_in = tmp_path / "bin" / "redis-cli"
        stand_in.write_text(f"#!{sys.executable}\n" + _PY_REDIS_CLI)
        expected = ["OK", "(integer) 1", "(integer) 0", '"v"', "(nil)", "OK"]
        for args, want in zip(["set k v", "sadd s a", "sadd s a", "get k", "get nope", "config set maxmemory 0"],
                              expected):
            output, code = session.run(f"redis-cli {args}")
            assert (code, output.strip()) == (0, want), args
    finally:
        session.close()
