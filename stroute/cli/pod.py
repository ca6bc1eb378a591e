"""`stroute pod cordon|uncordon|forget|drain SVC POD`: operator overrides of one pod.

A cordon lives in `P:{ns:state:svc}:ctl`, not in the pod's own state field,
so it survives the pod's restarts: the pod keeps serving its linked users and
gets no new ones until it is uncordoned.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from stroute.cli.context import Globals
from stroute.cli.errors import guarded
from stroute.cli.output import emit, info

app = typer.Typer(
    name="pod",
    help="Operator overrides of one pod: cordon, uncordon, forget, drain.",
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
    snap = store.snapshot(config.namespace, service, expire_ms=config.state.expire_ms)
    if index not in snap.pods:
        info(f"note: pod {index} of {service!r} has not published a state; the {'cordon' if cordoned else 'change'} "
             "applies when it does")
    emit(data, g.output, _cordon_text, schema="pod-cordon")


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
    from stroute.errors import NotFound
    from stroute.operations import forget_pod

    g: Globals = ctx.obj
    config = g.config()
    names.service(service)
    index = names.pod(pod)
    removed = forget_pod(g.store(), config.namespace, service, index, force=force,
                         expire_ms=config.state.expire_ms)
    data = {"namespace": config.namespace, "service": service, "pod": index, "removed": removed}
    if not removed:
        emit(data, g.output, lambda d: _text(f"pod {d['pod']} of {d['service']!r} has no state to forget"),
             schema="pod-forget")
        raise NotFound(f"pod {index} of {service!r} has no state field in namespace {config.namespace!r}")
    emit(data, g.output, lambda d: _text(f"pod {d['pod']} of {d['service']!r} forgotten"), schema="pod-forget")


def _text(message: str):
    from rich.text import Text

    return Text(message)


# --- drain ---------------------------------------------------------------------------


def drain(
    ctx: typer.Context,
    service: ServiceArg,
    pod: PodArg,
    migrate: Annotated[
        bool, typer.Option("--migrate", help="Move the pod's temporary links to routable pods (compare-and-set).")
    ] = False,
    include_persistent: Annotated[
        bool, typer.Option("--include-persistent",
                           help="With --migrate: move persistent links too (the users' state must follow them).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing, not even the cordon; report what would be done.")
    ] = False,
    rate: Annotated[
        Optional[str], typer.Option("--rate", metavar="N", show_default=False, help="At most N moves per second.")
    ] = None,
    deadline: Annotated[
        Optional[str],
        typer.Option("--deadline", metavar="S", show_default=False,
                     help="Stop after S seconds. Without --migrate: wait up to S seconds for the links to leave."),
    ] = None,
) -> None:
    """Cordon a pod and, with --migrate, move its links to other routable pods.

    Each move is a compare-and-set: a link that changed meanwhile is skipped,
    never overwritten; a temporary link keeps its remaining TTL. Exit 5 when
    no other pod is routable, 1 when the deadline stops it with links left.
    """
    from stroute import names
    from stroute.cli.progress import Bar
    from stroute.operations import Drain

    g: Globals = ctx.obj
    config = g.config()
    names.service(service)
    index = names.pod(pod)
    moves_per_s = _number(rate, "--rate", "a number of moves per second greater than 0", allow_zero=False)
    seconds = _number(deadline, "--deadline", "a number of seconds, 0 or more", allow_zero=True)
    if include_persistent and not migrate:
        from stroute.errors import InvalidInput

        raise InvalidInput("--include-persistent only applies with --migrate")
    # With --migrate the bar counts the links to move (persistent ones stay
    # unless --include-persistent); without, the links leaving on their own.
    bar = Bar(f"moving links off pod {index}" if migrate else f"links leaving pod {index}")
    job = Drain(g.store(), config, service, index, migrate=migrate, include_persistent=include_persistent,
                dry_run=dry_run, rate=moves_per_s, deadline=seconds,
                on_progress=lambda p: bar.update(p.total, p.done, f"{p.skipped} skipped" if migrate else ""))
    try:
        report = job.run()
    finally:
        bar.stop()
    emit(report.to_dict(), g.output, lambda _: _drain_text(report), schema="pod-drain")
    if report.error is not None:
        raise report.error
    _drain_notes(report)
    error = report.bad_keys.error(config.namespace)
    if error is not None:
        raise error


def _number(value: str | None, flag: str, rule: str, *, allow_zero: bool) -> float | None:
    import math

    from stroute.errors import InvalidInput

    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise InvalidInput(f"invalid {flag} {value!r}: must be {rule}")
    return number


def _targets(report) -> str:
    return ", ".join(f"pod {pod}: {n}" for pod, n in sorted(report.targets.items()))


def _drain_text(report):
    where = f"pod {report.pod} of {report.service!r}"
    if report.dry_run:
        lines = [f"dry run, nothing changed: would cordon {where} (namespace {report.namespace!r})"]
        if report.migrate:
            lines.append(f"would move {report.moved} of its {report.links_before} links"
                         + (f" ({_targets(report)})" if report.targets else "") + f"; {report.remaining} would stay")
        else:
            lines.append(f"{report.links_before} links on it; without --migrate they stay until they expire "
                         "or the service moves them")
        return _text("\n".join(lines))
    cordon = "cordoned" if report.cordon_changed else "was already cordoned"
    lines = [f"{where} {cordon} (namespace {report.namespace!r}): {report.links_before} links before"]
    if report.migrate:
        lines.append(f"moved {report.moved}" + (f" ({_targets(report)})" if report.targets else "")
                     + f", skipped {report.skipped} (changed meanwhile), {report.remaining} remaining")
    else:
        lines.append(f"{report.remaining} remaining")
    return _text("\n".join(lines))


def _drain_notes(report) -> None:
    if report.dry_run or not report.remaining:
        return
    if not report.migrate:
        info(f"note: {_links(report.remaining)} on pod {report.pod}, still served; "
             "add --migrate to move the temporary ones")
    elif report.to_move == 0:
        info(f"note: {_links(report.remaining, 'persistent link')} on pod {report.pod}; "
             "--include-persistent moves persistent links too (their users' state must follow)")


def _links(n: int, what: str = "link") -> str:
    return f"{n} {what}{' stays' if n == 1 else 's stay'}"


app.command("cordon")(guarded(cordon))
app.command("uncordon")(guarded(uncordon))
app.command("forget")(guarded(forget))
app.command("drain")(guarded(drain))
