"""`stroute pod cordon|uncordon|forget|drain -s SVC --pod N`: operator overrides of one pod.

A cordon lives in `P:{ns:state:svc}:ctl`, not in the pod's own state field,
so it survives the pod's restarts: the pod keeps serving its linked users and
gets no new ones until it is uncordoned.

A pod is named with options, `-s SVC --pod N`, as every other command names
a service and a pod (link, place, pods, serve). The positional `SVC POD` of
earlier releases still works for one release, with a warning on stderr.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from stroute.cli import complete
from stroute.cli.context import Globals
from stroute.cli.help import command, examples
from stroute.cli.output import emit, info

app = typer.Typer(
    name="pod",
    help="Operator overrides of one pod: cordon, uncordon, forget, drain.",
    no_args_is_help=True,
)

ServiceOption = Annotated[
    Optional[str],
    typer.Option("-s", "--service", metavar="SVC", help="Service of the pod (required).", show_default=False,
                 autocompletion=complete.services),
]
PodOption = Annotated[
    Optional[str],
    typer.Option("--pod", metavar="N", help="Pod index, the StatefulSet ordinal (required).", show_default=False,
                 autocompletion=complete.pods),
]
# The positional form of earlier releases: accepted, not shown.
ServiceArg = Annotated[Optional[str], typer.Argument(metavar="SVC", hidden=True, show_default=False)]
PodArg = Annotated[Optional[str], typer.Argument(metavar="POD", hidden=True, show_default=False)]


def address(command_name: str, service: str | None, pod: str | None, service_arg: str | None,
            pod_arg: str | None) -> tuple[str, int]:
    """(service, pod index) from -s SVC --pod N, or from the deprecated positional
    SVC POD (with a warning on stderr); both forms at once is invalid input."""
    from stroute import names
    from stroute.errors import InvalidInput

    positional = [v for v in (service_arg, pod_arg) if v is not None]
    if positional and (service is not None or pod is not None):
        given = " ".join(positional)
        raise InvalidInput(f"pod {command_name}: the pod is named twice, as {given!r} and with -s/--pod: "
                           f"give -s SVC --pod N only")
    if positional:
        if pod_arg is None:
            raise InvalidInput(f"pod {command_name}: missing POD after {service_arg!r}: "
                               f"use 'stroute pod {command_name} -s SVC --pod N'")
        checked = names.service(service_arg), names.pod(pod_arg)
        info(f"warning: 'stroute pod {command_name} SVC POD' is deprecated and goes in the next release: "
             f"use 'stroute pod {command_name} -s {checked[0]} --pod {checked[1]}'")
        return checked
    missing = [flag for flag, value in (("-s SVC", service), ("--pod N", pod)) if value is None]
    if missing:
        raise InvalidInput(f"pod {command_name} needs {' and '.join(missing)}: "
                           f"'stroute pod {command_name} -s SVC --pod N'")
    return names.service(service), names.pod(pod)


def _cordon(ctx: typer.Context, service: str, index: int, cordoned: bool) -> None:
    g: Globals = ctx.obj
    config = g.config()
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


@examples("stroute pod cordon -s lobby --pod 1", "stroute pod cordon -s lobby --pod 1 -o json")
def cordon(ctx: typer.Context, service: ServiceOption = None, pod: PodOption = None,
           service_arg: ServiceArg = None, pod_arg: PodArg = None) -> None:
    """Stop sending new users to a pod; its linked users stay.

    The cordon survives the pod's restarts, until 'stroute pod uncordon'.
    """
    _cordon(ctx, *address("cordon", service, pod, service_arg, pod_arg), True)


@examples("stroute pod uncordon -s lobby --pod 1")
def uncordon(ctx: typer.Context, service: ServiceOption = None, pod: PodOption = None,
             service_arg: ServiceArg = None, pod_arg: PodArg = None) -> None:
    """Let a cordoned pod take new users again."""
    _cordon(ctx, *address("uncordon", service, pod, service_arg, pod_arg), False)


@examples("stroute pod forget -s lobby --pod 3", "stroute pod forget -s lobby --pod 3 --force")
def forget(
    ctx: typer.Context,
    service: ServiceOption = None,
    pod: PodOption = None,
    force: Annotated[bool, typer.Option("--force", help="Forget it even if it is alive.")] = False,
    service_arg: ServiceArg = None,
    pod_arg: PodArg = None,
) -> None:
    """Remove a dead pod's state field, after a scale-down.

    Refuses a pod that is alive (exit 4) unless --force. Exit 3 if the pod
    has no state field.
    """
    from stroute.errors import NotFound
    from stroute.operations import forget_pod

    g: Globals = ctx.obj
    config = g.config()
    service, index = address("forget", service, pod, service_arg, pod_arg)
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


@examples("stroute pod drain -s lobby --pod 1 --migrate --dry-run",
          "stroute pod drain -s lobby --pod 1 --migrate --rate 200",
          "stroute pod drain -s lobby --pod 1 --deadline 60")
def drain(
    ctx: typer.Context,
    service: ServiceOption = None,
    pod: PodOption = None,
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
        typer.Option("--deadline", metavar="SECONDS", show_default=False,
                     help="Stop after SECONDS. Without --migrate: wait up to SECONDS for the links to leave."),
    ] = None,
    service_arg: ServiceArg = None,
    pod_arg: PodArg = None,
) -> None:
    """Cordon a pod and move its links to other routable pods.

    Without --migrate it only cordons, and waits (--deadline) for the links
    to leave on their own.

    Each move is a compare-and-set: a link that changed meanwhile is skipped,
    never overwritten; a temporary link keeps its remaining TTL. Exit 5 when
    no other pod is routable, 1 when the deadline stops it with links left.
    """
    from stroute.cli.progress import Bar
    from stroute.operations import Drain

    g: Globals = ctx.obj
    config = g.config()
    service, index = address("drain", service, pod, service_arg, pod_arg)
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


command(app, "cordon", cordon)
command(app, "uncordon", uncordon)
command(app, "forget", forget)
command(app, "drain", drain)
