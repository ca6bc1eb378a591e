"""Every Redis key name stroute uses, built in this one place, per key layout.

A layout is the key scheme of one original driver; `KeySpace` is one
namespace's keys under one layout (see docs/mixed-fleets.md for what each
original reads and writes).

homo-go (the default; the Go original's keys, P = prefix, default `sf`):

    P:{ns:lk:uid}svc      string  pod of the link (TTL = temporary)
    P:{ns:lk:uid}         hash    svc -> pod, persistent links only
    P:{ns:state:svc}      hash    pod -> load-heartbeatMillis-state[-epoch]
    P:{ns:state:svc}:ctl  hash    pod -> operator override ("cordon")
    P:{ns:state:svc}:notes hash   "pod:reason", "pod:epochs" -> what a pod says about its state
    P:{ns:workload:svc}   string  service summary published by pod 0
    P:{ns:tag:tag}        string  service name
    P:{ns}:services       set     service names seen in the namespace
    P:{ns}:probe:TOKEN    string  `doctor`'s write probe, 10 s TTL, deleted at once

homo-java (the Java original's keys, P default `slug`, ns = APP:REGION:LOGICTYPE):

    P-lk:{ns:uid:svc}         string  pod of the link
    P-lk:{ns:uid}             hash    svc -> pod, persistent links only
    P-state:{ns:svc}          hash    pod -> load-heartbeatMillis-state[-epoch]
    P-state:{ns:svc}:ctl      hash    pod -> operator override (stroute's)
    P-state:{ns:svc}:notes    hash    as in homo-go (stroute's)
    P-workload:{ns:svc}       string  service summary (stroute's)
    P-tag:{ns:tag}            string  service name (stroute's)
    P-services:{ns}           set     service names (stroute's)
    P-services:{ns}:probe:TOKEN string doctor's write probe

In homo-go the keys one operation touches together share a hash tag, so
every script runs unchanged on Redis Cluster. homo-java's link and index
keys have different hash tags (`one_slot` is False): the Store refuses such a
layout on a Cluster. A ':' in a homo-java uid would make the index key of
uid 'a:b' the link key of uid 'a' to service 'b', so this layout refuses it.

Names are validated by the callers (`stroute.names`) and the layout's own
rules here; uids carry no braces, so the hash tag is unambiguous. Key names
read back from Redis (by SCAN) are checked against the same rules: other
services may write keys stroute would never build.
"""

from __future__ import annotations

import abc

from stroute import names
from stroute.errors import InvalidInput

HOMO_GO = "homo-go"
HOMO_JAVA = "homo-java"
LAYOUTS = (HOMO_GO, HOMO_JAVA)
DEFAULT_LAYOUT = HOMO_GO
LAYOUT_RULE = f"one of {', '.join(LAYOUTS)}"


def layout(value: object) -> str:
    """A layout name, or InvalidInput naming the bad value and the choices."""
    if value not in LAYOUTS:
        raise InvalidInput(f"invalid layout {names.show(value)}: must be {LAYOUT_RULE}")
    return value  # type: ignore[return-value]


