"""`stroute pods -s SVC` and `stroute top [--watch]`: pod load tables.

One Store.snapshot per service (one round trip: both state hashes and Redis
TIME). `workload` is computed from that snapshot (Snapshot.workload), not
read from the key pod 0 publishes: it is then consistent with the rows shown,
costs no extra round trip, and still says something when pod 0 is dead.
"""

from __future__ import annotations

import functools
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Mapping, Optional

import typer

from stroute.cli import complete
from stroute.cli.context import Globals
from stroute.cli.help import examples
from stroute.cli.output import Column, columns_wanted, emit, info, plain, wide_wanted
from stroute.cli.plot import DEFAULT_HISTORY_S, History, capacity

BAR_WIDTH = 10

CountLinks = Annotated[
    bool,
    typer.Option("--count-links", help="Count each pod's links: a SCAN of the links (progress on stderr)."),
]


@dataclass(frozen=True)
class ServiceView:
    """SPEC's pods object of one service, and what else the table shows."""

    data: dict[str, Any]
    now_ms: int  # Redis TIME of the snapshot: incarnation ages are measured against it
    invalid: tuple[int, ...]  # pods whose state field does not parse


def service_view(namespace: str, snap, links: Mapping[int, int] | None = None,
                 notes: Mapping[int, Any] | None = None, slow_start_ms: int = 0,
                 published_workload: str | None = None) -> ServiceView:
    """`links` (pod -> links counted) adds "links" to each pod, and the
    service's "links_total" and "links_to_unknown_pods" (pods with links but no state).
    `notes` (pod -> PodNotes) gives each pod its "reason" (why it publishes
    what it does, or null), "recent_epochs" (epochs first seen in the last
    10 minutes) and "flapping" (its epoch keeps changing). `slow_start_ms`
    (placement.slow_start_window_ms) gives each pod its "slow_start": its
    current weight and the ms left of its window, or null when it is not in one.
    "unparseable" lists the pods whose state field stroute cannot read, with
    the raw value; "published_workload" is the service's workload key as
    written (stroute's pod 0: READY/DEGRADED/DOWN; Go's server driver:
    Normal, Idle, High, Overloaded, Shutdown), null when there is none."""
    from stroute.placement import slow_start
    from stroute.podstate import PodNotes

    notes = notes or {}
    warming = slow_start(snap, snap.now_ms, slow_start_ms)
    data = {
        "namespace": namespace,
        "service": snap.service,
        "workload": snap.workload,
        "pods": [
            {
                "pod": v.pod,
                "state": v.display_state,
                "load": v.load,
                "heartbeat_age_ms": v.heartbeat_age_ms,
                "alive": v.alive,
                "routable": v.routable,
                "cordoned": v.cordoned,
                "epoch_ms": v.epoch,
                "reason": notes.get(v.pod, PodNotes()).reason,
                "recent_epochs": notes.get(v.pod, PodNotes()).recent_epochs(snap.now_ms),
                "flapping": notes.get(v.pod, PodNotes()).flapping(snap.now_ms),
                "slow_start": (None if v.pod not in warming else
                               {"weight": warming[v.pod].weight, "remaining_ms": warming[v.pod].remaining_ms}),
            }
            for v in snap.pods.values()
        ],
        "unparseable": [{"pod": pod, "value": raw} for pod, raw in snap.unparseable],
        "published_workload": published_workload,
    }
    if links is not None:
        for row in data["pods"]:
            row["links"] = links.get(row["pod"], 0)
        data["links_total"] = sum(links.values())
        data["links_to_unknown_pods"] = {str(p): n for p, n in sorted(links.items()) if p not in snap.pods}
    return ServiceView(data, snap.now_ms, snap.invalid)


