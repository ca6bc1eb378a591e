"""The sync store: every link and pod-state operation, one round trip each.

Each operation is one Lua script (run by SHA, every key through KEYS, all
keys of one script under one hash tag) or one plain command. The drivers'
operations are `stroute.store.domain`'s, shared with the AsyncStore; this
module runs them on kept connections (`stroute.direct`, per node on a
Redis Cluster) and adds the command line's walks over many keys (listings,
counts, imports). Names are validated before anything reaches Redis, and
driver errors are wrapped into stroute's own exceptions at this border.
"""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from stroute import direct, names
from stroute.store import domain
from stroute.store.domain import (
    _POD_TEXT,
    _REPAIR,
    _WRONG_TYPE,
    LINK_KINDS,
    BadKeys,
    BatchLinks,
    Link,
    LinkCounts,
    Published,
    Registry,
    SetIfAbsent,
    _new_tuple,
    _not_a_pod,
    _optional_pod,
    _pod_of,
    _report,
    parse_pod,
    script_sha,
    script_source,
)
from stroute.errors import ConfigError, CorruptData, InvalidInput, PermissionDenied, RedisUnavailable, StoreError
from stroute.keys import DEFAULT_LAYOUT, KeySpace, keyspace, layout_class

if TYPE_CHECKING:
    # Imported where used: a command that reads links never loads pod states.
    from stroute.podstate import PodNotes, RoutingState, Snapshot

