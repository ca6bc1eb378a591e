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
UID_RULE = (f"1-{UID_MAX} characters, no '{{' or '}}', no whitespace, control or invisible format characters "
            "(Unicode category Cf, e.g. U+200B)")
# Whitespace, C0/C1 control characters, the Unicode separators, lone
# surrogates (not characters: they cannot be sent to Redis as UTF-8), and the
# invisible format characters (category Cf: zero-width spaces and joiners,
# bidi overrides, the BOM, tag characters), which make two uids that print
# alike different keys. The Cf ranges are Unicode 15's; a test checks them
# against the running Python's unicodedata.
_UID_BAD_RE = re.compile(
    r"[{}\s\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"
    r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    r"\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)

POD_MAX = 65535
POD_RULE = f"an integer from 0 to {POD_MAX}"

_DECIMAL_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

# Every TTL and delay stroute writes (link TTLs, delayed removals, imported
# TTLs, the config's durations) is at most this: Redis takes milliseconds as
# a 64-bit integer but refuses an expiry whose absolute time overflows, and
# a Lua number prints in exponent form from 1e14 ms. Ten years keeps far
# inside both, and is longer than any temporary link needs to be.
TTL_MIN_S = 0.001
TTL_MAX_S = 10 * 365 * 86400
TTL_RULE = f"a number of seconds from {TTL_MIN_S} to {TTL_MAX_S} (10 years)"

LOAD_MAX = 2**53
LOAD_RULE = f"an integer from 0 to {LOAD_MAX}"


def show(value: object) -> str:
    """repr() of a value for an error message: shortened, and safe for any int."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**60:
        # repr() of an int past Python's digit limit raises ValueError
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
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
        raise InvalidInput(f"invalid {kind} {show(value)}: must be {NAME_RULE}")
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
        raise InvalidInput(f"invalid uid {show(value)}: must be {UID_RULE}")
    return value


def uid_glob(value: object) -> str:
    """A glob over uids (SCAN MATCH syntax: * ? [abc] and \\ escapes), with the uid
    rule's characters: a '{' or '}' would match across the key's hash tag."""
    if not isinstance(value, str) or not 1 <= len(value) <= UID_MAX or _UID_BAD_RE.search(value):
        raise InvalidInput(f"invalid uid pattern {show(value)}: must be a glob of {UID_RULE}")
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
        if joined.isascii():  # the common case, by str methods: the regex costs ~40 ns a character
            bad = not joined.isprintable() or " " in joined or "{" in joined or "}" in joined
        else:
            bad = _UID_BAD_RE.search(joined) is not None
        good = min(lengths) >= 1 and max(lengths) <= UID_MAX and not bad
    except TypeError:
        good = False
    if not good:
        for value in values:
            uid(value)  # raises with the message naming the first bad value
    return values  # type: ignore[return-value]


def _integer(kind: str, value: object, low: int, high: int, rule: str) -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"invalid {kind} {show(value)}: must be {rule}")
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only (int() would also take '١' or '３'), and few enough
        # that int() does not hit Python's digit limit (a ValueError)
        if len(text) > 40 or not re.fullmatch(r"[+-]?[0-9]+", text):
            raise InvalidInput(f"invalid {kind} {show(value)}: must be {rule}")
        value = int(text)
    if not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"invalid {kind} {show(value)}: must be {rule}")
    return value


def pod(value: object) -> int:
    return _integer("pod", value, 0, POD_MAX, POD_RULE)


def load(value: object) -> int:
    return _integer("load", value, 0, LOAD_MAX, LOAD_RULE)


def ttl(value: object, *, kind: str = "ttl") -> float:
    """A duration in seconds, TTL_MIN_S to TTL_MAX_S (milliseconds resolution)."""
    rule = TTL_RULE
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"invalid {kind} {show(value)}: must be {rule}")
    if isinstance(value, str) and not _DECIMAL_RE.fullmatch(value.strip()):
        # float() would also take '1_000', 'infinity' or non-ASCII digits
        raise InvalidInput(f"invalid {kind} {show(value)}: must be {rule}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
        raise InvalidInput(f"invalid {kind} {show(value)}: must be {rule}") from None
    if not TTL_MIN_S <= number <= TTL_MAX_S:
        raise InvalidInput(f"invalid {kind} {show(value)}: must be {rule}")
    return number


def ttl_ms(value: object, *, kind: str = "ttl") -> int:
    return max(1, round(ttl(value, kind=kind) * 1000))


def bound_namespace(bound: str, asked: object) -> str:
    """Refuse an operation on another namespace than the driver's own."""
    from stroute.errors import NamespaceMismatch

    if asked != bound:
        from stroute.keys import any_namespace  # keys builds on this module

        any_namespace(asked)  # a homo-java namespace (APP:REGION:LOGICTYPE) is a namespace too
        raise NamespaceMismatch(
            f"namespace {asked!r} refused: this driver is bound to namespace {bound!r} "
            f"(open a driver for {asked!r} instead)"
        )
    return bound
