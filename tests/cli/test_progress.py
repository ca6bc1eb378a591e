"""Progress on long work (issue 13, items 5 and 6): Rich bars with rate and ETA
on a terminal, the periodic log lines otherwise; drain and clear in pipelined
batches; a drain that keeps its --rate.

A terminal is a real pseudo-terminal: the installed `stroute` runs as a child
process with its stderr on the pty, so Rich decides for itself that stderr is
a terminal, as it does for an operator.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import time

import pytest

from link_place_support import run
from ops_support import bin_env, cli_json, isolated, put_state, stroute_bin  # noqa: F401
from stroute import operations
from stroute.operations import Drain, clear_pod
from support import check_invariant

pytestmark = pytest.mark.usefixtures("isolated")

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(tmp_path, *args, stdin=subprocess.DEVNULL, timeout: float = 60, **env):
    """Run `stroute ARGS` with stderr on a pseudo-terminal 160 columns wide:
    (exit code, stdout, what the terminal received with the escapes taken out)."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    environment = bin_env(tmp_path, **env)
    environment.pop("NO_COLOR", None)
    environment["TERM"] = "xterm-256color"
    environment.pop("COLUMNS", None)
    process = subprocess.Popen([stroute_bin(), *args], stdin=stdin, stdout=subprocess.PIPE, stderr=slave,
                               cwd=tmp_path, env=environment)
    os.close(slave)
    received = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed its end
                    chunk = b""
                if not chunk:
                    break
                received += chunk
            elif process.poll() is not None:
                break
        out = process.stdout.read().decode()
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        os.close(master)
    return code, out, ANSI.sub("", received.decode("utf-8", "replace"))


def temporary_links(client, n: int, pod: int, service: str = "game", prefix: str = "u") -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.set(f"sf:{{default:lk:{prefix}{i}}}{service}", pod, px=3_600_000)
    pipe.execute()


def drain_setup(client, temporary: int, persistent: int = 0) -> None:
    """Pods 0 and 2 routable, pod 1 to drain with its links."""
    for pod in (0, 1, 2):
        put_state(client, "game", pod, load=5)
    temporary_links(client, temporary, 1)
    for i in range(persistent):
        client.set(f"sf:{{default:lk:p{i}}}game", 1)
        client.hset(f"sf:{{default:lk:p{i}}}", "game", 1)


def link_count(client, pod: int | None = None) -> int:
    keys = [k for k in client.scan_iter(match="sf:{default:lk:*}game", count=1000)]
    if pod is None:
        return len(keys)
    return sum(1 for v in client.mget(keys) if v == str(pod)) if keys else 0


# --- item 5: a Rich bar with rate and ETA on a terminal, log lines otherwise -------------------


@pytest.mark.realserver
def test_drain_bar_on_a_terminal_has_rate_and_eta_and_counts_only_links_it_moves(real_url, redis_server, tmp_path):
    client = redis_server.client()
    drain_setup(client, 6000, persistent=40)
    code, out, err = on_a_terminal(tmp_path, "--redis-url", real_url, "-o", "json", "pod", "drain", "game", "1",
                                   "--migrate", "--rate", "4000", STROUTE_STATE_REFRESH="0")
    assert code == 0, err
    assert json.loads(out)["moved"] == 6000
    assert "moving links off pod 1" in err
    assert "/6000" in err and "/6040" not in err  # the 40 persistent links stay: not in the total
    assert "6000/6000" in err and "100%" in err
    rates = [int(r.replace(",", "")) for r in re.findall(r"([\d,]+) links/s", err)]
    assert rates and 3000 <= rates[-1] <= 4400, rates  # Rich's own estimate of the rate
    assert re.search(r"\b0:00:0\d\b", err)  # the time left
    client.close()