def count_links(store, namespace: str, service: str | None = None, bad=None) -> dict[str, Counter]:
    """{service: Counter(pod -> links)} over every link of the namespace (one SCAN);
    keys that are no readable link go to `bad` (a store.BadKeys)."""
    from stroute.cli.progress import Counter as Progress

    progress = Progress("counting links")
    try:
        found = store.count_links(namespace, service=service, bad=bad, on_page=lambda c: progress.tick(c.total))
    finally:
        progress.done()
    return {svc: Counter({pod: p + t for pod, (p, t) in pods.items()}) for svc, pods in found.services().items()}


def _pod_names(service: dict[str, Any]) -> list[str]:
    """-o name: service/pod of each pod."""
    return [f"{service['service']}/{row['pod']}" for row in service["pods"]]


def published_workload(store, namespace: str, service: str) -> str | None:
    """The service's workload key as written, or None (none, or a key of another type)."""
    from stroute.errors import PermissionDenied, RedisUnavailable, StoreError

    try:
        return store.workload(namespace, service)
    except (RedisUnavailable, PermissionDenied):
        raise
    except StoreError:
        return None


def _warn_invalid(view: ServiceView) -> None:
    for row in view.data.get("unparseable", ()):
        info(f"warning: {view.data['service']}: pod {row['pod']} published a state field stroute cannot parse "
             f"(treated as dead): {row['value']!r}")


Watch = Annotated[
    bool,
    typer.Option("--watch", "-w", help="Refresh until Ctrl-C: a live table, or with -o json one JSON document "
                 "per line and refresh (NDJSON; -o yaml: a '---' separated stream)."),
]
Interval = Annotated[
    Optional[float], typer.Option("--interval", "-i", metavar="SECONDS",
                                  help="Seconds between refreshes with --watch [default: 2].")
]
WatchCount = Annotated[
    Optional[int], typer.Option("--count", metavar="N", min=1, help="Stop watching after N refreshes.")
]
HistoryOption = Annotated[
    Optional[float],
    typer.Option("--history", metavar="SECONDS", show_default=False,
                 help="With --watch or --plot: seconds of samples kept and drawn [default: 300]."),
]
Plot = Annotated[
    bool,
    typer.Option("--plot", help="Watch, and draw each pod's load over the last --history seconds "
                 "(a chart per pod; ASCII in a pipe or with --no-headers). Refused with -o json, yaml or name."),
]


@dataclass(frozen=True)
class Sample:
    """One reading of pods or top: the document, what the table draws from it,
    and what it could not read."""

    data: dict[str, Any]
    views: list[ServiceView]
    warnings: list[dict[str, Any]]
    bad: Any  # store.BadKeys with --count-links, else None
    draw: Any  # trends (top --watch) or None -> the Rich renderable


def _pods_sample(g: Globals, service: str, links: bool) -> Sample:
    from stroute.placement import slow_start_window_ms

    config = g.config()
    store = g.store()
    snap = store.snapshot(config.namespace, service, expire_ms=config.state.expire_ms)
    bad = _bad_keys() if links else None
    counts = count_links(store, config.namespace, service, bad).get(service, Counter()) if links else None
    view = service_view(config.namespace, snap, counts, store.pod_notes(config.namespace, service),
                        slow_start_window_ms(config), published_workload(store, config.namespace, service))
    if bad is not None:
        view.data["bad_keys"] = bad.to_dict()
    return Sample(view.data, [view], [], bad, lambda trends: render([view], trends=trends))


