"""Every command's help: capital placeholders, whole one-line summaries, Examples last."""

from __future__ import annotations

import re
import shlex

import pytest
import typer

from link_place_support import isolated, run  # noqa: F401  (fixture)
from stroute.cli.app import app

# UID, SVC, N, SECONDS, HOST:PORT, FILE|-, UID... : capitals, never <str> or {uid}
_METAVAR = re.compile(r"[A-Z][A-Z0-9_]*(?:[:|][A-Z0-9_-]+|\|-)*(?:\.\.\.)?")


def _commands():
    """(words, click command) of every command and group of the app."""
    root = typer.main.get_command(app)
    found = []

    def walk(command, words):
        found.append((words, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*words, name])

    walk(root, [])
    return found


_ALL = _commands()
_LEAVES = [(words, c) for words, c in _ALL if not hasattr(c, "commands")]
_GROUPS = [(words, c) for words, c in _ALL if hasattr(c, "commands")]


def _help(words: list[str]) -> str:
    result = run(*words, "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_the_tree_is_walked():
    names = {" ".join(words) for words, _ in _LEAVES}
    assert {"top", "pods", "link get", "pod drain", "tag set", "config validate", "embedded stop"} <= names


@pytest.mark.parametrize("words,command", _ALL, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_placeholder_is_in_capitals(isolated, words, command):
    ctx = typer.main.get_command(app).make_context("stroute", [], resilient_parsing=True)
    for param in command.params:
        if getattr(param, "is_flag", False) or getattr(param, "hidden", False):
            continue
        metavar = param.make_metavar(ctx)
        assert _METAVAR.fullmatch(metavar), f"stroute {' '.join(words)}: {param.name} reads {metavar!r}"
    text = _help(words)
    assert not re.search(r"<[a-z ]+>", text), text  # no <str>, <float>, <int range>
    assert "{" not in text, text


@pytest.mark.parametrize("words,command", _LEAVES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_every_command_help_ends_with_examples_of_itself(isolated, words, command):
    text = _help(words)
    head, sep, tail = text.rpartition("Examples:\n")
    assert sep, f"stroute {' '.join(words)} --help has no Examples section"
    assert "Options:" in head  # the section comes last
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, lines
    for line in lines:
        argv = shlex.split(line.split(" | ")[-1] if line.startswith(("echo", "printf", "seq")) else line)
        assert argv[0] == "stroute", line
        assert " ".join(words) in " ".join(a for a in argv[1:] if not a.startswith("-")) or \
            argv[1:1 + len(words)] == words, f"{line!r} is no example of stroute {' '.join(words)}"


@pytest.mark.parametrize("words,group", _GROUPS, ids=lambda v: " ".join(v) or "stroute" if isinstance(v, list) else "")
def test_no_command_summary_is_cut_at_80_columns(isolated, words, group):
    text = _help(words)
    listing = text.split("Commands:\n", 1)[1]
    summaries = {}
    for line in listing.splitlines():
        match = re.match(r"  (\S+)\s+(.*)", line)
        if match:
            summaries[match.group(1)] = match.group(2)
        else:  # a summary that wrapped onto a second line is cut in spirit
            assert not line.strip(), f"stroute {' '.join(words)}: a summary wraps: {line!r}"
    assert set(summaries) == set(group.commands)
    for name, summary in summaries.items():
        assert not summary.endswith(("...", "…")), f"{name}: {summary!r}"
        assert summary.strip(), name


def _example_lines(command) -> list[str]:
    return [line.strip() for line in (command.epilog or "").split("\b", 1)[-1].splitlines() if line.strip()]


# Examples that need what a test here does not have: a process that runs until
# stopped, a file, a shell pipe or redirection, another server.
_NOT_RUN = ("|", ">", "--watch", "--plot", "--redis-url", "stroute serve", "stroute demo", "stroute import",
            "stroute config validate stroute.yaml", "stroute embedded", "--config")


def _runnable():
    return [(words, line) for words, command in _LEAVES for line in _example_lines(command)
            if not any(mark in line for mark in _NOT_RUN)]


def test_most_examples_are_run():
    assert len(_runnable()) >= 25


@pytest.mark.parametrize("words,line", _runnable(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_example_runs_on_a_real_server(isolated, real_url, redis_server, words, line):
    """Every example a test can run parses and runs: no usage error, no exit 2."""
    from link_place_support import publish
    from stroute.config import Config

    config = Config().with_overrides(**{"redis.url": real_url})
    store = config.open_store()
    publish(config, store, "lobby", {0: 10, 1: 20, 2: 30})
    store.set(config.namespace, "42", "lobby", 1)
    store.set_tag(config.namespace, "lobby", "lobby")
    store.close()
    result = run("--redis-url", real_url, *shlex.split(line)[1:])
    assert result.exit_code in (0, 3, 4), f"{line}: exit {result.exit_code}\n{result.stderr}"
    assert "Usage:" not in result.stderr
