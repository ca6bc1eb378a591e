"""`stroute pod cordon|uncordon|forget|drain -s SVC --pod N`, and the positional
`SVC POD` of earlier releases: accepted for one release with a warning on
stderr, the same document on stdout and the same exit code."""

from __future__ import annotations

import json

import pytest

from ops_support import cli, cli_json, error_lines, isolated, put_state, run_bin  # noqa: F401
from stroute.podstate import RoutingState

pytestmark = pytest.mark.usefixtures("isolated")

CTL = "sf:{default:state:lobby}:ctl"
WARNING = "stroute: warning: 'stroute pod {verb} SVC POD' is deprecated and goes in the next release: " \
          "use 'stroute pod {verb} -s lobby --pod 1'"


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "deprecated" in line]


def _both_forms(url, verb, *extra):
    options = cli_json("--redis-url", url, "pod", verb, "-s", "lobby", "--pod", "1", *extra)
    positional = cli_json("--redis-url", url, "pod", verb, "lobby", "1", *extra)
    return options, positional


def test_cordon_and_uncordon_by_options_and_positionally(real_url, redis_server):
    client = redis_server.client()
    put_state(client, "lobby", 1, load=3)
    code, data, stderr = cli_json("--redis-url", real_url, "pod", "cordon", "-s", "lobby", "--pod", "1")
    assert (code, data["cordoned"], data["changed"]) == (0, True, True)
    assert _warnings(stderr) == []
    assert client.hget(CTL, "1") == "cordon"
    code, again, stderr = cli_json("--redis-url", real_url, "pod", "cordon", "lobby", "1")
    assert code == 0
    assert again == {**data, "changed": False}  # the same document, the same effect
    assert _warnings(stderr) == [WARNING.format(verb="cordon")]
    code, data, stderr = cli_json("--redis-url", real_url, "pod", "uncordon", "lobby", "1")
    assert (code, data["cordoned"], data["changed"]) == (0, False, True)
    assert _warnings(stderr) == [WARNING.format(verb="uncordon")]
    assert client.hget(CTL, "1") is None
    client.close()


def test_forget_in_both_forms_keeps_its_exit_code(real_url, redis_server):
    client = redis_server.client()
    put_state(client, "lobby", 1, load=3)  # alive: refused either way
    (code_o, data_o, err_o), (code_p, data_p, err_p) = _both_forms(real_url, "forget")
    assert code_o == code_p == 4
    assert data_o == data_p
    assert len(error_lines(err_o)) == len(error_lines(err_p)) == 1
    assert "is alive" in err_o and "is alive" in err_p
    assert _warnings(err_o) == [] and _warnings(err_p) == [WARNING.format(verb="forget")]
    client.close()


def test_drain_dry_run_in_both_forms_prints_the_same_document(real_url, redis_server):
    client = redis_server.client()
    for pod in (0, 1, 2):
        put_state(client, "lobby", pod, load=pod)
    client.set("sf:{default:lk:42}lobby", "1")
    (code_o, data_o, err_o), (code_p, data_p, err_p) = _both_forms(real_url, "drain", "--migrate", "--dry-run")
    assert code_o == code_p == 0, err_o + err_p
    assert data_o == data_p and data_o["pod"] == 1 and data_o["links_before"] == 1
    assert _warnings(err_o) == [] and _warnings(err_p) == [WARNING.format(verb="drain")]
    client.close()


@pytest.mark.parametrize("args", [
    ["lobby", "1", "-s", "lobby"],            # both forms, agreeing
    ["lobby", "1", "--pod", "1"],
    ["lobby", "1", "-s", "game", "--pod", "2"],  # both forms, disagreeing
    ["lobby", "--pod", "1"],                 # half of each
])
@pytest.mark.parametrize("verb", ["cordon", "uncordon", "forget", "drain"])
def test_both_forms_at_once_is_exit_2_and_writes_nothing(real_url, redis_server, verb, args):
    client = redis_server.client()
    put_state(client, "lobby", 1, load=3, state=RoutingState.DOWN)
    before = {key: client.dump(key) for key in client.keys("*")}
    code, data, stderr = cli_json("--redis-url", real_url, "pod", verb, *args)
    assert (code, data) == (2, None)
    assert error_lines(stderr) == [f"stroute: error: pod {verb}: the pod is named twice, as "
                                   f"{' '.join(a for a in args[:2] if not a.startswith('-'))!r} and with "
                                   f"-s/--pod: give -s SVC --pod N only"]
    assert _warnings(stderr) == []
    assert {key: client.dump(key) for key in client.keys("*")} == before
    client.close()


@pytest.mark.parametrize("args,missing", [
    ([], "-s SVC and --pod N"),
    (["-s", "lobby"], "--pod N"),
    (["--pod", "1"], "-s SVC"),
])
def test_a_missing_service_or_pod_is_exit_2(real_url, args, missing):
    code, data, stderr = cli_json("--redis-url", real_url, "pod", "cordon", *args)
    assert (code, data) == (2, None)
    assert error_lines(stderr) == [f"stroute: error: pod cordon needs {missing}: "
                                   "'stroute pod cordon -s SVC --pod N'"]


def test_a_positional_service_without_its_pod_is_exit_2(real_url):
    code, _, stderr = cli_json("--redis-url", real_url, "pod", "cordon", "lobby")
    assert code == 2
    assert error_lines(stderr) == ["stroute: error: pod cordon: missing POD after 'lobby': "
                                   "use 'stroute pod cordon -s SVC --pod N'"]


def test_an_invalid_positional_pod_is_refused_before_any_warning(real_url):
    code, _, stderr = cli_json("--redis-url", real_url, "pod", "cordon", "lobby", "x")
    assert code == 2
    assert _warnings(stderr) == [] and "invalid pod 'x'" in stderr


def test_the_warning_goes_to_stderr_of_the_installed_command(tmp_path, real_url, redis_server):
    client = redis_server.client()
    put_state(client, "lobby", 1)
    proc = run_bin(tmp_path, "--redis-url", real_url, "-o", "json", "pod", "cordon", "lobby", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cordoned"] is True  # stdout is the document alone
    assert _warnings(proc.stderr) == [WARNING.format(verb="cordon")]
    table = run_bin(tmp_path, "--redis-url", real_url, "pod", "uncordon", "-s", "lobby", "--pod", "1")
    assert table.returncode == 0 and "uncordoned" in table.stdout and _warnings(table.stderr) == []
    client.close()


def test_the_help_shows_the_options_form_only():
    text = cli("pod", "drain", "--help").stdout
    assert "Usage: stroute pod drain [OPTIONS]\n" in text
    assert "-s, --service SVC" in text and "--pod N" in text
    assert "SVC POD" not in text
