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
    """Show one link (-s SVC), or every persistent link of UID. Exit 3 if none."""
    from stroute import names
    from stroute.errors import NotFound

    g: Globals = ctx.obj
    ns = g.config().namespace
    names.uid(uid)
    if service is None:
        links = g.store().links_of(ns, uid)
        if links or g.output != "table":
            emit({"namespace": ns, "uid": uid, "links": links}, g.output, _links_of_table)
        if not links:
            raise NotFound(
                f"uid {uid!r} has no persistent link in namespace {ns!r}",
                hint="temporary links are shown per service: stroute link get UID -s SERVICE",
            )
        return
    link = g.store().get(ns, uid, service)
    data = {
        "namespace": ns,
        "uid": uid,
        "service": service,
        "pod": None if link is None else link.pod,
        "persistent": None if link is None else link.persistent,
        "ttl": None if link is None else link.ttl,
    }
    if link is not None or g.output != "table":
        emit(data, g.output, _link_table)
    if link is None:
        raise NotFound(f"no link for uid {uid!r} of service {service!r} in namespace {ns!r}")


def _link_table(data: dict):
    table = new_table("UID", "Service", "Pod", "Kind", "TTL")
    table.add_row(data["uid"], data["service"], str(data["pod"]), _kind(data["persistent"]), _ttl_text(data["ttl"]))
    return table


def _links_of_table(data: dict):
    table = new_table("Service", "Pod", title=f"persistent links of uid {data['uid']!r}")
    for svc, pod in data["links"].items():
        table.add_row(svc, str(pod))
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
        "ttl": inputs.seconds(ttl_ms),
    }
    emit(data, g.output, _set_table)


def _set_table(data: dict):
    table = new_table("UID", "Service", "Pod", "Previous", "Kind", "TTL")
    previous = "-" if data["previous"] is None else str(data["previous"])
    table.add_row(data["uid"], data["service"], str(data["pod"]), previous, _kind(data["persistent"]),
                  _ttl_text(data["ttl"]))
    return table


def try_set(ctx: typer.Context, uid: Uid, service: Service, pod: Pod, ttl: Ttl = None) -> None:
    """Set the link unless a persistent link to another pod exists (exit 4 then)."""
    from stroute.errors import Conflict

    g: Globals = ctx.obj
    pod_n = inputs.pod(pod)
    ttl_ms = inputs.ttl_ms(ttl)
    ns = g.config().namespace
    ok, current = g.store().try_set(ns, uid, service, pod_n, ttl_ms)
    emit({"namespace": ns, "uid": uid, "service": service, "ok": ok, "pod": current}, g.output, _try_set_table)
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
    """Remove a link now, --after SECONDS, or --delayed. Exit 3 if there is none."""
    from stroute import names
    from stroute.errors import Conflict, InvalidInput, NotFound

    g: Globals = ctx.obj
    expected = inputs.pod(if_pod)
    if delayed and after is not None:
        raise InvalidInput(f"--after {after} and --delayed both given: --delayed means --after links.remove_delay")
    if delayed:
        after_ms = names.ttl_ms(g.config().links.remove_delay, kind="links.remove_delay")
    else:
        after_ms = inputs.ttl_ms(after, kind="--after") or 0
    ns = g.config().namespace
    removed, current = g.store().remove(ns, uid, service, after_ms=after_ms, if_pod=expected)
    data = {"namespace": ns, "uid": uid, "service": service, "removed": removed}
    if current is None:
        if g.output != "table":
            emit(data, g.output)
        raise NotFound(f"no link for uid {uid!r} of service {service!r} in namespace {ns!r}: nothing removed")
    emit(data, g.output, _remove_table(current, after_ms))
    if not removed:
        raise Conflict(
            f"not removed: the link of uid {uid!r} of service {service!r} points at pod {current}, not {expected}"
        )


def _remove_table(pod: int, after_ms: int):
    def table(data: dict):
        t = new_table("UID", "Service", "Pod", "Result")
        if not data["removed"]:
            result = "kept (--if-pod mismatch)"
        elif after_ms:
            result = f"removed in {inputs.seconds(after_ms)} s"
        else:
            result = "removed"
        t.add_row(data["uid"], data["service"], str(pod), result)
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
    """Links of many users of one service, in one round trip."""
    from stroute.client import ClientDriver

    g: Globals = ctx.obj
    wanted = inputs.require(inputs.uids(uids or []), "uid")
    config = g.config()
    # One command, one process: nothing cached would be asked for twice, so no
    # invalidation channel (a thread and a connection) is opened.
    driver = ClientDriver(config, store=g.store(), coherent=False)
    found = driver.batch_get_linked_pod(config.namespace, wanted, service)
    data = {
        "namespace": config.namespace,
        "service": service,
        "pods": {str(pod): users for pod, users in found.pods.items()},
        "missing": found.missing,
    }
    emit(data, g.output, _batch_table)


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
    """Every link of the namespace (SCAN, never KEYS), optionally filtered."""
    g: Globals = ctx.obj
    pod_n = inputs.pod(pod)
    ns = g.config().namespace
    from stroute.cli.progress import Counter

    rows = []
    progress = Counter("scanning links")
    try:
        for link in g.store().scan_links(ns, service=service, pod=pod_n):
            rows.append({"uid": link.uid, "service": link.service, "pod": link.pod,
                         "persistent": link.persistent, "ttl": link.ttl})
            progress.tick(len(rows))
    finally:
        progress.done()
    rows.sort(key=lambda r: (r["service"], r["uid"]))
    emit({"namespace": ns, "links": rows}, g.output, _list_table)


def _list_table(data: dict):
    table = new_table("UID", "Service", "Pod", "Kind", "TTL", title=f"links in namespace {data['namespace']!r}")
    for row in data["links"]:
        table.add_row(row["uid"], row["service"], str(row["pod"]), _kind(row["persistent"]), _ttl_text(row["ttl"]))
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
    users would lose their links while it still holds their state.
    """
    from stroute import names
    from stroute.cli.output import info
    from stroute.cli.progress import Counter
    from stroute.errors import Conflict
    from stroute.operations import clear_pod

    g: Globals = ctx.obj
    names.service(service)
    pod_n = inputs.pod(pod)
    config = g.config()
    store = g.store()
    snap = store.snapshot(config.namespace, service, expire_ms=config.state.expire_ms)
    view = snap.pods.get(pod_n)
    if view is not None and view.alive and not force:
        alive = (f"pod {pod_n} of {service!r} is alive ({view.display_state}"
                 f"{', cordoned' if view.cordoned else ''}, heartbeat {view.heartbeat_age_ms} ms ago)")
        if not dry_run:
            raise Conflict(f"{alive}: its links were not cleared",
                           hint="drain it first (stroute pod drain SVC POD --migrate), or pass --force")
        info(f"note: {alive}: clearing its links needs --force")
    counter = Counter("removing links" if not dry_run else "counting links")
    try:
        report = clear_pod(store, config.namespace, service, pod_n, dry_run=dry_run,
                           on_progress=lambda r: counter.tick(r.found))
    finally:
        counter.done()
    emit(report.to_dict(), g.output, _clear_text)


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
