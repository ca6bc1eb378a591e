"""The one exception hierarchy of stroute.

Every class carries the exit code that SPEC.md gives it, so the command line
maps an exception to an exit code without knowing the core's internals.
Messages never contain a Redis password: the store wraps driver errors at its
border and builds its own message from the redacted URL.
"""

from __future__ import annotations


class StrouteError(Exception):
    """Base class: anything stroute raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidInput(StrouteError, ValueError):
    """A name, pod, TTL or other argument breaks a rule. Nothing was written."""

    exit_code = 2


class ConfigError(InvalidInput):
    """A configuration key has a bad value, or the config file is unreadable."""

    exit_code = 2


class NamespaceMismatch(InvalidInput):
    """A driver bound to one namespace was asked to act on another."""

    exit_code = 2


class NotFound(StrouteError, LookupError):
    """The link, tag or pod asked for does not exist."""

    exit_code = 3


class Conflict(StrouteError):
    """try-set refused, or a compare-and-set / fencing check did not match."""

    exit_code = 4


class PodClaimed(Conflict):
    """Another server driver instance publishes for this pod (another epoch)."""

    exit_code = 4

    def __init__(self, message: str, *, epoch: int | None, heartbeat_age_ms: int | None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.epoch = epoch
        self.heartbeat_age_ms = heartbeat_age_ms


class NoAvailablePod(StrouteError):
    """No routable pod for a new user, and no link to an alive pod exists."""

    exit_code = 5


class PodUnavailable(NoAvailablePod):
    """The user's persistent link points at a pod that is not alive."""

    exit_code = 5

    def __init__(self, message: str, *, pod: int, service: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.pod = pod
        self.service = service


class StoreError(StrouteError):
    """Redis answered with an error (script failure, wrong type, ACL...)."""

    exit_code = 6


class CorruptData(StoreError):
    """Redis holds data at a stroute key that stroute cannot read: a link
    value that is no pod index, a key of the wrong type, a key name that does
    not parse. Nothing was written over it. A command that walks many keys
    skips such keys, finishes the rest, and then raises this to say so.

    Not exit 6: Redis did not fail, and running again will not help until
    the keys named are repaired or deleted (`stroute doctor` finds them).
    """

    exit_code = 7

    def __init__(self, message: str, *, keys: tuple[str, ...] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.keys = keys  # the bad keys, or the first few of them


class PermissionDenied(StoreError):
    """The Redis user's ACL refused a command or a key (NOPERM)."""

    exit_code = 6

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason  # Redis's own NOPERM text


class RedisUnavailable(StoreError, ConnectionError):
    """Redis could not be reached within the socket timeout."""

    exit_code = 6


class DrainIncomplete(StrouteError):
    """A drain's deadline passed with links it was asked to move still on the pod."""

    exit_code = 1