@examples("stroute pods -s lobby", "stroute pods -s lobby --count-links -o json", "stroute pods -s lobby --watch")
def pods(
    ctx: typer.Context,
    service: Annotated[str, typer.Option("-s", "--service", metavar="SVC", help="Service whose pods to show.",
                                         autocompletion=complete.services)],
    links: CountLinks = False,
    watch: Watch = False,
    interval: Interval = None,
    count: WatchCount = None,
) -> None:
    """One service's pods: state, load, heartbeat and incarnation age."""
    from stroute import names
    from stroute.errors import NotFound

    g: Globals = ctx.obj
    names.service(service)
    period = _watch_period(watch, interval, count)
    if period is not None:
        _watch(g, period, count, lambda: _pods_sample(g, service, links), "pods",
               f"stroute pods: service {service!r}", DEFAULT_HISTORY_S)
        return
    sample = _pods_sample(g, service, links)
    view = sample.views[0]
    if not g.for_people:  # the table shows them itself
        _warn_invalid(view)
    emit(sample.data, g.output, lambda _: sample.draw(None), _pod_names, schema="pods")
    ns = g.config().namespace
    _raise_bad_keys(sample.bad, ns)
    if (not view.data["pods"] and not view.invalid and not view.data.get("links_total")
            and service not in g.store().services(ns)):
        raise NotFound(
            f"service {service!r} has no pods in namespace {ns!r}",
            hint="check the name with 'stroute top'; a server driver registers its service on its first heartbeat",
        )


def _bad_keys():
    from stroute.store import BadKeys

    return BadKeys()


def _raise_bad_keys(bad, namespace: str) -> None:
    """--count-links skipped keys that are no readable link: exit 7, after the data."""
    error = None if bad is None else bad.error(namespace)
    if error is not None:
        raise error


def _top_views(g: Globals, links: bool = False, bad=None) -> tuple[list[ServiceView], list[dict[str, Any]]]:
    """The views of every service, and warnings ({"service", "problem"}) for what
    the namespace holds that is not a readable service: a foreign entry in the
    services registry, a registry or state key of another type. Those are
    data to show, not a reason to fail the whole table. Link keys that are no
    readable link are collected in `bad` (--count-links)."""
    from stroute.errors import InvalidInput, PermissionDenied, RedisUnavailable, StoreError
    from stroute.placement import slow_start_window_ms

    config = g.config()
    store = g.store()
    ns = config.namespace
    expire_ms = config.state.expire_ms
    counts = count_links(store, ns, bad=bad) if links else None
    registry = store.registry(ns, discover=True)
    warnings: list[dict[str, Any]] = [
        {"service": entry, "problem": f"not a service name: an entry of the services registry {registry.key} "
                                     "written by another program, skipped"}
        for entry in registry.invalid
    ]
    if registry.wrong_type is not None:
        warnings.append({"service": None, "problem": f"the services registry {registry.key} is a "
                                                     f"{registry.wrong_type}, not a set: no service is listed"})
    services = registry.services
    if counts is not None:  # a service with links but no registered pod is shown too
        services = sorted(set(services) | set(counts))
    views = []
    for service in services:
        try:
            snap = store.snapshot(ns, service, expire_ms=expire_ms)
        except InvalidInput:  # a service named only by link keys another program wrote
            warnings.append({"service": service, "problem": "not a service name (named by link keys), skipped"})
            continue
        except (RedisUnavailable, PermissionDenied):
            raise
        except StoreError:
            ks = store.keys(ns)
            wrong = [f"{key} is a {kind}" for key in (ks.state(service), ks.control(service))
                     if (kind := store.key_type(key)) not in ("hash", "none")]
            if not wrong:  # the keys are as they should be: a failure to report as it is
                raise
            warnings.append({"service": service, "problem": f"its state cannot be read: {' and '.join(wrong)}, "
                                                            "not a hash"})
            continue
        views.append(service_view(ns, snap, None if counts is None else counts.get(service, Counter()),
                                  store.pod_notes(ns, service), slow_start_window_ms(config),
                                  published_workload(store, ns, service)))
    return views, warnings


def _warn(warnings: list[dict[str, Any]]) -> None:
    for warning in warnings:
        who = f"{warning['service']!r}: " if warning["service"] is not None else ""
        info(f"warning: {who}{warning['problem']}")


