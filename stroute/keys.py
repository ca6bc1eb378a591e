"""Every Redis key name stroute uses, built in this one place.

The layout is the seed's, so Go and Java services read the same data:

    P:{ns:lk:uid}svc      string  pod of the link (TTL = temporary)
    P:{ns:lk:uid}         hash    svc -> pod, persistent links only
    P:{ns:state:svc}      hash    pod -> load-heartbeatMillis-state[-epoch]
    P:{ns:state:svc}:ctl  hash    pod -> operator override ("cordon")
    P:{ns:state:svc}:notes hash   "pod:reason", "pod:epochs" -> what a pod says about its state
    P:{ns:workload:svc}   string  service summary published by pod 0
    P:{ns:tag:tag}        string  service name
    P:{ns}:services       set     service names seen in the namespace
    P:{ns}:probe:TOKEN    string  `doctor`'s write probe, 10 s TTL, deleted at once

Keys that one operation touches together share a hash tag, so every script
runs unchanged on Redis Cluster. Names are validated by the callers
(`stroute.names`); uids carry no braces, so the hash tag is unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def link_pattern(self, service: str | None = None) -> str:
        """SCAN MATCH pattern for link keys (names carry no glob characters)."""
        return f"{self.prefix}:{{{self.namespace}:lk:*}}{service or '?*'}"

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

    def parse_links(self, keys: list[str]) -> list[tuple[str, str, str]]:
        """(key, uid, service) of each link key of this namespace among keys, in order."""
        head = f"{self.prefix}:{{{self.namespace}:lk:"
        start = len(head)
        out = []
        for key in keys:
            if key.startswith(head):
                uid, sep, service = key[start:].partition("}")
                if sep and uid and service:
                    out.append((key, uid, service))
        return out