class KeySpace(abc.ABC):
    """The keys of one namespace under one layout (this base: what every layout shares)."""

    __slots__ = ("prefix", "namespace", "_link_head")

    layout: str = ""
    default_prefix: str = ""
    namespace_rule: str = ""
    one_slot: bool = True  # every key of one link operation under one hash tag
    uid_rule: str = ""  # the layout's own uid rule past names.UID_RULE, if any

    def __new__(cls, prefix: str = "", namespace: str = "") -> "KeySpace":
        # KeySpace(prefix, ns) is the default layout's, as it was before layouts.
        return object.__new__(HomoGoKeys if cls is KeySpace else cls)

    def __init__(self, prefix: str, namespace: str) -> None:
        self.prefix = prefix
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prefix!r}, {self.namespace!r})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (self.prefix, self.namespace) == (other.prefix, other.namespace)  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.prefix, self.namespace))

    @classmethod
    @abc.abstractmethod
    def check_namespace(cls, value: object) -> str:
        ...

    def check_uid(self, uid: str) -> str:
        """The layout's own rule for a uid, past names.uid (which the caller checks)."""
        return uid

    def link_keys(self, uid: str, service: str) -> list[str]:
        """KEYS of every link script: the link, then the user's index hash."""
        return [self.link(uid, service), self.index(uid)]

    @abc.abstractmethod
    def link(self, uid: str, service: str) -> str:
        ...

    @abc.abstractmethod
    def links(self, uids: list[str], service: str) -> list[str]:
        ...

    @abc.abstractmethod
    def index(self, uid: str) -> str:
        ...

    def parse_link(self, key: str) -> tuple[str, str] | None:
        """(uid, service) of a link key of this namespace, or None."""
        parsed = self.parse_links([key])
        return (parsed[0][1], parsed[0][2]) if parsed else None

    def parse_links(
        self, keys: list[str], unparseable: list[tuple[str, str]] | None = None
    ) -> list[tuple[str, str, str]]:
        """(key, uid, service) of each link key of this namespace among keys, in order.

        A key whose uid or service breaks the naming rules is left out, and
        with (key, problem) added to `unparseable` when that is given: such a
        key was written by someone else, and guessing where its uid ends would
        give it to the wrong user (`a}b}game` is no link of uid 'a').
        """
        return list(zip(*self.parse_link_columns(keys, unparseable)))

    def parse_link_columns(
        self, keys: list[str], unparseable: list[tuple[str, str]] | None = None
    ) -> tuple[list[str], list[str], list[str]]:
        """parse_links as three lists, the keys, their uids and their services:
        a listing parses every page, and this builds no tuple per key."""
        columns = self._page_columns(keys)
        if columns is not None:
            return columns
        out = self._split_links(keys, unparseable)
        try:  # in bulk: this runs for every page of a scan
            names.uids([uid for _, uid, _ in out])
            for service in {service for _, _, service in out}:
                names.service(service)
            if self.uid_rule:
                for _, uid, _ in out:
                    self.check_uid(uid)
        except InvalidInput:
            good = []
            for key, uid, service in out:
                problem = self._name_problem(uid, service)
                if problem is None:
                    good.append((key, uid, service))
                elif unparseable is not None:
                    unparseable.append((key, problem))
            out = good
        return [key for key, _, _ in out], [uid for _, uid, _ in out], [service for _, _, service in out]

    def _page_columns(self, keys: list[str]) -> tuple[list[str], list[str], list[str]] | None:
        """parse_link_columns of a page of good keys by whole-page string
        operations, or None (then keys are parsed one by one)."""
        return None

    @abc.abstractmethod
    def _split_links(self, keys: list[str], unparseable: list[tuple[str, str]] | None) -> list[tuple[str, str, str]]:
        ...

    def _name_problem(self, uid: str, service: str) -> str | None:
        """Why (uid, service) read from a key name is no link stroute can address, or None."""
        if "}" in service or "}" in uid:
            return "has more than one '}' in its name: where its uid ends cannot be told"
        try:
            names.uid(uid)
        except InvalidInput:
            return f"names uid {names.show(uid)}, which breaks the uid rule ({names.UID_RULE})"
        try:
            self.check_uid(uid)
        except InvalidInput as exc:
            return f"names uid {names.show(uid)}, which breaks the {self.layout} layout's uid rule: {exc.message}"
        try:
            names.service(service)
        except InvalidInput:
            return f"names service {names.show(service)}, which breaks the name rule ({names.NAME_RULE})"
        return None

    @abc.abstractmethod
    def state(self, service: str) -> str:
        ...

    # The operator's and the pods' own hashes share the state key's hash tag:
    # one script reads or writes them together.
    def control(self, service: str) -> str:
        return f"{self.state(service)}:ctl"

    def notes(self, service: str) -> str:
        return f"{self.state(service)}:notes"

    def gateways(self, service: str) -> str:
        """The client drivers placing users on the service, each scored with
        its last snapshot read: under the state hash tag, so the snapshot
        script registers the reader and counts them in the same call."""
        return f"{self.state(service)}:gateways"

    def tag_pattern(self) -> str:
        """SCAN MATCH pattern for the namespace's tag keys."""
        head, tail = self.tag("\x00").split("\x00")
        return f"{head}*{tail}"

    def parse_tag(self, key: str) -> str | None:
        """The tag of a tag key of this namespace, or None (a name stroute would not write)."""
        head, tail = self.tag("\x00").split("\x00")
        if not key.startswith(head) or not key.endswith(tail) or len(key) <= len(head) + len(tail):
            return None
        try:
            return names.tag(key[len(head):len(key) - len(tail)])
        except InvalidInput:
            return None

    # Per layout too: workload(), tag(), services(), probe(), acl_patterns(),
    # link_pattern(), index_pattern(), state_pattern(), parse_index(), parse_state().


