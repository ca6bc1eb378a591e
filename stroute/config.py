"""Configuration: YAML file, then `STROUTE_*` environment, then explicit overrides.

Every key has a default (the seed's where it had one), a type and a rule;
a bad value is a ConfigError naming the key, the value and the rule. The
environment variable of a key is `STROUTE_` + its dotted path in capitals
with '_' for '.', e.g. `state.period` -> `STROUTE_STATE_PERIOD`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from stroute import keys as keys_module, names
from stroute.errors import ConfigError, InvalidInput

DEFAULT_URL = "embedded://"
STRATEGIES = ("p2c", "least-loaded", "round-robin", "hash")


@dataclass(frozen=True)
class RedisConfig:
    url: str | None = None  # None: nothing configured, use embedded://
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    socket_timeout: float = 5.0
    sentinel_password: str | None = field(default=None, repr=False)  # redis+sentinel://: the sentinels' own
    tls_ca_file: str | None = None  # rediss://: CA certificate(s) that signed the server's certificate
    tls_cert_file: str | None = None  # rediss://: client certificate, when Redis asks for one
    tls_key_file: str | None = None  # rediss://: the client certificate's private key


@dataclass(frozen=True)
class StateConfig:
    period: float = 30.0  # heartbeat period of a server driver
    expire: float = 60.0  # a heartbeat older than this marks the pod stale
    refresh: float = 2.0  # a client re-reads a service's states at most this often

    @property
    def expire_ms(self) -> int:
        """`expire` in milliseconds, as the store's staleness checks take it."""
        return round(self.expire * 1000)


@dataclass(frozen=True)
class LinksConfig:
    temp_ttl: float = 300.0  # lifetime of a temporary link, refreshed on use
    cache_seconds: float = 240.0  # client-side cache, shorter than temp_ttl; an upper bound per entry
    remove_delay: float = 60.0  # default delay of a delayed removal
    coherent: bool = True  # Redis tells the cache of every change (CLIENT TRACKING)
    coherence_bound: float = 1.0  # a dead invalidation channel stops the cache within this

    def removal_ms(self, after: object = None, *, delayed: bool = False, kind: str = "delay") -> int:
        """The delay in ms of a link removal: 0 = now, `after` seconds, or with
        `delayed` links.remove_delay; the one place both the server driver and
        `link remove --after/--delayed` take it from."""
        if delayed and after is not None:
            raise InvalidInput(f"{kind} {names.show(after)} and delayed removal both given, not both: "
                               f"delayed removal waits links.remove_delay ({self.remove_delay:g} s)")
        if delayed:
            return names.ttl_ms(self.remove_delay, kind="links.remove_delay")
        return 0 if after is None else names.ttl_ms(after, kind=kind)


@dataclass(frozen=True)
class PlacementConfig:
    strategy: str = "p2c"
    good_load_range: int = 500  # round-robin: pods within min load + range
    slow_start: float = 0.0  # seconds a pod's share of new users ramps up after a new epoch; 0 = off


@dataclass(frozen=True)
class ServerConfig:
    cpu_factor: float = 0.5
    drain_seconds: float = 20.0
    load_timeout: float | None = None  # a load command's time limit; None: 5 s, at most half of state.period