def _top_sample(g: Globals, links: bool) -> Sample:
    bad = _bad_keys() if links else None
    views, warnings = _top_views(g, links, bad)
    namespace = g.config().namespace
    data: dict[str, Any] = {"namespace": namespace, "services": [v.data for v in views], "warnings": warnings}
    if bad is not None:
        data["bad_keys"] = bad.to_dict()
    return Sample(data, views, warnings, bad,
                  lambda trends: render(views, namespace=namespace, trends=trends, warnings=warnings))


@examples("stroute top", "stroute top --watch --interval 1", "stroute top --plot --history 600")
def top(
    ctx: typer.Context,
    watch: Watch = False,
    interval: Interval = None,
    count: WatchCount = None,
    links: CountLinks = False,
    plot: Plot = False,
    history: HistoryOption = None,
) -> None:
    """Every service of the namespace, a row per pod.

    And a summary row per service. --watch refreshes it, with each pod's
    recent loads in a Trend column; --plot draws each pod's load over the
    last --history seconds instead.
    """
    g: Globals = ctx.obj
    period = _watch_period(watch or plot, interval, count, history)
    if plot and g.output not in ("table", "wide"):
        from stroute.errors import InvalidInput

        raise InvalidInput(f"--plot draws for people and cannot be printed as -o {g.output}",
                           hint="use 'stroute top --watch -o json' for the samples")
    if period is not None:
        _watch(g, period, count, lambda: _top_sample(g, links), "top",
               f"stroute top: namespace {g.config().namespace!r}",
               DEFAULT_HISTORY_S if history is None else history, plot=plot)
        return
    sample = _top_sample(g, links)
    if not g.for_people:  # the table shows them itself
        _warn_sample(sample)
    emit(sample.data, g.output, lambda _: sample.draw(None),
         lambda d: [name for service in d["services"] for name in _pod_names(service)], schema="top")
    _raise_bad_keys(sample.bad, sample.data["namespace"])


def _warn_sample(sample: Sample) -> None:
    for view in sample.views:
        _warn_invalid(view)
    _warn(sample.warnings)


def _watch_period(watch: bool, interval: float | None, count: int | None,
                  history: float | None = None) -> float | None:
    """The seconds between refreshes with --watch, None without it."""
    from stroute.errors import InvalidInput

    if not watch:
        if interval is not None or count is not None:
            raise InvalidInput("--interval and --count only apply with --watch")
        if history is not None:
            raise InvalidInput("--history only applies with --watch or --plot")
        return None
    period = 2.0 if interval is None else interval
    if not period >= 0.1:
        raise InvalidInput(f"invalid --interval {interval!r}: must be a number of seconds, at least 0.1")
    if history is not None and not period <= history <= 86_400:
        raise InvalidInput(f"invalid --history {history!r}: must be a number of seconds from the interval "
                           f"({period:g}) to 86400 (a day)")
    return period


def _frame(title: str, period: float, sample: Sample | None = None, error: str | None = None,
           history: History | None = None):
    from rich.console import Group
    from rich.text import Text

    header = Text(f"{title}, {time.strftime('%H:%M:%S')}, every {period:g} s (Ctrl-C to quit)", style="bold")
    if sample is None:
        return Group(header, Text(f"error: {error} (retrying)", style="red"))
    table = sample.draw(history)
    bad = sample.bad
    if bad is not None and bad.count:
        keys = "1 key" if bad.count == 1 else f"{bad.count} keys"
        return Group(header, table, Text(f"{keys} not counted: no readable link (first: {bad.found[0][0]}); "
                                         "see 'stroute link list'", style="yellow"))
    return Group(header, table)


def _plot_frame(out, title: str, period: float, sample: Sample | None = None, error: str | None = None,
                history: History | None = None):
    """top --plot's frame: a header, then a chart line per pod (ASCII when the
    output is columns: a pipe, or --no-headers)."""
    from rich.console import Group
    from rich.text import Text

    from stroute.cli.plot import plot_lines

    header = Text(f"{title}, {time.strftime('%H:%M:%S')}, every {period:g} s (Ctrl-C to quit)", style="bold")
    lines = plot_lines(history, width=out.width, period=period, ascii=columns_wanted())
    parts = [header, Text("\n".join(lines))]
    if sample is None:
        parts.append(Text(f"error: {error} (retrying)", style="red"))
    return Group(*parts)