def test_without_a_terminal_only_the_periodic_log_lines_show(url, store, monkeypatch):
    import stroute.cli.progress as progress

    monkeypatch.setattr(progress, "_LOG_EVERY_S", 0)  # a log line at every update
    monkeypatch.setattr(operations, "BATCH", 10)
    drain_setup(store.client, 30, persistent=2)
    code, data, err = cli_json("--redis-url", url, "pod", "drain", "game", "1", "--migrate",
                               env={"STROUTE_STATE_REFRESH": "0"})
    assert code == 0 and data["moved"] == 30, err
    assert "stroute: moving links off pod 1: 10 of 30, " in err
    assert re.search(r"stroute: moving links off pod 1: 20 of 30, [\d,]+ links/s, about \d+s left, 0 skipped", err)
    assert "━" not in err and "\r" not in err and "\x1b" not in err


def test_a_short_run_without_a_terminal_prints_no_progress(url, store):
    drain_setup(store.client, 30)
    code, _, err = cli_json("--redis-url", url, "pod", "drain", "game", "1", "--migrate",
                            env={"STROUTE_STATE_REFRESH": "0"})
    assert code == 0 and err == ""


def test_drain_progress_total_is_the_links_to_move(url, config, store, monkeypatch):
    monkeypatch.setattr(operations, "BATCH", 4)
    drain_setup(store.client, 10, persistent=3)
    for include, expected in ((False, 10), (True, 13)):
        seen = []
        Drain(store, config, "game", 1, migrate=True, include_persistent=include, on_progress=seen.append).run()
        assert {p.total for p in seen if p.phase != "done" or p.done} == {expected}, seen
        done = [p.done for p in seen if p.phase == "migrate"]
        assert done[:3] == [0, 4, 8] and max(done) == expected  # a batch of 4 at a time
        assert seen[-1].done == expected and seen[-1].moved == expected
        # Back on pod 1 for the second round.
        for key in store.client.scan_iter(match="sf:{default:lk:*}game"):
            store.client.set(key, 1, keepttl=True)
        for i in range(3):
            store.client.hset(f"sf:{{default:lk:p{i}}}", "game", 1)
        store.set_cordon("default", "game", 1, False)
    seen = []
    Drain(store, config, "game", 1, on_progress=seen.append).run()  # without --migrate: links leaving
    assert seen[0].total == 13 and seen[0].done == 0


@pytest.mark.realserver
def test_import_bar_runs_against_the_file_size(real_url, tmp_path):
    lines = [json.dumps({"namespace": "default", "uid": f"i{i}", "service": "game", "pod": i % 4,
                         "persistent": False, "ttl": 3600}) for i in range(30_000)]
    (tmp_path / "links.jsonl").write_text("\n".join(lines) + "\n")
    size = (tmp_path / "links.jsonl").stat().st_size
    code, out, err = on_a_terminal(tmp_path, "--redis-url", real_url, "-o", "json", "import", "links.jsonl")
    assert code == 0, err
    assert json.loads(out)["imported"] == 30_000
    assert "importing links" in err and "30000 lines" in err
    assert f"{size / 1e6:.1f}/{size / 1e6:.1f} MB" in err  # bytes read of the file's size, at the end
    assert re.search(r"[\d.]+ [kM]B/s", err)  # the rate
    assert "100%" in err and re.search(r"\b0:00:0\d\b", err)


def test_import_log_lines_name_bytes_of_the_file(url, tmp_path, monkeypatch):
    import stroute.cli.progress as progress

    monkeypatch.setattr(progress, "_LOG_EVERY_S", 0)
    lines = [json.dumps({"namespace": "default", "uid": f"i{i}", "service": "game", "pod": 1,
                         "persistent": True, "ttl": None}) for i in range(1200)]
    (tmp_path / "f").write_text("\n".join(lines) + "\n")
    code, data, err = cli_json("--redis-url", url, "import", "f")
    assert code == 0 and data["imported"] == 1200, err
    size = (tmp_path / "f").stat().st_size
    assert re.search(rf"stroute: importing links: [\d.]+ kB of {size / 1000:.1f} kB, .*B/s.*, 500 lines", err), err


