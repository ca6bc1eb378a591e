"""Validation of every name and number that reaches a Redis key or value.

All checks run before anything touches Redis; each error names the bad value
and the rule it broke.
"""

from __future__ import annotations

import re

from stroute.errors import InvalidInput

NAME_RULE = "1-63 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")

UID_MAX = 256
UID_RULE = f"1-{UID_MAX} characters, no '{{' or '}}', no whitespace or control characters"
# Whitespace, C0/C1 control characters, the Unicode separators, and lone
# surrogates (not characters: they cannot be sent to Redis as UTF-8).
_UID_BAD_RE = re.compile(r"[{}\s\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

POD_MAX = 65535
POD_RULE = f"an integer from 0 to {POD_MAX}"

_DECIMAL_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

LOAD_MAX = 2**53
LOAD_RULE = f"an integer from 0 to {LOAD_MAX}"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "...'"


# Names already checked: a process uses a handful of services and
# namespaces, and placement checks them on every call.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 4096


def _name(kind: str, value: object) -> str:
    if value.__class__ is str and value in _GOOD_NAMES:
        return value  # type: ignore[return-value]
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise InvalidInput(f"invalid {kind} {_show(value)}: must be {NAME_RULE}")
    if len(_GOOD_NAMES) < _GOOD_NAMES_MAX:
        _GOOD_NAMES.add(value)
    return value


def namespace(value: object) -> str:
    return _name("namespace", value)


def service(value: object) -> str:
    return _name("service", value)


def tag(value: object) -> str:
    return _name("tag", value)


def prefix(value: object) -> str:
    return _name("key prefix", value)


def uid(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= UID_MAX or _UID_BAD_RE.search(value):
        raise InvalidInput(f"invalid uid {_show(value)}: must be {UID_RULE}")
    return value


def uids(values: list[object]) -> list[str]:
    """uid() of every value, checked in bulk: one join, one search and the
    length bounds over all of them; only when that fails is each value
    checked, to name the bad one."""
    if not isinstance(values, list):
        values = list(values)
    if not values:
        return values  # type: ignore[return-value]
    try:
        joined = "".join(values)  # type: ignore[arg-type]  # TypeError unless every value is a str
        lengths = list(map(len, values))  # type: ignore[arg-type]
        good = min(lengths) >= 1 and max(lengths) <= UID_MAX and not _UID_BAD_RE.search(joined)
    except TypeError:
        good = False
    if not good:
        for value in values:
            uid(value)  # raises with the message naming the first bad value
    return values  # type: ignore[return-value]


def _integer(kind: str, value: object, low: int, high: int, rule: str) -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"invalid {kind} {_show(value)}: must be {rule}")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?[0-9]+", text):  # ASCII digits: int() would also take '١' or '３'
            raise InvalidInput(f"invalid {kind} {_show(value)}: must be {rule}")
        value = int(text)
    if not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"invalid {kind} {_show(value)}: must be {rule}")
    return value


def pod(value: object) -> int:
    return _integer("pod", value, 0, POD_MAX, POD_RULE)


def load(value: object) -> int:
    return _integer("load", value, 0, LOAD_MAX, LOAD_RULE)


def ttl(value: object, *, kind: str = "ttl") -> float:
    """A duration in seconds: a finite number > 0 (milliseconds resolution)."""
    rule = "a number of seconds greater than 0 (at least 0.001)"
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"invalid {kind} {_show(value)}: must be {rule}")
    if isinstance(value, str) and not _DECIMAL_RE.fullmatch(value.strip()):
        # float() would also take '1_000', 'infinity' or non-ASCII digits
        raise InvalidInput(f"invalid {kind} {_show(value)}: must be {rule}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"invalid {kind} {_show(value)}: must be {rule}") from None
    if not number >= 0.001 or number == float("inf"):
        raise InvalidInput(f"invalid {kind} {_show(value)}: must be {rule}")
    return number


def ttl_ms(value: object, *, kind: str = "ttl") -> int:
    return max(1, round(ttl(value, kind=kind) * 1000))


def bound_namespace(bound: str, asked: object) -> str:
    """Refuse an operation on another namespace than the driver's own."""
    from stroute.errors import NamespaceMismatch

    if asked != bound:
        namespace(asked)
        raise NamespaceMismatch(
            f"namespace {asked!r} refused: this driver is bound to namespace {bound!r} "
            f"(open a driver for {asked!r} instead)"
        )
    return bound