def _record(history: History, views: list[ServiceView]) -> None:
    """One sample of each pod's load (None for a dead pod: its trend starts over)."""
    history.record({(view.data["service"], row["pod"]): row["load"] if row["alive"] else None
                    for view in views for row in view.data["pods"]})


def _watch(g: Globals, period: float, count: int | None, take, schema: str, title: str, history_s: float,
           plot: bool = False) -> None:
    """Take a sample every `period` seconds, `count` times (or until Ctrl-C):
    a live table (or plot), or one document per sample (-o json: NDJSON)."""
    first = take()  # a bad config or an unreachable Redis fails here
    history = History(capacity(history_s, period))
    try:
        if g.for_people:
            _watch_table(period, count, take, first, title, history, plot)
        else:
            _watch_documents(g.output, period, count, take, first, schema)
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends: not an error
        pass
    except BrokenPipeError:  # the reader stopped (| head -1): its choice, not an error
        _silence_stdout()


def _samples(period: float, count: int | None, take):
    """After the first: a sample every period, `count` in all; an outage gives
    its error (a str) in place of a sample, and the watch goes on."""
    from stroute.errors import RedisUnavailable, StoreError

    refreshes = 1
    while count is None or refreshes < count:
        time.sleep(period)
        refreshes += 1
        try:
            yield take()
        except (RedisUnavailable, StoreError) as exc:  # keep watching through an outage
            yield str(exc)


def _watch_documents(fmt: str, period: float, count: int | None, take, first: Sample, schema: str) -> None:
    """One document per sample, flushed as it is taken; an outage is a line on
    stderr and no document (a reader never gets a half-known one)."""
    _warn_sample(first)
    emit(first.data, fmt, schema=schema, stream=True)
    for sample in _samples(period, count, take):
        if isinstance(sample, str):
            info(f"error: {sample} (retrying)")
        else:
            emit(sample.data, fmt, schema=schema, stream=True)


def _watch_table(period: float, count: int | None, take, first: Sample, title: str, history: History,
                 plot: bool = False) -> None:
    from stroute.cli.output import console, print_columns

    out = console()
    draw = functools.partial(_plot_frame, out) if plot else _frame
    _record(history, first.views)
    frame = draw(title, period, first, history=history)
    live = None
    try:
        if out.is_terminal:
            from rich.live import Live

            live = Live(frame, console=out, auto_refresh=False, redirect_stderr=False)
            live.start()
        else:  # a pipe or a file: one frame after another, in columns, like `top -b`
            print_columns(frame)
            sys.stdout.flush()
        for sample in _samples(period, count, take):
            if isinstance(sample, str):
                frame = draw(title, period, error=sample, history=history)
            else:
                _record(history, sample.views)
                frame = draw(title, period, sample, history=history)
            if live is not None:
                live.update(frame, refresh=True)
            else:
                sys.stdout.write("\n")
                print_columns(frame)
                sys.stdout.flush()
    finally:
        if live is not None:
            live.stop()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test runner's buffer)
        pass


# --- rendering -----------------------------------------------------------------------


def _age(ms: int | None) -> str:
    from stroute.diagnose import duration

    return "-" if ms is None else duration(ms)


def _bar(load: int, peak: int) -> str:
    filled = 0 if peak <= 0 else max(1 if load > 0 else 0, round(BAR_WIDTH * load / peak))
    full, empty = ("#", ".") if plain() else ("█", "░")
    return full * filled + empty * (BAR_WIDTH - filled)