def test_import_from_a_pipe_counts_lines(url, tmp_path, monkeypatch):
    import stroute.cli.progress as progress

    monkeypatch.setattr(progress, "_LOG_EVERY_S", 0)
    lines = "".join(json.dumps({"namespace": "default", "uid": f"i{i}", "service": "game", "pod": 1,
                                "persistent": True, "ttl": None}) + "\n" for i in range(600))
    result = run("--redis-url", url, "-o", "json", "import", "-", input=lines)
    assert result.exit_code == 0, result.stderr
    assert "stroute: importing links... 500 so far (" in result.stderr and "lines/s)" in result.stderr


@pytest.mark.realserver
def test_place_from_a_file_shows_a_bar_and_from_a_pipe_none(real_url, redis_server, tmp_path):
    client = redis_server.client()
    for pod in (0, 1):
        put_state(client, "game", pod)
    (tmp_path / "uids").write_text("\n".join(f"f{i}" for i in range(2500)) + "\n")
    with open(tmp_path / "uids", "rb") as stdin:
        code, out, err = on_a_terminal(tmp_path, "--redis-url", real_url, "-o", "json", "place", "-", "-s", "game",
                                       stdin=stdin)
    assert code == 0, err
    assert len(json.loads(out)["placements"]) == 2500
    assert "placing users" in err and "2500/2500" in err and "uids/s" in err
    piped = subprocess.Popen(["cat", str(tmp_path / "uids")], stdout=subprocess.PIPE)
    try:
        code, out, err = on_a_terminal(tmp_path, "--redis-url", real_url, "-o", "json", "place", "-", "-s", "game",
                                       stdin=piped.stdout)
    finally:
        piped.stdout.close()
        piped.wait()
    assert code == 0 and len(json.loads(out)["placements"]) == 2500
    assert "placing users" not in err
    client.close()


def test_place_from_a_file_goes_in_pipelined_batches(url, store, monkeypatch):
    from stroute.cli import place
    from stroute.client import ClientDriver

    put_state(store.client, "game", 0)
    put_state(store.client, "game", 1)
    calls = []
    original = ClientDriver.place_many

    def counted(self, uids, service, **kwargs):
        calls.append(len(uids))
        return original(self, uids, service, **kwargs)

    monkeypatch.setattr(ClientDriver, "place_many", counted)
    monkeypatch.setattr(place, "_stdin_is_a_file", lambda: True)
    result = run("--redis-url", url, "-o", "json", "place", "-", "-s", "game",
                 input="\n".join(f"f{i}" for i in range(2500)))
    assert result.exit_code == 0, result.stderr
    assert calls == [1000, 1000, 500]
    assert len(json.loads(result.stdout)["placements"]) == 2500
    assert link_count(store.client) == 2500


def test_counter_on_a_forced_terminal_shows_the_rate(monkeypatch):
    """The counter (a total unknown: link list, export, clear) renders with Rich's rate column."""
    import io

    from rich.console import Console

    import stroute.cli.progress as progress
    from stroute.cli import output

    buffer = io.StringIO()
    now = [100.0]
    # A terminal Rich draws on, in place of stderr.
    monkeypatch.setattr(output, "console", lambda stderr=False: Console(file=buffer, force_terminal=True, width=120))
    bar = progress._rich_progress("links", total_known=False)
    bar.get_time = lambda: now[0]
    task = bar.add_task("scanning links", total=None, detail="")
    bar.update(task, completed=500)
    now[0] += 0.5
    bar.update(task, completed=1500)
    bar.console.print(bar.make_tasks_table(bar.tasks))  # the line the live display draws
    text = ANSI.sub("", buffer.getvalue())
    assert "scanning links" in text and "1,500" in text and "2,000 links/s" in text