class Store:
    """All stroute data in one Redis deployment.

    `client` is a redis-py client (or fakeredis) with decode_responses=True.
    `where` is the redacted URL, used in error messages.
    """

    def __init__(self, client: Any, *, prefix: str | None = None, where: str = "redis",
                 layout: str = DEFAULT_LAYOUT) -> None:
        self.client = client
        self.layout = layout
        self.prefix = names.prefix(prefix or layout_class(layout).default_prefix)
        self.where = where
        self._cluster_scripts: dict[str, Any] = {}  # redis-py script objects, made on first use
        self.cluster = _is_cluster(client)
        if self.cluster and not layout_class(layout).one_slot:
            raise ConfigError(
                f"layout {layout} does not run on Redis Cluster ({where}): it keeps a user's link and "
                "link index under different hash tags, so no script can change both at once there "
                "(the original Java driver's scripts fail there too); use a single Redis or Sentinel, "
                "or layout homo-go")
        self._direct = direct.for_client(client)  # None on a cluster
        if self._direct is None and not self.cluster:
            raise TypeError(f"a Store needs a redis-py (or fakeredis) client, not {type(client).__name__}")
        self._loaded: set[str] = set()  # scripts this Store has SCRIPT LOADed for its pipelines
        self._keyspaces: dict[str, KeySpace] = {}
        self._discovered: dict[str, tuple[float, list[str]]] = {}  # namespace -> (when, services)
        # A cluster's scripts go to the node owning their keys on connections
        # kept per node (`_node_direct`), so client-side caching can track them.
        self._node_directs: dict[str, Any] = {}
        self._node_tracking: dict[str, Any] = {}
        self.on_topology_change: Any = None  # called with a reason on MOVED/ASK

    @classmethod
    def from_url(cls, url: str, *, prefix: str | None = None, options: Any = None,
                 layout: str = DEFAULT_LAYOUT) -> "Store":
        from stroute.backends import connect, redact

        layout_class(layout)  # a bad layout is refused before connecting
        client = connect(url, options)
        try:
            return cls(client, prefix=prefix, where=redact(url), layout=layout)
        except ConfigError:
            client.close()
            raise

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        for node_direct in self._node_directs.values():
            node_direct.close()
        try:
            self.client.close()
        except Exception:  # closing must never raise
            pass

    def keys(self, namespace: str) -> KeySpace:
        ks = self._keyspaces.get(namespace)
        if ks is None:
            ks = self._keyspaces[namespace] = keyspace(self.layout, self.prefix, namespace)
        return ks

    # --- the border ---------------------------------------------------------

    def _call(self, fn, *args, **kwargs):
        import redis

        from stroute.store.domain import translate

        try:
            return fn(*args, **kwargs)
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            raise translate(exc, self.where) from None

    def _script(self, name: str, keys: list[str], args: list[Any]):
        if self._direct is not None:
            return self._call(self._evalsha, self._direct, name, keys, args)
        return self._call(self._cluster_script, name, keys, args)

    def _cluster_script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """A script on the node that owns its keys, on that node's kept connections;
        when that node redirects or fails, through redis-py's cluster client."""
        import redis

        node = self.client.get_node_from_key(keys[0])
        try:
            return self._evalsha(self._node_direct(node), name, keys, args)
        except (redis.exceptions.MovedError, redis.exceptions.AskError, redis.exceptions.ClusterDownError,
                redis.exceptions.TryAgainError, redis.ConnectionError) as exc:
            # redis-py's cluster client follows the redirect or finds the node
            # that replaced a dead one, and refreshes its view of the slots.
            self._topology_changed(exc)
        script = self._cluster_scripts.get(name)
        if script is None:
            script = self._cluster_scripts[name] = self.client.register_script(script_source(name))
        return script(keys=keys, args=args)

    def _evalsha(self, commands: Any, name: str, keys: list[str], args: list[Any]) -> Any:
        """One script by SHA; loaded and run again if Redis lost it (restarted or flushed)."""
        import redis

        command = ("EVALSHA", script_sha(name), len(keys), *keys, *args)
        try:
            return commands.call(*command)
        except redis.exceptions.NoScriptError:
            commands.call("SCRIPT", "LOAD", script_source(name))
            return commands.call(*command)

    def _node_direct(self, node: Any) -> Any:
        """The kept connections to one cluster node."""
        commands = self._node_directs.get(node.name)
        if commands is None:
            commands = direct.for_client(self.client.get_redis_connection(node))
            commands.tracking = self._node_tracking.get(node.name)
            self._node_directs[node.name] = commands
        return commands

    def use_tracking(self, node_name: str | None, tracking: Any) -> None:
        """Cluster: track reads on one node's connections (None, None: stop tracking)."""
        if node_name is None:
            self._node_tracking.clear()
            for commands in self._node_directs.values():
                commands.tracking = None
            return
        self._node_tracking[node_name] = tracking
        commands = self._node_directs.get(node_name)
        if commands is not None:
            commands.tracking = tracking

    def _topology_changed(self, exc: Exception) -> None:
        if self.on_topology_change is not None:
            self.on_topology_change(f"Redis Cluster redirected a command ({_reason(exc)})")

    def ping(self) -> bool:
        if self._direct is None:
            return bool(self._call(self.client.ping))
        return self._call(self._direct.call, "PING") == "PONG"

    # --- links ----------------------------------------------------------------

    def get(self, namespace: str, uid: str, service: str) -> Link | None:
        return self.run(domain.get(self.keys(namespace), uid, service))

    def get_if_persistent(self, namespace: str, uid: str, service: str) -> int | None:
        ks = self.keys(namespace)
        key = ks.index(names.uid(uid))
        return _optional_pod(self._read_index(self.client.hget, key, names.service(service)), key)

    def links_of(self, namespace: str, uid: str, *, bad: BadKeys | None = None) -> dict[str, int]:
        """Every persistent link of one user: {service: pod}. A field that is
        no pod index goes to `bad` (as 'KEY field SVC'), or raises CorruptData."""
        return self.run(domain.links_of(self.keys(namespace), uid, bad=bad))

    def _read_index(self, fn, key: str, *args: Any) -> Any:
        """A read of a user's index hash; another type there is CorruptData naming the key."""
        try:
            return self._call(fn, key, *args)
        except StoreError as exc:
            if "WRONGTYPE" not in exc.message:
                raise
            kind = self._call(self.client.type, key)
            raise CorruptData(f"key {key!r} is a {kind}, not a link index (a hash)", keys=(key,),
                              hint=_REPAIR) from None

    def _link_keys(self, namespace: str, uid: str, service: str) -> list[str]:
        ks = self.keys(namespace)
        names.uid(uid)
        names.service(service)
        return ks.link_keys(uid, service)

    def set(self, namespace: str, uid: str, service: str, pod: int, ttl_ms: int | None = None) -> int | None:
        """Force the link; returns the previous pod or None."""
        return self.run(domain.set_link(self.keys(namespace), uid, service, pod, ttl_ms))

    def try_set(self, namespace: str, uid: str, service: str, pod: int, ttl_ms: int | None = None) -> tuple[bool, int]:
        """Set unless a persistent link to another pod exists: (ok, pod in force)."""
        return self.run(domain.try_set(self.keys(namespace), uid, service, pod, ttl_ms))

    def set_if_absent(self, namespace: str, uid: str, service: str, pod: int, ttl_ms: int | None = None) -> SetIfAbsent:
        return self.run(domain.set_if_absent(self.keys(namespace), uid, service, pod, ttl_ms))

    def set_if_absent_many(
        self, namespace: str, service: str, wanted: Iterable[tuple[str, int]], ttl_ms: int | None = None
    ) -> list[SetIfAbsent | CorruptData]:
        """set_if_absent for many (uid, pod) pairs in one pipelined round trip;
        a uid whose link key or index holds bad data gets its CorruptData in
        its place (nothing was written for it), the others their results."""
        return self.run(domain.set_if_absent_many(self.keys(namespace), service, wanted, ttl_ms))

    def run_script_many(
        self, name: str, calls: list[tuple[list[str], list]], *, keep_corrupt: bool = False
    ) -> list[Any]:
        """One of the package's scripts for many (keys, args), replies in call order:
        one pipelined round trip (a pipeline per node on a cluster).

        A script's CORRUPT refusal (nothing of that call written) raises
        CorruptData, or with keep_corrupt stands in the list in its reply's
        place, so the other calls' replies are not lost.

        Scripts cannot run inside redis-py's cluster pipelines, so on a
        cluster the calls are grouped by the node that owns their keys and
        each group goes down a plain pipeline to that node. A call whose slot
        moved meanwhile is retried alone through the cluster client.
        """
        sha = script_sha(name)
        if not self.cluster:
            return self._pipeline([("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls], name,
                                  keep_corrupt=keep_corrupt)

        import redis

        by_node: dict[str, list[int]] = {}
        nodes: dict[str, Any] = {}
        for i, (keys, _) in enumerate(calls):
            node = self._call(self.client.get_node_from_key, keys[0])
            by_node.setdefault(node.name, []).append(i)
            nodes[node.name] = node
        replies: list[Any] = [None] * len(calls)
        for node_name, indexes in by_node.items():
            commands = self._node_direct(nodes[node_name])
            pipeline = [("EVALSHA", sha, len(calls[i][0]), *calls[i][0], *calls[i][1]) for i in indexes]
            for attempt in range(2):
                got = self._call(commands.pipeline, pipeline)
                if attempt or not any(isinstance(r, redis.exceptions.NoScriptError) for r in got):
                    break
                self._call(commands.call, "SCRIPT", "LOAD", script_source(name))
            for i, reply in zip(indexes, got):
                if isinstance(reply, (redis.exceptions.MovedError, redis.exceptions.AskError)):
                    self._topology_changed(reply)
                    keys, args = calls[i]
                    try:
                        reply = self._script(name, keys, args)
                    except CorruptData as exc:
                        if not keep_corrupt:
                            raise
                        reply = exc
                elif isinstance(reply, Exception):
                    reply = self._error_reply(reply, keep_corrupt)
                replies[i] = reply
        return replies

    def _error_reply(self, reply: Exception, keep_corrupt: bool) -> CorruptData:
        """Raise an error reply of a pipeline as the border does; a CORRUPT one
        is returned instead with keep_corrupt."""
        try:
            self._call(_raise, reply)
        except CorruptData as exc:
            if keep_corrupt:
                return exc
            raise
        raise AssertionError("unreachable: _call raised")

    def _pipeline(self, commands: list[tuple[Any, ...]], *scripts: str, keep_corrupt: bool = False,
                  untracked: bool = False) -> list[Any]:
        """Run one pipeline (not on a cluster) whose scripts are called by EVALSHA.

        Unlike redis-py's script objects in a pipeline, this sends no SCRIPT
        EXISTS before each pipeline: a script is loaded once per Store before
        its first pipeline, and on NOSCRIPT (a restarted or flushed Redis;
        then no script of the pipeline ran) loaded again and the pipeline run
        once more.
        """
        import redis

        for name in scripts:
            if name not in self._loaded:
                self._call(self._direct.call, "SCRIPT", "LOAD", script_source(name))
                self._loaded.add(name)
        for attempt in range(2):
            replies = self._call(self._direct.pipeline, commands, untracked=untracked)
            missing = any(isinstance(r, redis.exceptions.NoScriptError) for r in replies)
            if not missing or attempt:
                break
            for name in scripts:
                self._call(self._direct.call, "SCRIPT", "LOAD", script_source(name))
        for i, reply in enumerate(replies):
            if isinstance(reply, Exception):
                replies[i] = self._error_reply(reply, keep_corrupt)
        return replies

    def move(self, namespace: str, uid: str, service: str, expected: int, new: int) -> tuple[bool, int | None]:
        """Compare-and-set: (moved, pod in force)."""
        return self.run(domain.move(self.keys(namespace), uid, service, expected, new))

    def move_many(
        self, namespace: str, service: str, moves: list[tuple[str, int, int]]
    ) -> list[tuple[bool, int | None] | CorruptData]:
        """move for many (uid, expected, new), one pipelined round trip (per
        node on a cluster); replies in order. A key that holds what is no link
        (or an index of another type) stands as its CorruptData, nothing of
        that move written, so the other moves' replies are not lost."""
        ks = self.keys(namespace)
        names.service(service)
        names.uids([uid for uid, _, _ in moves])
        calls = [(ks.link_keys(uid, service), [service, names.pod(expected), names.pod(new)])
                 for uid, expected, new in moves]
        if not calls:
            return []
        return self._flag_and_pod_many("link_move", calls, removed_anyway=False)

    def remove(
        self, namespace: str, uid: str, service: str, *, after_ms: int = 0, if_pod: int | None = None
    ) -> tuple[bool, int | None]:
        """Remove now (after_ms=0) or after a delay, fenced by if_pod: (removed, pod it held).

        (True, None): the key held a value that is no pod index, and was removed."""
        return self.run(domain.remove(self.keys(namespace), uid, service, after_ms=after_ms, if_pod=if_pod))

    def remove_many(
        self, namespace: str, service: str, uids: list[str], *, if_pod: int | None = None
    ) -> list[tuple[bool, int | None] | CorruptData]:
        """remove (now) for many uids, fenced by if_pod, one pipelined round
        trip (per node on a cluster); replies in order, a bad key standing as
        its CorruptData as in move_many."""
        ks = self.keys(namespace)
        names.service(service)
        names.uids(uids)
        expected = "" if if_pod is None else names.pod(if_pod)
        calls = [(ks.link_keys(uid, service), [service, 0, expected]) for uid in uids]
        if not calls:
            return []
        return self._flag_and_pod_many("link_remove", calls, removed_anyway=True)

    def _flag_and_pod_many(self, name: str, calls: list[tuple[list[str], list]], *,
                           removed_anyway: bool) -> list[tuple[bool, int | None] | CorruptData]:
        """A link script replying {done, pod} for many calls, in one pipelined round
        trip: (done, pod in force) each, or the CorruptData of a bad key in its
        place. `removed_anyway`: a done removal of a value that is no pod index
        reads (True, None), as remove() says, instead of an error."""
        out: list[tuple[bool, int | None] | CorruptData] = []
        for (keys, _), reply in zip(calls, self.run_script_many(name, calls, keep_corrupt=True)):
            if isinstance(reply, CorruptData):
                out.append(reply)
                continue
            done, current = reply
            try:
                out.append((bool(done), _optional_pod(current, keys[0])))
            except CorruptData as exc:
                out.append((True, None) if done and removed_anyway else exc)
        return out

    def batch_get(self, namespace: str, uids: list[str], service: str) -> dict[str, int | None]:
        """Links of many uids of one service: one pipelined round trip of MGETs."""
        return dict(zip(uids, self.batch_pods(namespace, uids, service)))

    def batch_pods(self, namespace: str, uids: list[str], service: str) -> list[int | None]:
        """batch_get as a list in the order of uids (no dict to build).
        A value that is no pod index raises CorruptData (batch_links reports it instead)."""
        return self.run(domain.batch_pods(self.keys(namespace), uids, service, cluster=self.cluster))

    def batch_links(self, namespace: str, uids: Iterable[str], service: str) -> BatchLinks:
        """Links of many uids of one service grouped by pod, in the same round
        trip as batch_pods; a uid whose link value is no pod index is in neither
        `pods` nor `missing` but in `bad_keys`. (A key of another type reads as
        missing: telling it apart would cost a command per missing uid.)"""
        wanted = list(dict.fromkeys(uids))
        keys, values = self._batch_values(namespace, wanted, service)
        result = BatchLinks({}, [], BadKeys())
        pods: dict[int, list[str]] = {}
        known = _POD_TEXT
        for uid, key, raw in zip(wanted, keys, values):
            if raw is None:
                result.missing.append(uid)
                continue
            pod = known.get(raw)
            if pod is None:
                try:
                    pod = _pod_of(raw, key)
                except CorruptData:
                    result.bad_keys.add(key, _not_a_pod(raw))
                    continue
            pods.setdefault(pod, []).append(uid)
        result.pods.update(sorted(pods.items()))
        return result

    def _batch_values(self, namespace: str, uids: list[str], service: str) -> tuple[list[str], list[Any]]:
        """The link keys of uids and their raw values (None for a missing key or one of another type)."""
        return self.run(domain.batch_values(self.keys(namespace), uids, service, cluster=self.cluster))

    def scan_links(
        self,
        namespace: str,
        *,
        service: str | None = None,
        pod: int | None = None,
        uid_glob: str | None = None,
        kind: str | None = None,
        ttl_below_ms: int | None = None,
        count: int = 1000,
        bad: BadKeys | None = None,
    ) -> Iterator[Link]:
        """Every link of the namespace (SCAN, never KEYS), optionally filtered;
        see scan_link_pages."""
        for page in self.scan_link_pages(namespace, service=service, pod=pod, uid_glob=uid_glob, kind=kind,
                                         ttl_below_ms=ttl_below_ms, count=count, bad=bad):
            yield from page

    def scan_link_pages(
        self,
        namespace: str,
        *,
        service: str | None = None,
        pod: int | None = None,
        uid_glob: str | None = None,
        kind: str | None = None,
        ttl_below_ms: int | None = None,
        count: int = 1000,
        bad: BadKeys | None = None,
    ) -> Iterator[list[Link]]:
        """The namespace's links a SCAN page at a time, each page as soon as it
        is read: a listing prints while the scan goes on, in memory that does
        not grow with the namespace. Order is SCAN's (none).

        Filters: `service`, `uid_glob` (a glob over uids, in SCAN's MATCH, so
        Redis skips the rest), `pod`, `kind` ("temporary" or "persistent") and
        `ttl_below_ms` (temporary links with less left than that).

        A key the scan cannot read as a link (a value that is no pod index, a
        key of another type, a name whose uid or service breaks the naming
        rules) is counted in `bad`, and the scan goes on; with no `bad` it
        raises CorruptData. With a pod filter, a value that is no pod index is
        reported too: it may be a link to that pod that nobody can read.
        """
        ks = self.keys(namespace)
        if service is not None:
            names.service(service)
        if pod is not None:
            names.pod(pod)
        if uid_glob is not None:
            names.uid_glob(uid_glob)
        if kind not in (None, *LINK_KINDS):
            raise InvalidInput(f"invalid link kind {names.show(kind)}: must be one of {', '.join(LINK_KINDS)}")
        if ttl_below_ms is not None and (isinstance(ttl_below_ms, bool) or not isinstance(ttl_below_ms, int)
                                         or ttl_below_ms <= 0):
            raise InvalidInput(f"invalid TTL bound {names.show(ttl_below_ms)} ms: must be a positive integer")
        match = ks.link_pattern(service, uid_glob)
        pages = self._cluster_link_pages(ks, match, count, pod, bad) if self.cluster else \
            self._link_pages(ks, match, count, bad)
        for parsed, values, pttls in pages:
            page = self._page_links(namespace, parsed, values, pttls, pod, kind, ttl_below_ms, bad)
            if page:
                yield page

    def count_links(
        self,
        namespace: str,
        *,
        service: str | None = None,
        bad: BadKeys | None = None,
        on_page: Any = None,
    ) -> LinkCounts:
        """Links per service, pod and kind, by one scan (see scan_link_pages);
        `on_page(counts)` after each page, for progress."""
        counts = LinkCounts()
        for page in self.scan_link_pages(namespace, service=service, bad=bad):
            counts.add(page)
            if on_page is not None:
                on_page(counts)
        return counts

    def _link_pages(
        self, ks: KeySpace, match: str, count: int, bad: BadKeys | None
    ) -> Iterator[tuple[tuple[list[str], list[str], list[str]], list[Any], list[Any]]]:
        """(parsed keys, values, PTTLs) of each SCAN page, on one Redis.

        Redis has no command that reads many TTLs at once, so a page is one
        MGET and a PTTL per key; they go in one write after the SCAN of the
        next page, so each page costs one round trip. The next write goes
        out as soon as that SCAN is answered (DirectCommands.chain), while
        Redis still reads the page's values and TTLs: Redis always has a
        page to read while this process builds the last one."""
        scan = ("SCAN", "MATCH", match, "COUNT", count)
        # What each write in flight carries, oldest first: the parsed keys of
        # the page it reads (None: none; or the CorruptData their names
        # raised, due when that page's turn comes), and whether it starts
        # with a SCAN.
        writes: list[tuple[Any, bool]] = [(None, True)]

        def follow(first: Any) -> list[Any] | None:
            if not writes[-1][1]:
                return None
            cursor, keys = first
            try:
                parsed = self._parse_page(ks, keys, bad) if keys else None
            except CorruptData as exc:
                writes.append((exc, False))
                return None
            more = int(cursor) != 0
            commands: list[Any] = [(scan[0], cursor, *scan[1:])] if more else []
            if parsed is not None and parsed[0]:
                commands.append(direct.pack_per_key(parsed[0], together=("MGET",), each=("PTTL",)))
            else:
                parsed = None
            writes.append((parsed, more))
            return commands or None

        chain = self._direct.chain([(scan[0], 0, *scan[1:])], follow)
        try:
            while True:
                replies = self._call(next, chain, None)
                if replies is None:
                    break
                parsed, scanned = writes.pop(0)
                if parsed is not None:
                    reads = replies[1:] if scanned else replies
                    yield parsed, reads[0], reads[1:]
            for parsed, _ in writes:  # a page whose keys were never read: its bad name is raised now
                if isinstance(parsed, CorruptData):
                    raise parsed
        finally:
            chain.close()

    def _cluster_link_pages(
        self, ks: KeySpace, match: str, count: int, pod: int | None, bad: BadKeys | None
    ) -> Iterator[tuple[tuple[list[str], list[str], list[str]], list[Any], list[Any]]]:
        """(parsed keys, values, PTTLs) of each SCAN page, node by node of a cluster."""
        for batch in self.scan_keys(match, count=count):
            parsed = self._parse_page(ks, batch, bad)
            keys = parsed[0]
            if not keys:
                continue
            if pod is None:
                values, pttls = self._values_and_pttls(keys)
            else:
                # Filtering by pod: read the values, then TTLs of the matches only
                # (and of the keys to report: they may be links to that pod).
                values = self._values(keys)
                wanted = [i for i, raw in enumerate(values)
                          if raw is not None and (raw is _WRONG_TYPE or parse_pod(raw) in (pod, None))]
                parsed = tuple([column[i] for i in wanted] for column in parsed)
                values = [values[i] for i in wanted]
                pttls = self._pttls([keys[i] for i in wanted]) if wanted else []
            yield parsed, values, pttls

    @staticmethod
    def _parse_page(ks: KeySpace, keys: list[str], bad: BadKeys | None) -> tuple[list[str], list[str], list[str]]:
        """The link keys among keys, with their uids and services (three lists)."""
        unparseable: list[tuple[str, str]] = []
        parsed = ks.parse_link_columns(keys, unparseable)
        for key, problem in unparseable:
            _report(bad, key, problem)
        return parsed

    def _page_links(
        self, namespace: str, parsed: tuple[list[str], list[str], list[str]], values: list[Any], pttls: list[Any],
        pod: int | None, kind: str | None, ttl_below_ms: int | None, bad: BadKeys | None,
    ) -> list[Link]:
        """The Links of one page that pass the filters. This runs for every
        link of a listing. The common page (no filter, every value a pod
        index seen before, every key with its TTL read) is built by whole-list
        operations, a Link each without a Python call; any other page goes
        link by link."""
        keys, uids, services = parsed
        pods = list(map(_POD_TEXT.get, values))
        if pod is None and kind is None and ttl_below_ms is None and None not in pods \
                and -2 not in pttls and 0 not in pttls:
            ttls = [None if pttl < 0 else pttl for pttl in pttls]
            return list(map(_new_tuple, repeat(Link), zip(repeat(namespace), uids, services, pods, ttls)))
        persistent_only = kind == "persistent"
        temporary_only = kind == "temporary" or ttl_below_ms is not None
        below = ttl_below_ms if ttl_below_ms is not None else 0
        out: list[Link] = []
        append = out.append
        suspects = []
        for key, uid, svc, raw, linked, pttl in zip(keys, uids, services, values, pods, pttls):
            if raw is None:
                if pttl != -2:
                    suspects.append(key)  # of another type, or written between the MGET and its PTTL
                continue
            if raw is _WRONG_TYPE:
                suspects.append(key)
                continue
            if linked is None:
                try:
                    linked = _pod_of(raw, key)
                except CorruptData:
                    _report(bad, key, _not_a_pod(raw))
                    continue
            if pttl == -2 or pttl == 0:
                continue  # expired between the read of its value and of its TTL, or expiring now
            if pod is not None and linked != pod:
                continue
            if pttl < 0:
                if temporary_only:
                    continue
                append(_new_tuple(Link, (namespace, uid, svc, linked, None)))
            elif not persistent_only and (not below or pttl < below):
                append(_new_tuple(Link, (namespace, uid, svc, linked, pttl)))
        if suspects:
            for key, kind_of in zip(suspects, self._types(suspects)):
                if kind_of not in ("string", "none"):
                    _report(bad, key, f"is a {kind_of}, not a link (a string)")
        return out

    def scan_keys(self, match: str, *, count: int = 1000) -> Iterator[list[str]]:
        """Batches of key names matching `match` (SCAN, never KEYS), from every primary."""
        for node in self._primaries():
            scan = node.scan if self.cluster else self._scan
            cursor = 0
            while True:
                cursor, batch = self._call(scan, cursor, match=match, count=count)
                if batch:
                    yield batch
                if int(cursor) == 0:
                    break

    def _scan(self, cursor: int, *, match: str, count: int) -> tuple[int, list[str]]:
        cursor, batch = self._direct.call("SCAN", cursor, "MATCH", match, "COUNT", count)
        return int(cursor), batch

    def _primaries(self) -> list[Any]:
        """A client per primary: the one client, or each node of a cluster."""
        if not self.cluster:
            return [self.client]
        return [self.client.get_redis_connection(node) for node in self._call(self.client.get_primaries)]

    # Reading a page of link keys on a cluster: the keys span slots, so GET
    # and PTTL per key down one plain pipeline to the node that SCAN read.

    def _node_pipeline(self, keys: list[str]) -> Any:
        """A plain pipeline to the cluster node holding keys (all on one node)."""
        return self.client.get_redis_connection(self.client.get_node_from_key(keys[0])).pipeline(transaction=False)

    def _values(self, keys: list[str]) -> list[Any]:
        pipe = self._node_pipeline(keys)
        for key in keys:
            pipe.get(key)
        return self._as_mget(self._call(pipe.execute, raise_on_error=False))

    def _pttls(self, keys: list[str]) -> list[int]:
        pipe = self._node_pipeline(keys)
        for key in keys:
            pipe.pttl(key)
        return self._call(pipe.execute)

    def _values_and_pttls(self, keys: list[str]) -> tuple[list[Any], list[int]]:
        pipe = self._node_pipeline(keys)
        for key in keys:
            pipe.get(key)
        for key in keys:
            pipe.pttl(key)
        replies = self._call(pipe.execute, raise_on_error=False)
        pttls = replies[len(keys):]
        for reply in pttls:
            if isinstance(reply, Exception):
                self._call(_raise, reply)
        return self._as_mget(replies[: len(keys)]), pttls

    def _as_mget(self, replies: list[Any]) -> list[Any]:
        """GET replies: _WRONG_TYPE for a key of another type; other errors raise."""
        import redis

        out = []
        for reply in replies:
            if isinstance(reply, Exception):
                if not (isinstance(reply, redis.exceptions.ResponseError) and str(reply).startswith("WRONGTYPE")):
                    self._call(_raise, reply)
                reply = _WRONG_TYPE
            out.append(reply)
        return out

    def _types(self, keys: list[str]) -> list[str]:
        """TYPE of each key (all on one node), in one round trip."""
        if not self.cluster:
            return self._pipeline([("TYPE", key) for key in keys])
        pipe = self._node_pipeline(keys)
        for key in keys:
            pipe.type(key)
        return self._call(pipe.execute)

    # --- pod states -------------------------------------------------------------

    def snapshot(self, namespace: str, service: str, *, expire_ms: int, gateway: str | None = None,
                 gateway_expire_ms: int = 0) -> Snapshot:
        """The service's pod states. A client driver that places users names
        itself (`gateway`): it is registered among the service's live gateways
        for `gateway_expire_ms`, and the snapshot says how many there are."""
        return self.run(domain.snapshot(self.keys(namespace), service, expire_ms=expire_ms, gateway=gateway,
                                          gateway_expire_ms=gateway_expire_ms))

    def leave_gateways(self, namespace: str, services: list[str], gateway: str) -> None:
        """Take a client driver out of the live gateways of these services at once
        (a driver that closes), instead of when its registration expires."""
        self.run(domain.leave_gateways(self.keys(namespace), services, gateway))

    def publish_state(
        self,
        namespace: str,
        service: str,
        pod: int,
        *,
        load: int,
        state: RoutingState,
        epoch: int | None,
        expire_ms: int,
        summarize: bool = False,
        register: bool = True,
        claim: str = "force",
        reason: str | None | bool = False,
    ) -> Published:
        """One heartbeat (domain.publish_state says what it writes)."""
        return self.run(domain.publish_state(
            self.keys(namespace), service, pod, load=load, state=state, epoch=epoch, expire_ms=expire_ms,
            summarize=summarize, register=register, claim=claim, reason=reason, cluster=self.cluster))

    def pod_notes(self, namespace: str, service: str) -> dict[int, PodNotes]:
        """What each pod noted beside its state field: its reason, its recent epochs."""
        from stroute.podstate import parse_notes

        ks = self.keys(namespace)
        key = ks.notes(names.service(service))
        try:
            raw = self._call(self.client.hgetall, key)
        except StoreError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            return {}  # not stroute's data: the notes only explain, so none are shown
        return parse_notes(raw)

    def remove_state(self, namespace: str, service: str, pod: int) -> bool:
        return self.run(domain.remove_state(self.keys(namespace), service, pod))

    def workload(self, namespace: str, service: str) -> str | None:
        return self._call(self.client.get, self.keys(namespace).workload(names.service(service)))

    def services(self, namespace: str) -> list[str]:
        """The registry's service names; entries that are none are left out (see registry())."""
        return self.registry(namespace).services

    # A discovery scans the whole keyspace: `top --watch` repeats it at most this often.
    DISCOVERY_MAX_AGE_S = 30.0

    def discover_services(self, namespace: str, *, max_age_s: float | None = None) -> list[str]:
        """Services that have a state key in the namespace, found by SCAN (the
        original drivers write no registry). Names that break the name rule are
        left out. Kept for `max_age_s` (default DISCOVERY_MAX_AGE_S) per Store."""
        import time

        ks = self.keys(namespace)
        max_age = self.DISCOVERY_MAX_AGE_S if max_age_s is None else max_age_s
        cached = self._discovered.get(namespace)
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        found = set()
        for batch in self.scan_keys(ks.state_pattern(), count=1000):
            for key in batch:
                parsed = ks.parse_state(key)
                if parsed is not None and not parsed[1]:
                    try:
                        found.add(names.service(parsed[0]))
                    except InvalidInput:
                        continue
        services = sorted(found)
        self._discovered[namespace] = (time.monotonic(), services)
        return services

    def registry(self, namespace: str, *, discover: bool = False) -> Registry:
        """The services registry, its entries that are no service name apart;
        with `discover`, also the services found by their state keys
        (discover_services), in `services` and, when not registered, in `unregistered`.

        A foreign entry ('bad{name') or a key of another type is data to
        report, not a reason for a command to fail.
        """
        found = self._registry(namespace)
        if not discover:
            return found
        extra = [s for s in self.discover_services(namespace) if s not in found.services]
        if not extra:
            return found
        return Registry(found.key, sorted([*found.services, *extra]), found.invalid, found.wrong_type, tuple(extra))

    def _registry(self, namespace: str) -> Registry:
        key = self.keys(namespace).services()
        try:
            members = self._call(self.client.smembers, key)
        except (RedisUnavailable, PermissionDenied):
            raise
        except StoreError:
            kind = self.key_type(key)
            if kind in ("set", "none"):  # not the key's type: a failure to report as it is
                raise
            return Registry(key, [], [], wrong_type=kind)
        good, bad = [], []
        for member in sorted(members):
            try:
                good.append(names.service(member))
            except InvalidInput:
                bad.append(member)
        return Registry(key, good, bad)

    def state_pods(self, namespace: str, service: str) -> list[int]:
        """The pods with a state field in the service's state hash (HKEYS, read
        only), in order; fields that are no pod index are left out."""
        pods = []
        for field_ in self._call(self.client.hkeys, self.keys(namespace).state(names.service(service))):
            try:
                pods.append(names.pod(field_))
            except InvalidInput:
                continue
        return sorted(pods)

    def tags(self, namespace: str) -> Iterator[list[str]]:
        """The namespace's tags, a SCAN page at a time (read only; the caller may stop early)."""
        ks = self.keys(namespace)
        for batch in self.scan_keys(ks.tag_pattern()):
            found = [tag for tag in map(ks.parse_tag, batch) if tag is not None]
            if found:
                yield found

    def key_type(self, key: str) -> str:
        """Redis's TYPE of key ('none' when missing): to name a key of the wrong kind."""
        return self._call(self.client.type, key)

    def set_cordon(self, namespace: str, service: str, pod: int, cordoned: bool) -> bool:
        """Set or clear the operator's cordon; returns whether anything changed.

        The pod's state field is withheld from the original drivers (or given
        back) in the same step: see state_cordon.lua."""
        ks = self.keys(namespace)
        service = names.service(service)
        keys = [ks.state(service), ks.control(service)]
        return bool(self._script("state_cordon", keys, [names.pod(pod), int(bool(cordoned))]))

    # --- tags ---------------------------------------------------------------------

    def get_tag(self, namespace: str, tag: str) -> str | None:
        return self.run(domain.get_tag(self.keys(namespace), tag))

    def _wrong_type(self, exc: StoreError, keys: list[str], wanted: str, what: str) -> StoreError:
        """`exc` as CorruptData naming the key of another type, when that is what
        Redis refused (WRONGTYPE); else `exc` itself."""
        return self.run(domain.wrong_type(exc, keys, wanted, what))

    def set_tag(self, namespace: str, tag: str, service: str) -> str | None:
        """Point a tag at a service; returns the service it pointed at before."""
        key = self.keys(namespace).tag(names.tag(tag))
        return self._call(self.client.set, key, names.service(service), get=True)

    # --- operations shared with the AsyncStore (stroute.store.domain) ------------

    def run(self, op: Any) -> Any:
        """Run one of `stroute.store.domain`'s operations on this store's connections."""
        return domain.run(op, self._execute)

    def _execute(self, step: Any) -> Any:
        if isinstance(step, domain.Command):
            return self._command(step)
        return self._commands(step)

    def _command(self, command: Any) -> Any:
        args = command.args
        if command.script is not None:
            count = args[2]
            return self._script(command.script, list(args[3:3 + count]), list(args[3 + count:]))
        if self._direct is None:
            return self._call(self.client.execute_command, *args)
        if command.untracked:
            return self._call(self._direct.pipeline, [args], untracked=True)[0]
        return self._call(self._direct.call, *args)

    def _commands(self, commands: list[Any]) -> list[Any]:
        """One round trip (a pipeline per node on a cluster); each reply, or
        its error as stroute's exception, in its command's place."""
        import redis

        scripts = {c.script for c in commands if c.script is not None}
        if not self.cluster:
            for name in scripts:
                if name not in self._loaded:
                    self._call(self._direct.call, "SCRIPT", "LOAD", script_source(name))
                    self._loaded.add(name)
            untracked = any(c.untracked for c in commands)
            for attempt in range(2):
                replies = self._call(self._direct.pipeline, [c.args for c in commands], untracked=untracked)
                if attempt or not any(isinstance(r, redis.exceptions.NoScriptError) for r in replies):
                    break
                for name in scripts:
                    self._call(self._direct.call, "SCRIPT", "LOAD", script_source(name))
        elif len(scripts) == 1 and all(c.script is not None for c in commands):
            calls = [(list(c.args[3:3 + c.args[2]]), list(c.args[3 + c.args[2]:])) for c in commands]
            return self.run_script_many(scripts.pop(), calls, keep_corrupt=True)
        elif not scripts:
            pipe = self.client.pipeline()
            for command in commands:
                pipe.execute_command(*command.args)
            replies = self._call(pipe.execute, raise_on_error=False)
        else:  # scripts and commands of other slots together: one by one
            replies = []
            for command in commands:
                try:
                    replies.append(self._command(command))
                except StoreError as exc:
                    replies.append(exc)
            return replies
        return [domain.translate(r, self.where) or r if isinstance(r, Exception) else r for r in replies]


def _is_cluster(client: Any) -> bool:
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def _raise(exc: Exception) -> None:
    raise exc


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