@dataclass(frozen=True)
class Config:
    namespace: str = "default"
    prefix: str = "sf"  # the layout's default when not set: sf (homo-go), slug (homo-java)
    layout: str = keys_module.DEFAULT_LAYOUT  # whose key names: homo-go or homo-java (see stroute.keys)
    redis: RedisConfig = field(default_factory=RedisConfig)
    state: StateConfig = field(default_factory=StateConfig)
    links: LinksConfig = field(default_factory=LinksConfig)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    source: str | None = None  # the file it was read from, if any

    @property
    def redis_url(self) -> str:
        return self.redis.url or DEFAULT_URL

    @property
    def load_timeout(self) -> float:
        """Seconds a load command may run: server.load_timeout, else 5 s or
        half of state.period if that is less (a reading fits in a period)."""
        if self.server.load_timeout is not None:
            return self.server.load_timeout
        return min(5.0, self.state.period / 2)

    @property
    def url_defaulted(self) -> bool:
        return not self.redis.url

    def connect_options(self):
        from stroute.backends import ConnectOptions

        return ConnectOptions(
            socket_timeout=self.redis.socket_timeout,
            password=self.redis.password,
            username=self.redis.username,
            sentinel_password=self.redis.sentinel_password,
            tls_ca_file=self.redis.tls_ca_file,
            tls_cert_file=self.redis.tls_cert_file,
            tls_key_file=self.redis.tls_key_file,
        )

    def open_store(self):
        from stroute.store import Store

        return Store.from_url(self.redis_url, prefix=self.prefix, options=self.connect_options(), layout=self.layout)

    def open_async_store(self):
        """The AsyncStore for this configuration (stroute.aio's drivers)."""
        from stroute.store.aio import AsyncStore

        return AsyncStore.from_url(self.redis_url, prefix=self.prefix, options=self.connect_options(),
                                   layout=self.layout)

    def with_overrides(self, origin: str = "override", /, **dotted: Any) -> "Config":
        """A copy with keys replaced, e.g. with_overrides(**{"state.period": 1});
        `origin` names where they came from in error messages. A prefix that is
        the old layout's default follows a new layout to its own default."""
        tree = _as_tree(self)
        if "layout" in dotted and "prefix" not in dotted and self.prefix == keys_module.default_prefix(self.layout):
            del tree["prefix"]
        return _build(tree, [(dotted, origin)], source=self.source)

    def to_dict(self, *, redact: bool = True, omit_secrets: bool = False) -> dict[str, Any]:
        """All keys as plain data; the passwords shown as '***' (or None).

        With omit_secrets the passwords are left out instead (null, and the
        URL without them): the tree is then a config file that is safe to
        keep, and that authenticates as before wherever the password came
        from outside it (STROUTE_REDIS_PASSWORD, redis.password_file). A
        '***' would be taken for the password itself.
        """
        from stroute.backends import redact as redact_url, without_secrets

        tree = _as_tree(self)
        if redact or omit_secrets:
            for secret in ("password", "sentinel_password"):
                if tree["redis"][secret] is not None:
                    tree["redis"][secret] = None if omit_secrets else "***"
            if tree["redis"]["url"]:
                tree["redis"]["url"] = (without_secrets if omit_secrets else redact_url)(tree["redis"]["url"])
        return tree

    def secrets(self) -> list[str]:
        """The secret values themselves (passwords, the URL's), to keep out of any message."""
        from stroute.backends import secrets_in

        found = [value for value in (self.redis.password, self.redis.sentinel_password) if value]
        return found + (secrets_in(self.redis.url) if self.redis.url else [])

    def secrets_set(self) -> list[str]:
        """The keys that hold a secret here: redis.password, redis.sentinel_password, redis.url."""
        from stroute.backends import secrets_in

        found = [f"redis.{key}" for key in ("password", "sentinel_password") if getattr(self.redis, key) is not None]
        if self.redis.url and secrets_in(self.redis.url):
            found.append("redis.url")
        return found


# --- schema -----------------------------------------------------------------

_SECTIONS = {
    "redis": RedisConfig,
    "state": StateConfig,
    "links": LinksConfig,
    "placement": PlacementConfig,
    "server": ServerConfig,
}
# `layout` is a top-level key beside `prefix` and `namespace`, not a `redis.` one:
# it decides how those two make key names, and is no property of the connection.
_TOP = ("namespace", "prefix", "layout")


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _duration(value: float) -> str | None:
    """A TTL or delay that reaches Redis: the one rule of names.ttl."""
    try:
        names.ttl(value)
    except InvalidInput:
        return f"must be {names.TTL_RULE}"
    return None


def _fraction(value: float) -> str | None:
    return None if 0 <= value <= 1 else "must be between 0 and 1"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _coherence_bound(value: float) -> str | None:
    return None if 0.05 <= value <= 1 else "must be between 0.05 and 1 (seconds)"


def _slow_start(value: float) -> str | None:
    return None if 0 <= value <= 86400 else "must be 0 (off) to 86400 seconds"


def _strategy(value: str) -> str | None:
    return None if value in STRATEGIES else f"must be one of {', '.join(STRATEGIES)}"


