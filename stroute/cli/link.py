"""`stroute link ...`: read and change user -> pod links."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from stroute.cli import inputs
from stroute.cli.inputs import Service
from stroute.cli.context import Globals
from stroute.cli.errors import guarded
from stroute.cli.output import emit, new_table

app = typer.Typer(
    name="link",
    help="Read and change user -> pod links.",
    no_args_is_help=True,
)

Uid = Annotated[str, typer.Argument(help="User id.", show_default=False)]
Pod = Annotated[str, typer.Option("--pod", metavar="N", help="Pod index (0..65535).", show_default=False)]
Ttl = Annotated[
    Optional[str],
    typer.Option("--ttl", metavar="SECONDS", help="Make the link temporary: it expires after SECONDS.",
                 show_default=False),
]


def _kind(persistent: bool | None) -> str:
    return "-" if persistent is None else ("persistent" if persistent else "temporary")


def _ttl_text(ttl: Any) -> str:
    return "-" if ttl is None else f"{ttl} s"


# --- get ----------------------------------------------------------------------


def get(
    ctx: typer.Context,
    uid: Uid,
    service: Annotated[
        Optional[str],
        typer.Option("-s", "--service", help="Service; without it, all persistent links of UID.",
                     show_default=False),
    ] = None,
) -> None:
    """Show one link (-s SVC), or every persistent link of UID. Exit 3 if none.

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
    if rows or g.output != "table":
        emit(data, g.output, _link_table if service is not None else _links_of_table, schema="link-get")
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


def set_(ctx: typer.Context, uid: Uid, service: Service, pod: Pod, ttl: Ttl = None) -> None:
    """Force the link of UID to pod N (persistent, or temporary with --ttl)."""
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


def try_set(ctx: typer.Context, uid: Uid, service: Service, pod: Pod, ttl: Ttl = None) -> None:
    """Set the link unless a persistent link to another pod exists (exit 4 then)."""
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


def remove(
    ctx: typer.Context,
    uid: Uid,
    service: Service,
    if_pod: Annotated[
        Optional[str],
        typer.Option("--if-pod", metavar="N", help="Only if the link points at pod N (exit 4 otherwise).",
                     show_default=False),
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
    """Remove a link now, --after SECONDS, or --delayed. Exit 3 if there is none.

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
        if g.output != "table":
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


def batch_get(
    ctx: typer.Context,
    service: Service,
    uids: Annotated[
        Optional[list[str]],
        typer.Argument(help="User ids; '-' reads them from stdin (whitespace or newline separated).",
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
    emit(data, g.output, _batch_table, schema="link-batch-get")
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

def list_(
    ctx: typer.Context,
    service: inputs.ServiceFilter = None,
    pod: inputs.PodFilter = None,
) -> None:
    """Every link of the namespace (SCAN, never KEYS), optionally filtered.

    Keys that are no readable link are skipped and reported (exit 7).
    """
    g: Globals = ctx.obj
    pod_n = inputs.pod(pod)
    ns = g.config().namespace
    from stroute.cli.progress import Counter

    from stroute.store import BadKeys

    rows = []
    bad = BadKeys()
    progress = Counter("scanning links")
    try:
        for link in g.store().scan_links(ns, service=service, pod=pod_n, bad=bad):
            rows.append(link_row(link.uid, link.service, link.pod, link.ttl))
            progress.tick(len(rows))
    finally:
        progress.done()
    rows.sort(key=lambda r: (r["service"], r["uid"]))
    emit({"namespace": ns, "links": rows, "bad_keys": bad.to_dict()}, g.output, _list_table,
         schema="link-list")
    _raise_bad_keys(bad, ns)


def _list_table(data: dict):
    table = new_table("UID", "Service", "Pod", "Kind", "TTL", title=f"links in namespace {data['namespace']!r}")
    for row in data["links"]:
        table.add_row(row["uid"], row["service"], str(row["pod"]), _kind(row["persistent"]), _ttl_text(row["ttl_s"]))
    table.caption = f"{len(data['links'])} link{'' if len(data['links']) == 1 else 's'}"
    table.caption_justify = "left"
    return table


# --- clear ---------------------------------------------------------------------------------


def clear(
    ctx: typer.Context,
    service: Service,
    pod: Pod,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count the links, remove nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Clear even if the pod is alive.")] = False,
) -> None:
    """Remove every link to pod N of a service, with its index entry.

    Each removal is fenced (remove-if-pod N): a link that moved to another pod
    meanwhile survives. Refuses an alive pod (exit 4) unless --force: its
    users would lose their links while it still holds their state. Keys that
    are no readable link are left alone and reported (exit 7).
    """
    from stroute import names
    from stroute.cli.output import info
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


app.command("get")(guarded(get))
app.command("set")(guarded(set_))
app.command("try-set")(guarded(try_set))
app.command("remove")(guarded(remove))
app.command("batch-get")(guarded(batch_get))
app.command("list")(guarded(list_))
app.command("clear")(guarded(clear))
