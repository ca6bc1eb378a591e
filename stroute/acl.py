"""Namespace isolation enforced by Redis: the ACL rule of a namespace's user.

`rule(namespace)` gives the `ACL SETUSER` arguments that confine a Redis user
to the keys of one namespace and to the commands stroute sends:

    P:{ns:...}        links, indexes, pod states and controls, workloads, tags
    P:{ns}:...        the services registry

A namespace name has no ':' and no glob character, so `P:{ns:*` cannot match
another namespace's keys (`P:{ns2:...` or `P:{ns-2:...`).

Redis checks every key a command declares, the KEYS of a script included, and
every command a script calls. SCAN is the exception: it declares no key, so a
user allowed SCAN lists the key NAMES of every namespace (not their values;
reading one is refused). `link list` and the link checks of `doctor` need
SCAN; `scan=False` leaves it out, and those two commands out with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stroute.errors import InvalidInput, PermissionDenied, StoreError
from stroute.keys import DEFAULT_LAYOUT, keyspace

# What stroute sends, found by running the test suite as a user with nothing
# else (tests/test_acl.py). Subcommands are allowed one by one.
CONNECT = (
    "hello",  # RESP3 handshake (redis-py's default protocol)
    "client|setname",  # the connection's name, "stroute"
    "select",  # a database other than 0 in the URL
    "ping",
)
SCRIPTS = (
    "evalsha",  # every link and pod-state operation
    "script|load",  # after NOSCRIPT (a restarted or failed-over Redis), and doctor's check
)
DATA = (
    # the scripts' own calls, which Redis checks against the user too
    "get", "set", "del", "pttl", "pexpire", "persist", "hget", "hset", "hdel", "hgetall", "time",
    # the scripts' checks before they write, and scans naming a key of another type
    "type",
    # plain commands: batch reads, registry, cordons, tags, workload, link scans
    "mget", "sadd", "smembers", "multi", "exec",
    # the live gateways of a service (state_snapshot.lua), and a closing driver leaving them
    "zadd", "zremrangebyscore", "zcard", "zrem",
)
COHERENCE = (
    # a client driver's invalidation channel (stroute.invalidation): its
    # listener's id, the subscription it is told on, tracking on each connection,
    # and batch reads opting out of it
    "client|id", "subscribe", "client|tracking", "client|caching",
)
DIAGNOSE = ("info",)  # doctor: version, role, memory policy
SCAN = ("scan",)  # link list, doctor's link sample

# Where Redis sends a tracking client's invalidations (stroute.invalidation.CHANNEL).
INVALIDATION_CHANNEL = "__redis__:invalidate"

# Long enough for default_user() of any namespace ("stroute-" + 63 characters).
USER_RULE = "1-128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
_USER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class AclRule:
    user: str
    namespace: str
    keys: tuple[str, ...]  # ACL key patterns, without the '~'
    commands: tuple[str, ...]
    channels: tuple[str, ...] = ()  # Pub/Sub channels, without the '&'

    def arguments(self) -> list[str]:
        """ACL SETUSER's arguments after the user name.

        Resets the keys, channels and commands (so the rule can be applied
        again to change them) but not the passwords: add `>PASSWORD` to set one.
        """
        return [
            "on", "resetkeys", "resetchannels", "-@all",
            *(f"~{pattern}" for pattern in self.keys),
            *(f"&{channel}" for channel in self.channels),
            *(f"+{command}" for command in self.commands),
        ]

    def command(self) -> str:
        """The whole `ACL SETUSER ...` line for redis-cli (no argument needs quoting)."""
        return " ".join(["ACL", "SETUSER", self.user, *self.arguments()])


def default_user(namespace: str) -> str:
    # A homo-java namespace (APP:REGION:LOGICTYPE) has ':', which no user name may.
    return f"stroute-{namespace.replace(':', '.')}"


def user_name(value: object) -> str:
    if not isinstance(value, str) or not _USER_RE.fullmatch(value):
        raise InvalidInput(f"invalid Redis user name {value!r}: must be {USER_RULE}")
    return value


def key_patterns(namespace: str, prefix: str | None = None, layout: str = DEFAULT_LAYOUT) -> tuple[str, ...]:
    """The ACL key patterns of every key of the namespace (see stroute.keys)."""
    return keyspace(layout, prefix, namespace).acl_patterns()


def rule(namespace: str, *, prefix: str | None = None, user: str | None = None, scan: bool = True,
         layout: str = DEFAULT_LAYOUT) -> AclRule:
    """The rule confining `user` (default stroute-NAMESPACE) to one namespace."""
    commands = CONNECT + SCRIPTS + DATA + COHERENCE + DIAGNOSE + (SCAN if scan else ())
    space = keyspace(layout, prefix, namespace)
    return AclRule(
        user=user_name(user if user is not None else default_user(namespace)),
        namespace=space.namespace,
        keys=space.acl_patterns(),
        commands=commands,
        channels=(INVALIDATION_CHANNEL,),
    )


# --- Redis's refusals, told in stroute's terms ------------------------------------------------------


def refusal(exc: BaseException) -> str | None:
    """Redis's NOPERM text of a refused command, or None when the ACL did not refuse anything."""
    return exc.reason if isinstance(exc, PermissionDenied) else None


def explain_refusal(exc: BaseException, namespace: str | None) -> StoreError | None:
    """The StoreError of a refused command, saying which namespace (or command) the user lacks; else None.

    Every command stroute sends touches one namespace, so a refused key means
    the Redis user is not the one for that namespace.
    """
    text = refusal(exc)
    if text is None:
        return None
    message = exc.message if isinstance(exc, StoreError) else str(exc)
    command = re.search(r"run the '([^']+)' command", text)
    if command or namespace is None:
        return StoreError(
            f"permission denied: {message}",
            hint="give the Redis user the rule 'stroute -n NAMESPACE acl' prints: it allows every command "
                 "stroute sends",
        )
    return StoreError(
        f"permission denied for namespace {namespace}: {message}",
        hint=f"connect as the Redis user made for namespace {namespace} ('stroute -n {namespace} acl' "
             "prints its rule), or use the namespace this user is confined to",
    )