class HomoGoKeys(KeySpace):
    """The Go original's layout (stroute's own since its start)."""

    __slots__ = ()
    layout = HOMO_GO
    default_prefix = "sf"
    namespace_rule = names.NAME_RULE

    def __init__(self, prefix: str, namespace: str) -> None:
        super().__init__(prefix, namespace)
        self._link_head = f"{prefix}:{{{namespace}:lk:"

    @classmethod
    def check_namespace(cls, value: object) -> str:
        return names.namespace(value)

    def link(self, uid: str, service: str) -> str:
        return f"{self._link_head}{uid}}}{service}"

    def links(self, uids: list[str], service: str) -> list[str]:
        """link() of many uids of one service."""
        head = self._link_head
        tail = f"}}{service}"
        return [head + uid + tail for uid in uids]

    def index(self, uid: str) -> str:
        return f"{self._link_head}{uid}}}"

    def state(self, service: str) -> str:
        return f"{self.prefix}:{{{self.namespace}:state:{service}}}"

    def workload(self, service: str) -> str:
        return f"{self.prefix}:{{{self.namespace}:workload:{service}}}"

    def tag(self, tag: str) -> str:
        return f"{self.prefix}:{{{self.namespace}:tag:{tag}}}"

    def services(self) -> str:
        return f"{self.prefix}:{{{self.namespace}}}:services"

    def probe(self, token: str) -> str:
        """doctor's short-lived write probe: under the registry's hash tag, so it
        goes where the namespace's own writes go (and an ACL for P:{ns}:* allows it)."""
        return f"{self.prefix}:{{{self.namespace}}}:probe:{token}"

    def acl_patterns(self) -> tuple[str, ...]:
        return (f"{self.prefix}:{{{self.namespace}:*", f"{self.prefix}:{{{self.namespace}}}:*")

    # --- scanning -------------------------------------------------------

    def link_pattern(self, service: str | None = None, uid_glob: str | None = None) -> str:
        """SCAN MATCH pattern for link keys (names carry no glob characters;
        `uid_glob`, checked by names.uid_glob, is a glob for the uid)."""
        return f"{self._link_head}{uid_glob or '*'}}}{service or '?*'}"

    def index_pattern(self) -> str:
        """SCAN MATCH pattern for the users' index hashes (they end with '}')."""
        return f"{self._link_head}*}}"

    def state_pattern(self) -> str:
        """SCAN MATCH pattern for the services' state hashes (they end with '}')."""
        return f"{self.prefix}:{{{self.namespace}:state:*}}"

    def parse_index(self, key: str) -> str | None:
        """The uid of an index key of this namespace, or None."""
        head = self._link_head
        if not key.startswith(head) or not key.endswith("}"):
            return None
        uid = key[len(head):-1]
        return uid if uid and "}" not in uid else None

    def parse_state(self, key: str) -> tuple[str, bool] | None:
        """(service, is the control hash) of a state or control key of this namespace, or None."""
        head = f"{self.prefix}:{{{self.namespace}:state:"
        if not key.startswith(head):
            return None
        service, sep, tail = key[len(head):].partition("}")
        if not sep or not service or tail not in ("", ":ctl"):
            return None
        return service, tail == ":ctl"

    def _page_columns(self, keys: list[str]) -> tuple[list[str], list[str], list[str]] | None:
        return _split_page(keys, self._link_head)

    def _split_links(self, keys: list[str], unparseable: list[tuple[str, str]] | None) -> list[tuple[str, str, str]]:
        head = self._link_head
        start = len(head)
        out = []
        for key in keys:
            if key.startswith(head):
                uid, sep, service = key[start:].partition("}")
                if sep and uid and service:
                    out.append((key, uid, service))
                elif unparseable is not None:
                    unparseable.append((key, "is no link key: it has no uid or no service"))
        return out


def _split_page(keys: list[str], head: str) -> tuple[list[str], list[str], list[str]] | None:
    """parse_link_columns of a page whose keys are all good link keys, by
    whole-page string operations (this runs for every page of a listing);
    None when some key is not, for the key-by-key parse to sort out.

    Joined by newlines (no good key holds one), every line starts with
    `head`; what follows splits at '}' into uid and service, which must
    rebuild the page (so each line held exactly one '}') and pass the
    naming rules in bulk."""
    if not keys:
        return [], [], []
    count = len(keys)
    joined = "\n".join(keys)
    if not joined.startswith(head) or joined.count("\n") != count - 1 or joined.count("\n" + head) != count - 1:
        return None
    body = joined[len(head):].replace("\n" + head, "\n")
    parts = body.replace("}", "\n").split("\n")
    if len(parts) != 2 * count:
        return None
    uids, services = parts[0::2], parts[1::2]
    if "\n".join(map("}".join, zip(uids, services))) != body:
        return None
    try:
        names.uids(uids)
        for service in set(services):
            names.service(service)
    except InvalidInput:
        return None
    return keys, uids, services


JAVA_NAMESPACE_RULE = f"APP:REGION:LOGICTYPE, three names joined by ':', each {names.NAME_RULE}"
JAVA_UID_RULE = "no ':' (the Java layout's index key of uid 'a:b' is the link key of uid 'a' to service 'b')"


