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
    _config: Any = field(default=None, repr=False)
    _store: Any = field(default=None, repr=False)

    def config(self, **overrides: Any):
        """The effective config: file, then STROUTE_*, then these flags."""
        if self._config is None:
            from stroute import config as config_module

            flags = {"redis.url": self.redis_url, "namespace": self.namespace}
            self._config = config_module.load(self.config_file, overrides=flags, overrides_origin="the command line")
        if overrides:
            return self._config.with_overrides(**overrides)
        return self._config

    def store(self):
        """The store, opened once; says on stderr when the embedded default is used."""
        if self._store is None:
            config = self.config()
            if config.url_defaulted:
                info(f"no Redis URL configured: using the embedded Redis ({config.redis_url}); "
                     "set --redis-url or STROUTE_REDIS_URL for a real server")
            self._store = config.open_store()
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
