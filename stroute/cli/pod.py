"""`stroute pod cordon|uncordon|forget SVC POD`: operator overrides of one pod.

A cordon lives in `P:{ns:state:svc}:ctl`, not in the pod's own state field,
so it survives the pod's restarts: the pod keeps serving its linked users and
gets no new ones until it is uncordoned.
"""

from __future__ import annotations

from typing import Annotated

import typer

from stroute.cli.context import Globals
from stroute.cli.errors import guarded
from stroute.cli.output import emit, info

app = typer.Typer(
    name="pod",
    help="Operator overrides of one pod: cordon, uncordon, forget.",
    no_args_is_help=True,
)

ServiceArg = Annotated[str, typer.Argument(metavar="SVC", help="Service name.", show_default=False)]
PodArg = Annotated[str, typer.Argument(metavar="POD", help="Pod index (the StatefulSet ordinal).", show_default=False)]


def _cordon(ctx: typer.Context, service: str, pod: str, cordoned: bool) -> None:
    from stroute import names

    g: Globals = ctx.obj
    config = g.config()
    names.service(service)
    index = names.pod(pod)
    store = g.store()
    changed = store.set_cordon(config.namespace, service, index, cordoned)
    data = {
        "namespace": config.namespace,
        "service": service,
        "pod": index,
        "cordoned": cordoned,
        "changed": changed,
    }
    snap = store.snapshot(config.namespace, service, expire_ms=round(config.state.expire * 1000))
    if index not in snap.pods:
        info(f"note: pod {index} of {service!r} has not published a state; the {'cordon' if cordoned else 'change'} "
             "applies when it does")
    emit(data, g.output, _cordon_text)


def _cordon_text(data: dict):
    from rich.text import Text

    where = f"pod {data['pod']} of {data['service']!r} (namespace {data['namespace']!r})"
    if data["cordoned"]:
        what = "cordoned: it keeps its linked users and gets no new ones" if data["changed"] else "was already cordoned"
    else:
        what = "uncordoned: it takes new users again when READY" if data["changed"] else "was not cordoned"
    return Text(f"{where} {what}")


def cordon(ctx: typer.Context, service: ServiceArg, pod: PodArg) -> None:
    """Stop sending new users to a pod (its linked users stay); survives restarts."""
    _cordon(ctx, service, pod, True)


def uncordon(ctx: typer.Context, service: ServiceArg, pod: PodArg) -> None:
    """Let a cordoned pod take new users again."""
    _cordon(ctx, service, pod, False)


def forget(
    ctx: typer.Context,
    service: ServiceArg,
    pod: PodArg,
    force: Annotated[bool, typer.Option("--force", help="Forget it even if it is alive.")] = False,
) -> None:
    """Remove a dead pod's state field (after a scale-down); refuses an alive pod."""
    from stroute import names
    from stroute.errors import Conflict, NotFound

    g: Globals = ctx.obj
    config = g.config()
    names.service(service)
    index = names.pod(pod)
    store = g.store()
    snap = store.snapshot(config.namespace, service, expire_ms=round(config.state.expire * 1000))
    view = snap.pods.get(index)
    if view is not None and view.alive and not force:
        raise Conflict(
            f"pod {index} of {service!r} is alive ({view.display_state}, heartbeat "
            f"{view.heartbeat_age_ms} ms ago): not forgotten",
            hint="stop it first, or pass --force (it reappears on its next heartbeat)",
        )
    removed = store.remove_state(config.namespace, service, index)
    data = {"namespace": config.namespace, "service": service, "pod": index, "removed": removed}
    if not removed:
        emit(data, g.output, lambda d: _text(f"pod {d['pod']} of {d['service']!r} has no state to forget"))
        raise NotFound(f"pod {index} of {service!r} has no state field in namespace {config.namespace!r}")
    emit(data, g.output, lambda d: _text(f"pod {d['pod']} of {d['service']!r} forgotten"))


def _text(message: str):
    from rich.text import Text

    return Text(message)


app.command("cordon")(guarded(cordon))
app.command("uncordon")(guarded(uncordon))
app.command("forget")(guarded(forget))