def _name_rule(check: Callable[[Any], Any]) -> Callable[[str], str | None]:
    def rule(value: str) -> str | None:
        try:
            check(value)
        except InvalidInput:
            return f"must be {names.NAME_RULE}"
        return None

    return rule


def _namespace(value: str) -> str | None:
    """A namespace of some layout; _check holds it to the configured one's rule."""
    try:
        keys_module.any_namespace(value)
    except InvalidInput:
        return f"must be {names.NAME_RULE} (layout homo-java: {keys_module.JAVA_NAMESPACE_RULE})"
    return None


def _layout(value: str) -> str | None:
    return None if value in keys_module.LAYOUTS else f"must be {keys_module.LAYOUT_RULE}"


_RULES: dict[str, Callable[[Any], str | None]] = {
    "namespace": _namespace,  # the layout's own rule: see _check
    "prefix": _name_rule(names.prefix),
    "layout": _layout,
    "redis.socket_timeout": _positive,
    "state.period": _positive,
    "state.expire": _duration,  # also the workload key's TTL
    "state.refresh": _non_negative,
    "links.temp_ttl": _duration,
    "links.cache_seconds": _non_negative,
    "links.remove_delay": _duration,
    "links.coherence_bound": _coherence_bound,
    "placement.strategy": _strategy,
    "placement.good_load_range": _non_negative,
    "placement.slow_start": _slow_start,
    "server.cpu_factor": _fraction,
    "server.drain_seconds": _non_negative,
    "server.load_timeout": _positive,
}


def keys() -> list[str]:
    """Every dotted config key."""
    out = list(_TOP)
    for section, cls in _SECTIONS.items():
        out += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    return out


def env_name(key: str) -> str:
    return "STROUTE_" + key.upper().replace(".", "_")


def _as_tree(config: Config) -> dict[str, Any]:
    tree: dict[str, Any] = {k: getattr(config, k) for k in _TOP}
    for section in _SECTIONS:
        tree[section] = dataclasses.asdict(getattr(config, section))
    return tree


def _kind(cls: type, name: str) -> str:
    hint = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    for kind in ("bool", "float", "int", "str"):
        if hint.startswith(kind):
            return kind
    raise AssertionError(hint)  # pragma: no cover


