"""`stroute link ...`: read and change user -> pod links."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from stroute.cli import inputs
from stroute.cli.inputs import Service
from stroute.cli.context import Globals
from stroute.cli import complete
from stroute.cli.help import command, examples
from stroute.cli.output import (Column, RowStream, columns_wanted, emit, info, new_table, printable, silence_stdout,
                                wide_wanted)

app = typer.Typer(
    name="link",
    help="Read and change user -> pod links.",
    no_args_is_help=True,
)

Uid = Annotated[str, typer.Argument(metavar="UID", help="User id.", show_default=False)]
Pod = Annotated[str, typer.Option("--pod", metavar="N", help="Pod index (0..65535).", show_default=False,
                                  autocompletion=complete.pods)]
Ttl = Annotated[
    Optional[str],
    typer.Option("--ttl", metavar="SECONDS", help="Make the link temporary: it expires after SECONDS.",
                 show_default=False),
]


def _kind(persistent: bool | None) -> str:
    return "-" if persistent is None else ("persistent" if persistent else "temporary")


def _ttl_text(ttl: Any) -> str:
    return "-" if ttl is None else f"{ttl}s"  # one field: columns in a pipe split on spaces


# --- get ----------------------------------------------------------------------


@examples("stroute link get 42 -s lobby", "stroute link get 42 -o json")
def get(
    ctx: typer.Context,
    uid: Uid,
    service: Annotated[
        Optional[str],
        typer.Option("-s", "--service", metavar="SVC", help="Service; without it, all persistent links of UID.",
                     show_default=False, autocompletion=complete.services),
    ] = None,
) -> None:
    """Show one link (-s SVC), or every persistent link of UID.

    Exit 3 if there is none.

    Either way the JSON is one shape: "links", a list of link objects (the
    rows of 'link list'); -s only narrows it, and no link is an empty list.
    """
    from stroute import names
    from stroute.errors import NotFound

    g: Globals = ctx.obj
    ns = g.config().namespace
    names.uid(uid)
    if service is None:
        rows = [link_row(uid, svc, pod, None) for svc, pod in g.store().links_of(ns, uid).items()]
    else:
        link = g.store().get(ns, uid, service)
        rows = [] if link is None else [link_row(uid, service, link.pod, link.ttl)]
    data = {"namespace": ns, "uid": uid, "service": service, "links": rows}
    if rows or not g.for_people:
        emit(data, g.output, _link_table if service is not None else _links_of_table,
             lambda d: [d["uid"]] if d["links"] else [], schema="link-get")
    if rows:
        return
    if service is None:
        raise NotFound(
            f"uid {uid!r} has no persistent link in namespace {ns!r}",
            hint="temporary links are shown per service: stroute link get UID -s SERVICE",
        )
    raise NotFound(f"no link for uid {uid!r} of service {service!r} in namespace {ns!r}")


def link_row(uid: str, service: str, pod: int, ttl_s: int | float | None) -> dict[str, Any]:
    """One link as the JSON contract shows it (ttl_s None: persistent)."""
    return {"uid": uid, "service": service, "pod": pod, "persistent": ttl_s is None, "ttl_s": ttl_s}


def _link_table(data: dict):
    table = new_table("UID", "Service", "Pod", "Kind", "TTL")
    for row in data["links"]:
        table.add_row(row["uid"], row["service"], str(row["pod"]), _kind(row["persistent"]), _ttl_text(row["ttl_s"]))
    return table


def _links_of_table(data: dict):
    table = new_table("Service", "Pod", title=f"persistent links of uid {data['uid']!r}")
    for row in data["links"]:
        table.add_row(row["service"], str(row["pod"]))
    return table


# --- set / try-set --------------------------------------------------------------


@examples("stroute link set 42 -s lobby --pod 1", "stroute link set 42 -s lobby --pod 1 --ttl 300")
def set_(ctx: typer.Context, uid: Uid, service: Service, pod: Pod, ttl: Ttl = None) -> None:
    """Force the link of UID to pod N.

    The link is persistent, or temporary with --ttl.
    """
    g: Globals = ctx.obj
    pod_n = inputs.pod(pod)
    ttl_ms = inputs.ttl_ms(ttl)
    ns = g.config().namespace
    previous = g.store().set(ns, uid, service, pod_n, ttl_ms)
    data = {
        "namespace": ns,
        "uid": uid,
        "service": service,
        "pod": pod_n,
        "previous": previous,
        "persistent": ttl_ms is None,
        "ttl_s": inputs.seconds(ttl_ms),
    }
    emit(data, g.output, _set_table, schema="link-set")


def _set_table(data: dict):
    table = new_table("UID", "Service", "Pod", "Previous", "Kind", "TTL")
    previous = "-" if data["previous"] is None else str(data["previous"])
    table.add_row(data["uid"], data["service"], str(data["pod"]), previous, _kind(data["persistent"]),
                  _ttl_text(data["ttl_s"]))
    return table


@examples("stroute link try-set 42 -s lobby --pod 2", "stroute link try-set 42 -s lobby --pod 2 --ttl 300")
def try_set(ctx: typer.Context, uid: Uid, service: Service, pod: Pod, ttl: Ttl = None) -> None:
    """Set the link unless a persistent one to another pod exists.

    Refused (exit 4) when a persistent link points at another pod.
    """
    from stroute.errors import Conflict

    g: Globals = ctx.obj
    pod_n = inputs.pod(pod)
    ttl_ms = inputs.ttl_ms(ttl)
    ns = g.config().namespace
    ok, current = g.store().try_set(ns, uid, service, pod_n, ttl_ms)
    emit({"namespace": ns, "uid": uid, "service": service, "ok": ok, "pod": current}, g.output, _try_set_table,
         schema="link-try-set")
    if not ok:
        raise Conflict(
            f"refused: uid {uid!r} has a persistent link to pod {current} of service {service!r}, not {pod_n}",
            hint="use 'stroute link set' to force it",
        )


def _try_set_table(data: dict):
    table = new_table("UID", "Service", "Pod", "Result")
    table.add_row(data["uid"], data["service"], str(data["pod"]), "set" if data["ok"] else "refused")
    return table


# --- remove -----------------------------------------------------------------------


@examples("stroute link remove 42 -s lobby", "stroute link remove 42 -s lobby --if-pod 1",
          "stroute link remove 42 -s lobby --after 30")
def remove(
    ctx: typer.Context,
    uid: Uid,
    service: Service,
    if_pod: Annotated[
        Optional[str],
        typer.Option("--if-pod", metavar="N", help="Only if the link points at pod N (exit 4 otherwise).",
                     show_default=False, autocompletion=complete.pods),
    ] = None,
    after: Annotated[
        Optional[str],
        typer.Option("--after", metavar="SECONDS", help="Delayed removal: the link expires after SECONDS.",
                     show_default=False),
    ] = None,
    delayed: Annotated[
        bool,
        typer.Option("--delayed", help="Delayed removal after links.remove_delay seconds (default 60)."),
    ] = False,
) -> None:
    """Remove a link now, --after SECONDS, or --delayed.

    Exit 3 if there is none.

    Also removes a link key whose value is no pod index (unless --if-pod):
    that is how such a value, reported by the other commands, is cleared.
    """
    from stroute.errors import Conflict, NotFound

    g: Globals = ctx.obj
    expected = inputs.pod(if_pod)
    after_ms = g.config().links.removal_ms(after, delayed=delayed, kind="--after")
    ns = g.config().namespace
    removed, current = g.store().remove(ns, uid, service, after_ms=after_ms, if_pod=expected)
    data = {"namespace": ns, "uid": uid, "service": service, "removed": removed}
    if current is None and not removed:
        if not g.for_people:
            emit(data, g.output, schema="link-remove")
        raise NotFound(f"no link for uid {uid!r} of service {service!r} in namespace {ns!r}: nothing removed")
    emit(data, g.output, _remove_table(current, after_ms), schema="link-remove")
    if not removed:
        raise Conflict(
            f"not removed: the link of uid {uid!r} of service {service!r} points at pod {current}, not {expected}"
        )


def _remove_table(pod: int | None, after_ms: int):
    def table(data: dict):
        t = new_table("UID", "Service", "Pod", "Result")
        if not data["removed"]:
            result = "kept (--if-pod mismatch)"
        elif after_ms:
            result = f"removed in {inputs.seconds(after_ms)} s"
        else:
            result = "removed"
        t.add_row(data["uid"], data["service"], "?" if pod is None else str(pod), result)
        return t

    return table


# --- batch-get ------------------------------------------------------------------------


@examples("stroute link batch-get -s lobby 42 43 44", "seq 1 1000 | stroute link batch-get -s lobby - -o json")
def batch_get(
    ctx: typer.Context,
    service: Service,
    uids: Annotated[
        Optional[list[str]],
        typer.Argument(metavar="UID...", help="User ids; '-' reads them from stdin (whitespace or newline separated).",
                       show_default=False),
    ] = None,
) -> None:
    """Links of many users of one service, in one round trip.

    A uid whose link value is no pod index is reported in bad_keys (exit 7).
    """
    g: Globals = ctx.obj
    wanted = inputs.require(inputs.uids(uids or []), "uid")
    ns = g.config().namespace
    found = g.store().batch_links(ns, wanted, service)
    data = {
        "namespace": ns,
        "service": service,
        "pods": {str(pod): users for pod, users in found.pods.items()},
        "missing": found.missing,
        "bad_keys": found.bad_keys.to_dict(),
    }
    emit(data, g.output, _batch_table, lambda d: [uid for users in d["pods"].values() for uid in users],
         schema="link-batch-get")
    _raise_bad_keys(found.bad_keys, ns)


_SHOWN = 8


def _batch_table(data: dict):
    from rich.console import Group
    from rich.text import Text

    table = new_table("Pod", "Users", "UIDs", title=f"links of service {data['service']!r}")
    for pod, users in data["pods"].items():
        table.add_row(pod, str(len(users)), _sample(users))
    missing = data["missing"]
    if not missing:
        return table
    return Group(table, Text(f"{len(missing)} without a link: {_sample(missing)}"))


def _sample(uids: list[str]) -> str:
    """The first few uids, and how many more."""
    return " ".join(uids[:_SHOWN]) + (f" ... (+{len(uids) - _SHOWN})" if len(uids) > _SHOWN else "")


# --- list ---------------------------------------------------------------------------------

UidPattern = Annotated[
    Optional[str],
    typer.Option("--uid-pattern", metavar="GLOB", show_default=False,
                 help="Only uids matching GLOB (* ? [abc], as redis-cli --scan --pattern); Redis skips the rest."),
]
Kind = Annotated[
    Optional[str],
    typer.Option("--kind", metavar="KIND", help="Only links of this kind: temporary or persistent.",
                 show_default=False, autocompletion=lambda: ["temporary", "persistent"]),
]
TtlBelow = Annotated[
    Optional[str],
    typer.Option("--ttl-below", metavar="SECONDS", show_default=False,
                 help="Only temporary links with less than SECONDS left."),
]


def link_filters(service: str | None, pod: str | None, uid_pattern: str | None, kind: str | None,
                 ttl_below: str | None) -> dict[str, Any]:
    """The keyword arguments of Store.scan_links for the listing flags, checked."""
    from stroute import names
    from stroute.errors import InvalidInput
    from stroute.store import LINK_KINDS

    if service is not None:
        names.service(service)
    if uid_pattern is not None:
        names.uid_glob(uid_pattern)
    if kind is not None and kind not in LINK_KINDS:
        raise InvalidInput(f"invalid --kind {kind!r}: must be one of {', '.join(LINK_KINDS)}")
    below = inputs.ttl_ms(ttl_below, kind="--ttl-below")
    if below is not None and kind == "persistent":
        raise InvalidInput("--ttl-below selects temporary links: it cannot be used with --kind persistent")
    return {"service": service, "pod": inputs.pod(pod), "uid_glob": uid_pattern, "kind": kind,
            "ttl_below_ms": below}


# Dropped on a narrow terminal first: the kind (the TTL says it), then the service.
_LIST_COLUMNS = [Column("UID"), Column("Service", drop=1), Column("Pod"), Column("Kind", drop=2), Column("TTL"),
                 Column("Key", wide=True)]


@examples("stroute link list -s lobby --pod 1", "stroute link list --kind temporary --ttl-below 60",
          "stroute link list --uid-pattern 'bot-*' --limit 10 -o json")
def list_(
    ctx: typer.Context,
    service: inputs.ServiceFilter = None,
    pod: inputs.PodFilter = None,
    uid_pattern: UidPattern = None,
    kind: Kind = None,
    ttl_below: TtlBelow = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", metavar="N", min=1, help="Stop after N links.", show_default=False)
    ] = None,
    sort: Annotated[
        bool, typer.Option("--sort", help="Sort by service and uid. Buffers every link before the first prints.")
    ] = False,
) -> None:
    """Every link of the namespace, printed as it is scanned.

    A SCAN, never KEYS.
    Rows come in SCAN's order, as they are read: memory stays flat and the
    first row shows at once. --sort reads every link first. Keys that are no
    readable link are skipped and reported (exit 7).
    """
    import itertools

    from stroute.store import BadKeys

    g: Globals = ctx.obj
    filters = link_filters(service, pod, uid_pattern, kind, ttl_below)
    ns = g.config().namespace
    store = g.store()
    bad = BadKeys()
    pages = store.scan_link_pages(ns, bad=bad, **filters)
    if sort:
        info("--sort: reading every link before printing the first")
        links = sorted(itertools.chain.from_iterable(_counted(pages, "scanning links")),
                       key=lambda link: (link.service, link.uid))
        pages = iter([links[:limit]] if links else [])
    else:
        if limit is not None:
            pages = _limited(pages, limit)
        # A count on stderr, unless the rows (table, columns or JSON) go to the terminal too.
        pages = _counted(pages, "scanning links", enabled=not sys.stdout.isatty())
    try:
        _print_links(g, ns, pages, bad, sorted_=sort, key=store.keys(ns).link)
    except BrokenPipeError:  # the reader stopped early (| head): its choice, not an error
        silence_stdout()
        return
    _raise_bad_keys(bad, ns)


def _counted(pages, description: str, *, enabled: bool = True):
    """The pages, with a count of their links on stderr (see progress.Counter's `enabled`)."""
    from stroute.cli.progress import Counter

    progress = Counter(description, enabled=enabled)
    n = 0
    try:
        for page in pages:
            n += len(page)
            progress.tick(n)
            yield page
    finally:
        progress.done()


def _limited(pages, limit: int):
    """The pages cut at `limit` links; the scan stops there."""
    left = limit
    for page in pages:
        if len(page) >= left:
            yield page[:left]
            return
        left -= len(page)
        yield page


def _row(link, key) -> list[str]:
    return [link.uid, link.service, str(link.pod), _kind(link.ttl_ms is None), _ttl_text(link.ttl),
            key(link.uid, link.service)]


def _print_links(g: Globals, ns: str, pages, bad, *, sorted_: bool, key) -> None:
    """Each page of links as it comes, in the output's format."""
    import itertools
    import json

    from stroute.contract import schema_id

    out = sys.stdout
    if g.output == "json":
        # The document SPEC gives, written a page at a time: the same bytes
        # json.dumps writes. Nothing is written before the first page is read,
        # so a listing that fails to start (Redis unreachable) prints nothing;
        # one cut short later leaves an unfinished document and a non-zero exit.
        pages = iter(pages)
        first_page = next(pages, None)
        out.write('{"schema": ' + json.dumps(schema_id("link-list")) + ', "namespace": ' + json.dumps(ns)
                  + ', "links": [')
        first = True
        for page in itertools.chain([first_page] if first_page else [], pages):
            text = ", ".join(json.dumps(link_row(l.uid, l.service, l.pod, l.ttl), ensure_ascii=False)
                             for l in page)
            out.write(text if first else ", " + text)
            first = False
        out.write('], "bad_keys": ' + json.dumps(bad.to_dict(), ensure_ascii=False) + "}\n")
        return
    if g.output == "yaml" or (sorted_ and g.output in ("table", "wide") and not columns_wanted()):
        rows = [link_row(l.uid, l.service, l.pod, l.ttl) for page in pages for l in page]
        emit({"namespace": ns, "links": rows, "bad_keys": bad.to_dict()}, g.output, lambda d: _list_table(d, key),
             schema="link-list")
        return
    if g.output == "name":
        for page in pages:
            out.write("".join(printable(l.uid) + "\n" for l in page))
        return
    stream = RowStream(_LIST_COLUMNS)
    for page in pages:
        stream.add([_row(l, key) for l in page])
        out.flush()
    info(f"{stream.rows} link{'' if stream.rows == 1 else 's'}" if stream.rows else
         f"no links in namespace {ns!r} match")


def _list_table(data: dict, key):
    table = new_table(*_LIST_COLUMNS, title=f"links in namespace {data['namespace']!r}")
    wide = wide_wanted()
    for row in data["links"]:
        cells = [row["uid"], row["service"], str(row["pod"]), _kind(row["persistent"]), _ttl_text(row["ttl_s"])]
        table.add_row(*cells, *([key(row["uid"], row["service"])] if wide else []))
    table.caption = f"{len(data['links'])} link{'' if len(data['links']) == 1 else 's'}"
    table.caption_justify = "left"
    return table


# --- count ---------------------------------------------------------------------------------


@examples("stroute link count", "stroute link count -s lobby -o json")
def count(ctx: typer.Context, service: inputs.ServiceFilter = None) -> None:
    """Links per pod and per kind (persistent, temporary).

    One SCAN.
    HAProxy's table summary: how many users each pod holds, without listing
    them. Keys that are no readable link are skipped and reported (exit 7).
    """
    from stroute import names
    from stroute.cli.progress import Counter
    from stroute.store import BadKeys

    g: Globals = ctx.obj
    if service is not None:
        names.service(service)
    ns = g.config().namespace
    bad = BadKeys()
    progress = Counter("counting links")
    try:
        found = g.store().count_links(ns, service=service, bad=bad, on_page=lambda c: progress.tick(c.total))
    finally:
        progress.done()
    services = []
    for svc, pods in found.services().items():
        rows = [{"pod": pod, "persistent": p, "temporary": t, "total": p + t} for pod, (p, t) in pods.items()]
        services.append({"service": svc, "pods": rows, "persistent": sum(r["persistent"] for r in rows),
                         "temporary": sum(r["temporary"] for r in rows), "total": sum(r["total"] for r in rows)})
    data = {"namespace": ns, "services": services, "total": found.total, "bad_keys": bad.to_dict()}
    emit(data, g.output, _count_table,
         lambda d: [f"{s['service']}/{r['pod']}" for s in d["services"] for r in s["pods"]], schema="link-count")
    _raise_bad_keys(bad, ns)


def _count_table(data: dict):
    from rich.text import Text

    if not data["services"]:
        return Text(f"no links in namespace {data['namespace']!r}")
    every_row = columns_wanted()  # in columns, every row names its service
    table = new_table("Service", "Pod", "Persistent", "Temporary", "Total",
                      title=f"links in namespace {data['namespace']!r}")
    for index, svc in enumerate(data["services"]):
        for i, row in enumerate(svc["pods"]):
            table.add_row(svc["service"] if i == 0 or every_row else "", str(row["pod"]), str(row["persistent"]),
                          str(row["temporary"]), str(row["total"]))
        table.add_row(svc["service"] if every_row else "", "all", str(svc["persistent"]), str(svc["temporary"]),
                      str(svc["total"]), style="" if every_row else "bold",
                      end_section=index < len(data["services"]) - 1)
    table.caption = f"{data['total']} link{'' if data['total'] == 1 else 's'}"
    table.caption_justify = "left"
    return table


# --- clear ---------------------------------------------------------------------------------


@examples("stroute link clear -s lobby --pod 3 --dry-run", "stroute link clear -s lobby --pod 3")
def clear(
    ctx: typer.Context,
    service: Service,
    pod: Pod,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count the links, remove nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Clear even if the pod is alive.")] = False,
) -> None:
    """Remove every link to pod N of a service.

    Each link goes with its entry in the user's index hash.
    Each removal is fenced (remove-if-pod N): a link that moved to another pod
    meanwhile survives. Refuses an alive pod (exit 4) unless --force: its
    users would lose their links while it still holds their state. Keys that
    are no readable link are left alone and reported (exit 7).
    """
    from stroute import names
    from stroute.cli.progress import Counter
    from stroute.operations import clear_pod

    g: Globals = ctx.obj
    names.service(service)
    pod_n = inputs.pod(pod)
    config = g.config()
    counter = Counter("removing links" if not dry_run else "counting links")
    try:
        report = clear_pod(g.store(), config.namespace, service, pod_n, dry_run=dry_run, force=force,
                           expire_ms=config.state.expire_ms, on_progress=lambda r: counter.tick(r.found))
    finally:
        counter.done()
    if report.alive is not None:
        info(f"note: {report.alive}: clearing its links needs --force")
    emit(report.to_dict(), g.output, _clear_text, schema="link-clear")
    _raise_bad_keys(report.bad_keys, config.namespace)


def _raise_bad_keys(bad, namespace: str) -> None:
    """End with exit 7 when keys were skipped (the data is already printed)."""
    error = bad.error(namespace)
    if error is not None:
        raise error


def _clear_text(data: dict):
    from rich.text import Text

    where = f"pod {data['pod']} of {data['service']!r} (namespace {data['namespace']!r})"
    found = f"{data['found']} link{'' if data['found'] == 1 else 's'}"
    if data["dry_run"]:
        return Text(f"dry run, nothing changed: would remove {found} to {where}")
    text = f"removed {data['removed']} of {found} to {where}"
    if data["kept"]:
        text += f"; {data['kept']} kept: they changed meanwhile"
    return Text(text)


command(app, "get", get)
command(app, "set", set_)
command(app, "try-set", try_set)
command(app, "remove", remove)
command(app, "batch-get", batch_get)
command(app, "list", list_)
command(app, "count", count)
command(app, "clear", clear)


for _command in (get, batch_get, list_, count):
    _command.lists_names = True  # -o name: one uid (or service/pod) per line