_STYLES = {"READY": "green", "DRAINING": "yellow", "DOWN": "red", "STALE": "bold red"}
_WORKLOAD_STYLES = {"READY": "green", "DEGRADED": "yellow", "DOWN": "bold red"}


_SPARKS = "▁▂▃▄▅▆▇█"
_SPARKS_PLAIN = "_.,-=+*#"


def trend(loads, joined: bool = False) -> str:
    """A sparkline of the loads (oldest first) and an arrow for the last change
    (`joined`: with no space between, one field in columns)."""
    loads = list(loads)
    if not loads:
        return ""
    sparks = _SPARKS_PLAIN if plain() else _SPARKS
    low, high = min(loads), max(loads)
    if high == low:
        line = sparks[len(sparks) // 2 - 1] * len(loads)
    else:
        line = "".join(sparks[round((v - low) * (len(sparks) - 1) / (high - low))] for v in loads)
    up, down, flat = ("^", "v", "=") if plain() else ("↑", "↓", "→")
    arrow = flat if len(loads) < 2 or loads[-1] == loads[-2] else (up if loads[-1] > loads[-2] else down)
    return f"{line}{'' if joined else ' '}{arrow}"


def render(views: list[ServiceView], namespace: str | None = None, trends: Mapping | None = None,
           warnings: list[dict[str, Any]] = ()):
    """One table: a row per pod, a summary row per service.

    A "Links" column when the views carry link counts; a "Trend" column
    (the last loads of each pod) when `trends` is given (top --watch);
    a WARNING row for each entry that is not a readable service, explained
    in the caption."""
    from rich.text import Text

    from stroute.cli.output import new_table

    if not views and not warnings:
        return Text(f"no services in namespace {namespace!r}: no server driver has published a heartbeat yet")
    title = f"namespace {namespace or views[0].data['namespace']!r}"
    with_links = any("links_total" in view.data for view in views)
    extra = (["Trend"] if trends is not None else []) + (["Links"] if with_links else [])
    # In columns (a pipe) every row names its service and no cell holds a
    # space, so grep and awk see whole fields.
    every_row = columns_wanted()
    # On a narrow terminal the bar goes first, then the incarnation age, the
    # trend, the cordon flag and the heartbeat age; -o wide adds the epoch and
    # the reason a pod gives for its state.
    wide = wide_wanted()
    extra_columns = [Column(name, drop=3 if name == "Trend" else 0) for name in extra]
    table = new_table("Service", "Pod", "State", Column("Cordon", drop=2), "Load",
                      Column("Bar" if every_row else "", drop=5), *extra_columns, Column("Heartbeat", drop=1),
                      Column("Up", drop=4), *([Column("Epoch"), Column("Reason")] if wide else []), title=title)
    for column in table.columns[5:6 + len(extra)]:  # the bar and sparklines lose their meaning when wrapped
        column.no_wrap = True
    table.columns[5].min_width = BAR_WIDTH
    color = not plain()
    for index, view in enumerate(views):
        obj, rows = view.data, view.data["pods"]
        peak = max((r["load"] for r in rows if r["alive"]), default=0)
        for i, row in enumerate(rows):
            state = Text(row["state"], style=_STYLES.get(row["state"], "") if color else "")
            # A dead pod's load and incarnation age say nothing any more.
            up = None if row["epoch_ms"] is None or not row["alive"] else view.now_ms - row["epoch_ms"]
            cells = []
            if trends is not None:
                history = trends.get((obj["service"], row["pod"])) if row["alive"] else None
                cells.append(trend(history or (), joined=every_row))
            if with_links:
                cells.append(str(row.get("links", "")))
            table.add_row(
                obj["service"] if i == 0 or every_row else "",
                str(row["pod"]),
                state,
                "yes" if row["cordoned"] else "",
                str(row["load"]),
                Text(_bar(row["load"], peak) if row["alive"] else "", style="cyan" if color else ""),
                *cells,
                _age(row["heartbeat_age_ms"]) if every_row else f"{_age(row['heartbeat_age_ms'])} ago",
                _age(up),
                *([str(row["epoch_ms"]) if row["epoch_ms"] is not None else "", _printable(row.get("reason") or "")]
                  if wide else []),
            )
        for bad in obj.get("unparseable", ()):
            cells = [""] * ((trends is not None) + with_links)
            value = _printable(repr(bad["value"]))
            value = value.replace(" ", "\\x20") if every_row else value[:40]
            table.add_row(
                obj["service"] if (not rows and bad is obj["unparseable"][0]) or every_row else "",
                str(bad["pod"]),
                Text("UNPARSEABLE", style="red" if color else ""),
                "",
                "",
                value,
                *cells,
                "",
                "",
                *(["", ""] if wide else []),
            )
        routable = sum(r["routable"] for r in rows)
        alive = sum(r["alive"] for r in rows)
        total = len(rows) + len(view.invalid)
        shown = obj["workload"]
        foreign = obj.get("published_workload")
        if foreign is not None and foreign not in ("READY", "DEGRADED", "DOWN"):  # not stroute's pod 0's
            shown = f"{shown}({_printable(foreign)})" if every_row else f"{shown} ({_printable(foreign)})"
        workload = Text(shown, style=_WORKLOAD_STYLES.get(obj["workload"], "") if color else "")
        cordoned = sum(r["cordoned"] for r in rows)
        cells = [""] if trends is not None else []
        if with_links:
            cells.append(str(obj.get("links_total", "")))
        table.add_row(
            obj["service"] if not rows or every_row else "",
            "all",
            workload,
            str(cordoned) if cordoned else "",
            "",
            f"routable={routable}" if every_row else f"{routable} routable",
            *cells,
            f"alive={alive}" if every_row else f"{alive} alive",
            f"total={total}" if every_row else f"of {total}",
            *(["", ""] if wide else []),
            style="bold" if color else "",
            end_section=index < len(views) - 1,
        )
    for warning in warnings:
        if warning["service"] is not None:
            if table.rows:
                table.rows[-1].end_section = True
            table.add_row(warning["service"], "-", Text("WARNING", style="yellow" if color else ""),
                          *[""] * (len(table.columns) - 3))
    notes = [f"warning: {w['service']!r}: {w['problem']}" if w["service"] is not None else f"warning: {w['problem']}"
             for w in warnings]
    bad = [f"pod {pod} of {view.data['service']}" for view in views for pod in view.invalid]
    if bad:
        notes.append(f"unparseable state field (counted, treated as dead): {', '.join(bad)}")
    from stroute.podstate import EPOCH_FLAP_WINDOW_MS

    for view in views:
        for row in view.data["pods"]:
            where = f"pod {row['pod']} of {view.data['service']}"
            if row.get("reason"):
                notes.append(f"{where} ({row['state']}): {_printable(row['reason'])}")
            if row.get("slow_start"):
                notes.append(f"{where}: slow start, weight {row['slow_start']['weight']:.2f} of a warm pod's, "
                             f"{_age(row['slow_start']['remaining_ms'])} left")
            if row.get("flapping"):
                notes.append(f"{where}: {row['recent_epochs']} epochs in the last "
                             f"{EPOCH_FLAP_WINDOW_MS // 60000} min (restarting, or two instances taking it in turn)")
    unknown = [f"pod {pod} of {view.data['service']} ({n})" for view in views
               for pod, n in view.data.get("links_to_unknown_pods", {}).items()]
    if unknown:
        notes.append(f"links to pods with no state: {', '.join(unknown)}")
    if notes:
        table.caption = Text("\n".join(notes))  # a Text: no markup read into what pods wrote
        table.caption_justify = "left"
    return table


def _printable(text: str) -> str:
    """Control characters (a terminal escape a load command printed) shown escaped, not sent."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


pods.lists_names = top.lists_names = True  # -o name: service/pod per line
