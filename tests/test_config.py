"""Configuration: defaults, file < environment < overrides, and every rule."""

from __future__ import annotations

import os

import pytest

from stroute import config as config_module
from stroute.config import Config, load
from stroute.errors import ConfigError


@pytest.fixture(autouse=True)
def no_ambient_config(tmp_path, monkeypatch):
    """No stroute.yaml in the working directory or the user's config dir."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("STROUTE_"):
            monkeypatch.delenv(name)


def write(tmp_path, text: str, name: str = "stroute.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(fn, *needles: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        fn()
    assert info.value.exit_code == 2
    for needle in needles:
        assert needle in str(info.value), f"{needle!r} not in {info.value}"
    return info.value


def test_seed_defaults():
    c = config_module.load(env={})
    assert c.namespace == "default" and c.prefix == "sf"
    assert (c.state.period, c.state.expire) == (30.0, 60.0)
    assert c.server.cpu_factor == 0.5
    assert (c.links.temp_ttl, c.links.cache_seconds, c.links.remove_delay) == (300.0, 240.0, 60.0)
    assert c.placement.good_load_range == 500 and c.placement.strategy == "p2c"
    assert c.redis.url is None and c.url_defaulted and c.redis_url == "embedded://"
    assert c.source is None


def test_file_then_environment_then_overrides(tmp_path):
    path = write(tmp_path, "namespace: prod\nstate:\n  period: 5\n  expire: 20\nplacement:\n  strategy: hash\n")
    c = config_module.load(path, env={})
    assert (c.namespace, c.state.period, c.state.expire, c.placement.strategy) == ("prod", 5.0, 20.0, "hash")
    assert c.source == str(path)

    env = {"STROUTE_STATE_PERIOD": "7", "STROUTE_NAMESPACE": "staging", "STROUTE_PLACEMENT_GOOD_LOAD_RANGE": "10"}
    c = config_module.load(path, env=env)
    assert (c.namespace, c.state.period, c.state.expire, c.placement.good_load_range) == ("staging", 7.0, 20.0, 10)

    c = config_module.load(path, env=env, overrides={"state.period": 9, "namespace": None})
    assert (c.namespace, c.state.period) == ("staging", 9.0)  # None = not given


def test_file_found_by_env_and_in_the_working_directory(tmp_path):
    path = write(tmp_path, "namespace: from-env-file\n", "other.yaml")
    assert config_module.load(env={"STROUTE_CONFIG": str(path)}).namespace == "from-env-file"
    write(tmp_path, "namespace: from-cwd\n")
    assert config_module.load(env={}).namespace == "from-cwd"
    xdg = tmp_path / "xdg" / "stroute"
    xdg.mkdir(parents=True)
    (xdg / "config.yaml").write_text("namespace: from-xdg\n")
    assert config_module.load(env={}).namespace == "from-cwd"  # ./stroute.yaml comes first
    (tmp_path / "stroute.yaml").unlink()
    assert config_module.load(env={}).namespace == "from-xdg"


def test_empty_env_values_are_ignored(tmp_path):
    assert config_module.load(env={"STROUTE_NAMESPACE": ""}).namespace == "default"


def test_env_name():
    assert config_module.env_name("state.period") == "STROUTE_STATE_PERIOD"
    assert config_module.env_name("placement.good_load_range") == "STROUTE_PLACEMENT_GOOD_LOAD_RANGE"
    assert "redis.url" in config_module.keys() and "server.cpu_factor" in config_module.keys()


# --- rules: each names the key and the bad value ----------------------------------------


@pytest.mark.parametrize(
    "key,value,needles",
    [
        ("state.period", 0, ["state.period", "0"]),
        ("state.period", -1, ["state.period", "-1"]),
        ("state.period", "abc", ["state.period", "'abc'", "number"]),
        ("state.period", True, ["state.period", "True"]),
        ("state.period", [1], ["state.period", "[1]"]),
        ("state.period", float("nan"), ["state.period", "nan"]),
        ("state.period", 120, ["state.period", "120", "state.expire"]),  # period > expire (60)
        ("state.expire", 0, ["state.expire", "0"]),
        ("state.refresh", -1, ["state.refresh", "-1"]),
        ("server.cpu_factor", 1.5, ["server.cpu_factor", "1.5"]),
        ("server.cpu_factor", -0.1, ["server.cpu_factor", "-0.1"]),
        ("server.drain_seconds", -1, ["server.drain_seconds", "-1"]),
        ("links.temp_ttl", 0, ["links.temp_ttl", "0"]),
        ("links.cache_seconds", 300, ["links.cache_seconds", "300", "links.temp_ttl"]),  # not < temp_ttl
        ("links.remove_delay", 0, ["links.remove_delay", "0"]),
        ("placement.strategy", "random", ["placement.strategy", "'random'", "p2c"]),
        ("placement.good_load_range", 1.5, ["placement.good_load_range", "1.5", "whole"]),
        ("placement.good_load_range", -1, ["placement.good_load_range", "-1"]),
        ("namespace", "a:b", ["namespace", "'a:b'"]),
        ("namespace", "x" * 64, ["namespace", "x" * 64]),
        ("prefix", "s f", ["prefix", "'s f'"]),
        ("redis.socket_timeout", 0, ["redis.socket_timeout", "0"]),
        ("redis.url", {"a": 1}, ["redis.url", "string"]),
        ("no.such", 1, ["'no.such'", "known keys"]),
        ("period", 1, ["'period'"]),
    ],
)
def test_bad_values_name_the_key(key, value, needles):
    config_error(lambda: Config().with_overrides(**{key: value}), *needles)


def test_bad_values_from_the_environment_say_so():
    exc = config_error(lambda: config_module.load(env={"STROUTE_STATE_PERIOD": "soon"}), "state.period", "'soon'")
    assert "environment" in str(exc)


def test_period_equal_to_expire_is_allowed():
    c = Config().with_overrides(**{"state.period": 60})
    assert c.state.period == c.state.expire


@pytest.mark.parametrize(
    "text,needles",
    [
        ("state: [\n", ["not valid YAML", "line"]),
        ("namespace: prod\n  bad indent: x\n", ["not valid YAML"]),
        ("- a\n- b\n", ["mapping", "list"]),
        ("just a string\n", ["mapping", "str"]),
        ("colour: blue\n", ["unknown key 'colour'"]),
        ("state:\n  perido: 5\n", ["unknown key 'state.perido'"]),
        ("state: 5\n", ["'state' must be a mapping"]),
        ("state:\n  period: soon\n", ["state.period", "'soon'"]),
        ("state:\n  period:\n", ["state.period", "null"]),
        ("namespace:\n", ["namespace", "null"]),
        ("placement:\n  strategy: fastest\n", ["placement.strategy", "'fastest'"]),
        ("server:\n  cpu_factor: 2\n", ["server.cpu_factor", "2"]),
    ],
)
def test_bad_files(tmp_path, text, needles):
    path = write(tmp_path, text)
    config_error(lambda: config_module.load(path, env={}), *needles)


def test_empty_file_and_empty_section_mean_defaults(tmp_path):
    assert config_module.load(write(tmp_path, ""), env={}).state.period == 30.0
    assert config_module.load(write(tmp_path, "state:\n"), env={}).state.period == 30.0


def test_missing_named_file(tmp_path):
    config_error(lambda: config_module.load(tmp_path / "nope.yaml", env={}), "nope.yaml", "does not exist")
    config_error(lambda: config_module.load(env={"STROUTE_CONFIG": str(tmp_path / "gone.yaml")}), "gone.yaml")


def test_unreadable_file(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    # A directory named as the config file: not a file, so it "does not exist" as one.
    config_error(lambda: config_module.load(tmp_path / "dir.yaml", env={}), "dir.yaml")


# --- passwords ---------------------------------------------------------------------------


def test_password_never_shown(tmp_path):
    c = Config().with_overrides(**{"redis.url": "redis://:s3cret@db:6379/0", "redis.password": "hunter2"})
    shown = c.to_dict()
    assert shown["redis"]["password"] == "***"
    assert "s3cret" not in str(shown) and "hunter2" not in str(shown)
    assert "hunter2" not in repr(c)
    assert c.to_dict(redact=False)["redis"]["password"] == "hunter2"


def test_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    c = config_module.load(env={"STROUTE_REDIS_PASSWORD_FILE": str(secret)})
    assert c.redis.password == "from-file"
    assert c.connect_options().password == "from-file"
    # An explicit password wins over the file.
    c = config_module.load(env={"STROUTE_REDIS_PASSWORD_FILE": str(secret), "STROUTE_REDIS_PASSWORD": "env"})
    assert c.redis.password == "env"
    config_error(lambda: config_module.load(env={"STROUTE_REDIS_PASSWORD_FILE": str(tmp_path / "none")}),
                 "redis.password_file", "none")


def test_bad_url_scheme_is_a_config_error():
    c = Config().with_overrides(**{"redis.url": "mysql://:s3cret@db/0"})
    exc = config_error(c.open_store, "mysql://", "***")
    assert "s3cret" not in str(exc)
    config_error(Config().with_overrides(**{"redis.url": "localhost:6379"}).open_store, "localhost:6379", "scheme")


def test_every_problem_is_reported_at_once_with_the_nearest_key_for_a_typo(tmp_path):
    """A file, the environment and overrides: one error naming each problem, so one edit fixes them all."""
    path = tmp_path / "stroute.yaml"
    path.write_text("state:\n  peroid: 5\n  expire: -3\nlinks:\n  temp_tll: 10\nfoo: 1\n")
    with pytest.raises(ConfigError) as caught:
        load(path, env={"STROUTE_STATE_REFRESH": "-1"}, overrides={"placement.strategy": "best"})
    message = caught.value.message
    assert message.startswith("6 problems: "), message
    assert "unknown key 'state.peroid' (did you mean 'state.period'?)" in message
    assert "unknown key 'links.temp_tll' (did you mean 'links.temp_ttl'?)" in message
    assert "unknown key 'foo'; known keys are namespace" in message  # nothing near: every key is listed
    assert "invalid value -3.0 for state.expire" in message
    assert "invalid value -1.0 for state.refresh (from environment)" in message
    assert "invalid value 'best' for placement.strategy (from override)" in message
    assert "\n" not in message


def test_a_single_problem_reads_as_before():
    with pytest.raises(ConfigError) as caught:
        load(None, env={}, overrides={"state.perod": 1})
    assert caught.value.message == "config unknown key 'state.perod' (did you mean 'state.period'?)"