def _nullable(key: str) -> bool:
    if "." not in key:
        return False
    section, name = key.split(".", 1)
    hint = {f.name: f.type for f in dataclasses.fields(_SECTIONS[section])}[name]
    return "None" in str(hint)


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _coerce(key: str, kind: str, value: Any, origin: str) -> Any:
    where = f" (from {origin})" if origin else ""
    if value is None:
        return None
    if kind == "str":
        if isinstance(value, (dict, list)):
            raise ConfigError(f"invalid value for {key}{where}: expected a string, got a {type(value).__name__}")
        return str(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, (str, int)) else None
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"invalid value {value!r} for {key}{where}: expected true or false")
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        raise ConfigError(f"invalid value {value!r} for {key}{where}: expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid value {value!r} for {key}{where}: expected a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigError(f"invalid value {value!r} for {key}{where}: expected a finite number")
    if kind == "int":
        if number != int(number):
            raise ConfigError(f"invalid value {value!r} for {key}{where}: expected a whole number")
        return int(number)
    return number


def _build(
    tree: Mapping[str, Any],
    layers: list[tuple[Mapping[str, Any], str]],
    *,
    source: str | None,
    problems: list[str] | None = None,
) -> Config:
    """Apply layers of dotted overrides (each with where it came from) to a
    tree and make a validated Config; every problem, the file's `problems`
    included, is reported at once."""
    problems = list(problems or [])
    flat: dict[str, tuple[Any, str]] = {}
    for key in _TOP:
        flat[key] = (tree.get(key, getattr(Config, key)), "")
    prefix_set = tree.get("prefix") is not None
    for section, cls in _SECTIONS.items():
        values = tree.get(section)
        values = values if isinstance(values, dict) else {}
        for f in dataclasses.fields(cls):
            default = f.default
            flat[f"{section}.{f.name}"] = (values.get(f.name, default), "")
    for overrides, origin in layers:
        for key, value in overrides.items():
            if key not in flat:
                problems.append(f"config {unknown_key(key)}")
            elif value is not None:
                flat[key] = (value, origin)
                prefix_set = prefix_set or key == "prefix"

    typed: dict[str, Any] = {}
    for key, (value, where) in flat.items():
        if "." in key:
            section, name = key.split(".", 1)
            kind = _kind(_SECTIONS[section], name)
        else:
            kind = "str"
        suffix = f" (from {where})" if where else ""
        if value is None and not _nullable(key):
            # YAML `period:` or `period: null`: refuse it here rather than
            # crash on a comparison with None later.
            problems.append(f"invalid value null for {key}{suffix}: must be set (leave the key out for the default)")
            continue
        try:
            value = _coerce(key, kind, value, where)
        except ConfigError as exc:
            problems.append(exc.message)
            continue
        rule = _RULES.get(key)
        problem = rule(value) if rule and value is not None else None
        if problem:
            problems.append(f"invalid value {value!r} for {key}{suffix}: {problem}")
            continue
        typed[key] = value
    if problems:
        raise ConfigError(_all(problems))

    sections = {
        section: cls(**{f.name: typed[f"{section}.{f.name}"] for f in dataclasses.fields(cls)})
        for section, cls in _SECTIONS.items()
    }
    prefix = typed["prefix"] if prefix_set else keys_module.default_prefix(typed["layout"])
    config = Config(namespace=typed["namespace"], prefix=prefix, layout=typed["layout"], source=source, **sections)
    _check(config)
    return config


def validate(config: Config) -> None:
    """Every rule a loaded Config passed, for one built by hand (dataclasses.replace)."""
    for key, rule in _RULES.items():
        value = config
        for part in key.split("."):
            value = getattr(value, part)
        problem = rule(value) if value is not None else None
        if problem:
            raise ConfigError(f"invalid value {value!r} for {key}: {problem}")
    _check(config)


def _check(config: Config) -> None:
    """Rules between keys (the seed's checks, the cache/TTL order, the layout's namespace)."""
    try:
        keys_module.layout_class(config.layout).check_namespace(config.namespace)
    except InvalidInput:
        rule = keys_module.layout_class(config.layout).namespace_rule
        raise ConfigError(f"invalid value {config.namespace!r} for namespace: with layout {config.layout} "
                          f"it must be {rule}") from None
    if config.state.period > config.state.expire:
        raise ConfigError(
            f"invalid value {config.state.period!r} for state.period: must be at most state.expire "
            f"({config.state.expire!r}), or every pod turns stale between heartbeats"
        )
    if config.server.load_timeout is not None and config.server.load_timeout >= config.state.period:
        raise ConfigError(
            f"invalid value {config.server.load_timeout!r} for server.load_timeout: must be less than "
            f"state.period ({config.state.period!r}), so each load reading ends before the next one is due"
        )
    if config.links.cache_seconds >= config.links.temp_ttl:
        raise ConfigError(
            f"invalid value {config.links.cache_seconds!r} for links.cache_seconds: must be less than "
            f"links.temp_ttl ({config.links.temp_ttl!r}), so a cached link never outlives it in Redis"
        )


# The config holds sections of keys: two levels. Anything far deeper is no
# config file, and PyYAML would recurse into it until Python's stack ends.
_MAX_DEPTH = 32


@functools.cache
def _yaml_loader():
    """PyYAML's safe loader, refusing duplicate keys and deep nesting with a ConfigError."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            self.depth += 1
            try:
                if self.depth > _MAX_DEPTH:
                    mark = self.peek_event().start_mark
                    raise ConfigError(f"nested more than {_MAX_DEPTH} levels deep at line {mark.line + 1}: "
                                      "a config file holds sections of keys")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    first = seen.setdefault(key, line)
                except TypeError:  # an unhashable key: the base class says so
                    break
                if first != line:
                    raise ConfigError(f"duplicate key {str(key)!r} at line {line} (first at line {first}): "
                                      "each key may appear once")
            return super().construct_mapping(node, deep=deep)

    return Loader


def _read_text(path: Path, what: str, *, secret: bool = False) -> str:
    """A regular file's text; ConfigError naming what it is when it cannot be read as UTF-8 text."""
    try:
        with path.open("rb") as stream:
            raw = stream.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = "a byte" if secret else f"byte 0x{raw[exc.start]:02x}"  # a byte of a password is no detail to show
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text: {byte} at offset {exc.start} "
                          "does not decode") from None