class HomoJavaKeys(KeySpace):
    """The Java original's layout: `slug-lk:{APP:REGION:LOGICTYPE:UID[:SVC]}`,
    `slug-state:{APP:REGION:LOGICTYPE:SVC}` (StatefulDriverRedisImpl's templates)."""

    __slots__ = ()
    layout = HOMO_JAVA
    default_prefix = "slug"
    namespace_rule = JAVA_NAMESPACE_RULE
    one_slot = False
    uid_rule = JAVA_UID_RULE

    def __init__(self, prefix: str, namespace: str) -> None:
        super().__init__(prefix, namespace)
        self._link_head = f"{prefix}-lk:{{{namespace}:"

    @classmethod
    def check_namespace(cls, value: object) -> str:
        parts = value.split(":") if isinstance(value, str) else []
        try:
            if len(parts) != 3:
                raise InvalidInput("")
            for part in parts:
                names.namespace(part)
        except InvalidInput:
            raise InvalidInput(f"invalid namespace {names.show(value)} for layout {HOMO_JAVA}: "
                               f"must be {JAVA_NAMESPACE_RULE}") from None
        return value  # type: ignore[return-value]

    def check_uid(self, uid: str) -> str:
        if ":" in uid:
            raise InvalidInput(f"invalid uid {names.show(uid)} for layout {HOMO_JAVA}: must have {JAVA_UID_RULE}")
        return uid

    def link(self, uid: str, service: str) -> str:
        return f"{self._link_head}{self.check_uid(uid)}:{service}}}"

    def links(self, uids: list[str], service: str) -> list[str]:
        head = self._link_head
        tail = f":{service}}}"
        if any(":" in uid for uid in uids):
            for uid in uids:
                self.check_uid(uid)
        return [head + uid + tail for uid in uids]

    def index(self, uid: str) -> str:
        return f"{self._link_head}{self.check_uid(uid)}}}"

    def state(self, service: str) -> str:
        return f"{self.prefix}-state:{{{self.namespace}:{service}}}"

    def workload(self, service: str) -> str:
        return f"{self.prefix}-workload:{{{self.namespace}:{service}}}"

    def tag(self, tag: str) -> str:
        return f"{self.prefix}-tag:{{{self.namespace}:{tag}}}"

    def services(self) -> str:
        return f"{self.prefix}-services:{{{self.namespace}}}"

    def probe(self, token: str) -> str:
        return f"{self.services()}:probe:{token}"

    def acl_patterns(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}-{kind}:{{{self.namespace}:*" for kind in ("lk", "state", "workload", "tag")) + (
            f"{self.services()}*",)

    # --- scanning -------------------------------------------------------

    def link_pattern(self, service: str | None = None, uid_glob: str | None = None) -> str:
        return f"{self._link_head}{uid_glob or '*'}:{service or '?*'}}}"

    def index_pattern(self) -> str:
        return f"{self._link_head}*}}"

    def state_pattern(self) -> str:
        return f"{self.prefix}-state:{{{self.namespace}:*}}"

    def parse_index(self, key: str) -> str | None:
        head = self._link_head
        if not key.startswith(head) or not key.endswith("}"):
            return None
        uid = key[len(head):-1]
        # Two parts is a link key (uid:svc), not an index.
        return uid if uid and "}" not in uid and ":" not in uid else None

    def parse_state(self, key: str) -> tuple[str, bool] | None:
        head = f"{self.prefix}-state:{{{self.namespace}:"
        if not key.startswith(head):
            return None
        service, sep, tail = key[len(head):].partition("}")
        if not sep or not service or ":" in service or tail not in ("", ":ctl"):
            return None
        return service, tail == ":ctl"

    def _split_links(self, keys: list[str], unparseable: list[tuple[str, str]] | None) -> list[tuple[str, str, str]]:
        head = self._link_head
        start = len(head)
        out = []
        for key in keys:
            if key.startswith(head) and key.endswith("}"):
                uid, sep, service = key[start:-1].rpartition(":")
                if sep and uid and service:
                    out.append((key, uid, service))
                elif unparseable is not None and sep:
                    unparseable.append((key, "is no link key: it has no uid or no service"))
        return out


_CLASSES: dict[str, type[KeySpace]] = {HOMO_GO: HomoGoKeys, HOMO_JAVA: HomoJavaKeys}


def layout_class(name: str) -> type[KeySpace]:
    return _CLASSES[layout(name)]


def keyspace(layout_name: str, prefix: str | None, namespace: object) -> KeySpace:
    """The KeySpace of a namespace under a layout; the namespace checked by the layout's rule."""
    cls = layout_class(layout_name)
    return cls(names.prefix(prefix or cls.default_prefix), cls.check_namespace(namespace))


def any_namespace(value: object) -> str:
    """A namespace of some layout (the Store holds it to its own layout's rule)."""
    try:
        return names.namespace(value)
    except InvalidInput:
        if isinstance(value, str) and value.count(":") == 2:
            return HomoJavaKeys.check_namespace(value)
        raise


def default_prefix(layout_name: str) -> str:
    return layout_class(layout_name).default_prefix
