"""Global options and the lazily opened config and store of one invocation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stroute.cli.output import info


@dataclass
class Globals:
    config_file: str | None = None
    redis_url: str | None = None
    namespace: str | None = None
    output: str = "table"
    layout: str | None = None
    _config: Any = field(default=None, repr=False)
    _store: Any = field(default=None, repr=False)

    @property
    def for_people(self) -> bool:
        """Output drawn for people (a table, wide, names), not a JSON or YAML document."""
        from stroute.cli.output import PEOPLE

        return self.output in PEOPLE

    def config(self, **overrides: Any):
        """The effective config: file, then STROUTE_*, then these flags."""
        if self._config is None:
            from stroute import config as config_module

            flags = {"redis.url": self.redis_url, "namespace": self.namespace, "layout": self.layout}
            self._config = config_module.load(self.config_file, overrides=flags, overrides_origin="the command line")
        if overrides:
            return self._config.with_overrides(**overrides)
        return self._config

    def secrets(self) -> list[str]:
        """Every secret this invocation was given, longest first: the URL's (flag or
        environment), the password variables, and the config's once it has loaded."""
        import os

        from stroute.backends import secrets_in

        found = set()
        for url in (self.redis_url, os.environ.get("STROUTE_REDIS_URL")):
            found.update(secrets_in(url) if url else ())
        for name in ("STROUTE_REDIS_PASSWORD", "STROUTE_REDIS_SENTINEL_PASSWORD"):
            found.add(os.environ.get(name) or "")
        if self._config is not None:
            found.update(self._config.secrets())
        return sorted((s for s in found if s), key=len, reverse=True)

    def store(self):
        """The store, opened once; says on stderr when the embedded default is used."""
        if self._store is None:
            config = self.config()
            self._store = config.open_store()
            # One line: the default in use, and where the data lives when this command started the server.
            embedded = getattr(self._store.client, "stroute_embedded", None)
            started = ""
            if embedded is not None and embedded.started:
                stops = (f"it saves and stops after {embedded.idle:g} s with no client" if embedded.idle
                         else "it runs until 'stroute embedded stop'")
                started = f"started it: data in {embedded.data_file}; {stops}"
            if config.url_defaulted:
                info(f"no Redis URL configured: using the embedded Redis ({config.redis_url})"
                     f"{'; ' + started if started else ''}; set --redis-url or STROUTE_REDIS_URL for a real server")
            elif started:
                info(f"embedded Redis {started}")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