def _read_file(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The file's mapping, and its unknown or misshapen keys (reported with the
    values' problems, all at once)."""
    import yaml

    text = _read_text(path, "config file")
    try:
        data = yaml.load(text, Loader=_yaml_loader())
    except ConfigError as exc:
        raise ConfigError(f"config file {str(path)!r}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of keys, not a {type(data).__name__}")
    problems = []
    for key, value in data.items():
        if key == "schema":  # a file `stroute config show` wrote names its format
            from stroute.contract import schema_id

            if value != schema_id("config"):
                raise ConfigError(f"config file {str(path)!r}: schema {value!r} is not {schema_id('config')!r}, "
                                  "the config format this stroute reads")
        elif key in _SECTIONS:
            if value is None:
                continue
            if not isinstance(value, dict):
                problems.append(f"{key!r} must be a mapping of keys")
                continue
            problems += [unknown_key(f"{key}.{sub}") for sub in value if f"{key}.{sub}" not in keys()]
        elif key not in _TOP:
            problems.append(unknown_key(str(key)))
    return data, [f"config file {str(path)!r}: {problem}" for problem in problems]


def unknown_key(key: str) -> str:
    """'unknown key ...', with the nearest known key when one is close (a typo)."""
    import difflib

    near = difflib.get_close_matches(key, keys(), n=1, cutoff=0.75)
    if near:
        return f"unknown key {key!r} (did you mean {near[0]!r}?)"
    return f"unknown key {key!r}; known keys are {', '.join(keys())}"


def _all(problems: list[str]) -> str:
    """Every problem in one line, so a file is fixed in one go."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems: " + "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))


def _kind_of_path(path: Path) -> str | None:
    """What path is when it is no regular file ('a directory', 'a FIFO'...), None when it is one.

    Reading a FIFO would wait for a writer, so it is refused, not read.
    """
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def regular_file(path: Path, what: str) -> Path:
    """path, when it is a regular file; else a ConfigError naming `what` and what path is instead."""
    kind = _kind_of_path(path)
    if kind == "missing":
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    if kind is not None:
        raise ConfigError(f"{what} {str(path)!r} is {kind}, not a regular file" if kind.startswith("a ")
                          else f"{what} {str(path)!r} is {kind}")
    return path


def default_paths() -> list[Path]:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return [Path("stroute.yaml"), Path(base) / "stroute" / "config.yaml"]


def find_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read: the one named (must exist), else the first default that exists."""
    named = path or env.get("STROUTE_CONFIG")
    if named:
        return regular_file(Path(named).expanduser(), "config file")
    # A default path that is there but no file (a directory) is a mistake to report, not to skip.
    return next((regular_file(p, "config file") for p in default_paths() if _kind_of_path(p) != "missing"), None)


def for_driver(config: Config | None, store: Any, open_store: Callable[[Config], Any]) -> tuple[Config, Any, bool]:
    """What a driver's constructor starts from: its configuration (`config`,
    else load()), validated; its store (`store`, else open_store(config));
    and whether it opened that store, and so closes it."""
    config = config or load()
    validate(config)
    if store is not None:
        return config, store, False
    return config, open_store(config), True


def load(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    overrides_origin: str = "override",
) -> Config:
    """Read the config file, apply `STROUTE_*` and then `overrides` (dotted keys).

    `overrides_origin` names where the overrides came from in error messages.
    """
    env = os.environ if env is None else env
    file = find_file(path, env)
    tree, problems = _read_file(file) if file else ({}, [])
    from_env = {key: env[env_name(key)] for key in keys() if env.get(env_name(key)) not in (None, "")}
    config = _build(tree, [(from_env, "environment"), (overrides or {}, overrides_origin)],
                    source=str(file) if file else None, problems=problems)
    return _with_password_file(config)


def _with_password_file(config: Config) -> Config:
    if config.redis.password is not None or not config.redis.password_file:
        return config
    path = regular_file(Path(config.redis.password_file).expanduser(), "redis.password_file")
    secret = _read_text(path, "redis.password_file", secret=True).strip()
    return dataclasses.replace(config, redis=dataclasses.replace(config.redis, password=secret))
