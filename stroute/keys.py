"""Every Redis key name stroute uses, built in this one place.

The layout is the seed's, so Go and Java services read the same data:

    P:{ns:lk:uid}svc      string  pod of the link (TTL = temporary)
    P:{ns:lk:uid}         hash    svc -> pod, persistent links only
    P:{ns:state:svc}      hash    pod -> load-heartbeatMillis-state[-epoch]
    P:{ns:state:svc}:ctl  hash    pod -> operator override ("cordon")
    P:{ns:state:svc}:notes hash   "pod:reason", "pod:epochs" -> what a pod says about its state
    P:{ns:state:svc}:gateways zset client driver id -> last snapshot read (Redis ms): the live gateways
    P:{ns:workload:svc}   string  service summary published by pod 0
    P:{ns:tag:tag}        string  service name
    P:{ns}:services       set     service names seen in the namespace
    P:{ns}:probe:TOKEN    string  `doctor`'s write probe, 10 s TTL, deleted at once

Keys that one operation touches together share a hash tag, so every script
runs unchanged on Redis Cluster. Names are validated by the callers
(`stroute.names`); uids carry no braces, so the hash tag is unambiguous.
Key names read back from Redis (by SCAN) are checked against the same rules:
other services may write keys stroute would never build.
"""

from __future__ import annotations

from dataclasses import dataclass

from stroute import names
from stroute.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class KeySpace:
    prefix: str
    namespace: str

    def link(self, uid: str, service: str) -> str:
        return f"{self.prefix}:{{{self.namespace}:lk:{uid}}}{service}"

    def links(self, uids: list[str], service: str) -> list[str]:
        """link() of many uids of one service."""
        head = f"{self.prefix}:{{{self.namespace}:lk:"
        tail = f"}}{service}"
        return [head + uid + tail for uid in uids]

    def link_keys(self, uid: str, service: str) -> list[str]:
        """KEYS of every link script: the link, then the user's index hash."""
        return [self.link(uid, service), self.index(uid)]

    def index(self, uid: str) -> str:
        return f"{self.prefix}:{{{self.namespace}:lk:{uid}}}"

    def state(self, service: str) -> str:
        return f"{self.prefix}:{{{self.namespace}:state:{service}}}"

    def control(self, service: str) -> str:
        return f"{self.prefix}:{{{self.namespace}:state:{service}}}:ctl"

    def notes(self, service: str) -> str:
        return f"{self.prefix}:{{{self.namespace}:state:{service}}}:notes"

    def gateways(self, service: str) -> str:
        """The client drivers placing users on the service, each scored with
        its last snapshot read: under the state hash tag, so the snapshot
        script registers the reader and counts them in the same call."""
        return f"{self.prefix}:{{{self.namespace}:state:{service}}}:gateways"

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

    # --- scanning -------------------------------------------------------

    def link_pattern(self, service: str | None = None, uid_glob: str | None = None) -> str:
        """SCAN MATCH pattern for link keys (names carry no glob characters;
        `uid_glob`, checked by names.uid_glob, is a glob for the uid)."""
        return f"{self.prefix}:{{{self.namespace}:lk:{uid_glob or '*'}}}{service or '?*'}"

    def index_pattern(self) -> str:
        """SCAN MATCH pattern for the users' index hashes (they end with '}')."""
        return f"{self.prefix}:{{{self.namespace}:lk:*}}"

    def parse_index(self, key: str) -> str | None:
        """The uid of an index key of this namespace, or None."""
        head = f"{self.prefix}:{{{self.namespace}:lk:"
        if not key.startswith(head) or not key.endswith("}"):
            return None
        uid = key[len(head):-1]
        return uid if uid and "}" not in uid else None

    def tag_pattern(self) -> str:
        """SCAN MATCH pattern for the namespace's tag keys."""
        return f"{self.prefix}:{{{self.namespace}:tag:*}}"

    def parse_tag(self, key: str) -> str | None:
        """The tag of a tag key of this namespace, or None (a name stroute would not write)."""
        head = f"{self.prefix}:{{{self.namespace}:tag:"
        if not key.startswith(head) or not key.endswith("}"):
            return None
        try:
            return names.tag(key[len(head):-1])
        except InvalidInput:
            return None

    def parse_state(self, key: str) -> tuple[str, bool] | None:
        """(service, is the control hash) of a state or control key of this namespace, or None."""
        head = f"{self.prefix}:{{{self.namespace}:state:"
        if not key.startswith(head):
            return None
        service, sep, tail = key[len(head):].partition("}")
        if not sep or not service or tail not in ("", ":ctl"):
            return None
        return service, tail == ":ctl"

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
        head = f"{self.prefix}:{{{self.namespace}:lk:"
        start = len(head)
        out = []
        for key in keys:
            if key.startswith(head):
                uid, sep, service = key[start:].partition("}")
                if sep and uid and service:
                    out.append((key, uid, service))
                elif unparseable is not None:
                    unparseable.append((key, "is no link key: it has no uid or no service"))
        try:  # in bulk: this runs for every page of a scan
            names.uids([uid for _, uid, _ in out])
            for service in {service for _, _, service in out}:
                names.service(service)
        except InvalidInput:
            good = []
            for key, uid, service in out:
                problem = _name_problem(uid, service)
                if problem is None:
                    good.append((key, uid, service))
                elif unparseable is not None:
                    unparseable.append((key, problem))
            out = good
        return out


def _name_problem(uid: str, service: str) -> str | None:
    """Why (uid, service) read from a key name is no link stroute can address, or None."""
    if "}" in service:
        return "has more than one '}' in its name: where its uid ends cannot be told"
    try:
        names.uid(uid)
    except InvalidInput:
        return f"names uid {names.show(uid)}, which breaks the uid rule ({names.UID_RULE})"
    try:
        names.service(service)
    except InvalidInput:
        return f"names service {names.show(service)}, which breaks the name rule ({names.NAME_RULE})"
    return None
