"""`stroute place`: which pod does a user go to (creating the link if needed)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stroute.cli import inputs
from stroute.cli.context import Globals
from stroute.cli.help import examples
from stroute.cli.output import emit, new_table


@examples("stroute place 42 -s lobby", "stroute place 42 -s lobby --explain",
          "seq 1 1000 | stroute place -s lobby - -o json")
def place(
    ctx: typer.Context,
    uids: Annotated[
        list[str],
        typer.Argument(metavar="UID...", help="User ids; '-' reads them from stdin (whitespace or newline separated).",
                       show_default=False),
    ],
    service: inputs.Service,
    persist: Annotated[
        bool, typer.Option("--persist", help="Create persistent links (default: temporary, links.temp_ttl).")
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show the pod states, the candidates and why the pod was chosen.")
    ] = False,
) -> None:
    """Place users on pods, creating their links.

    It does what a client driver does.
    An existing link to an alive pod stands; a new user goes to a routable pod
    chosen by the placement strategy. Several uids (or '-') are placed in one
    process over one connection. Exit 5 when a uid finds no available pod.

    The JSON is one shape however many uids: "placements", a list of objects
    with uid, pod and source, and "failed", a list of objects with uid and error.
    """
    from stroute import names
    from stroute.errors import InvalidInput

    g: Globals = ctx.obj
    several = len(uids) > 1 or "-" in uids
    wanted = inputs.require(inputs.uids(uids), "uid")
    names.service(service)
    if explain and several:
        raise InvalidInput("--explain explains one placement: give exactly one uid")
    config = g.config()
    from stroute.client import ClientDriver

    # One command, one process: nothing cached would be asked for twice, so no
    # invalidation channel (a thread and a connection) is opened.
    driver = ClientDriver(config, store=g.store(), coherent=False)
    try:
        if explain:
            _explained(g, driver, wanted[0], service, persist)
            return
        if several:
            results = _place_many(driver, wanted, service, persist, from_file="-" in uids and _stdin_is_a_file())
        else:
            results = {wanted[0]: _place_one(driver, wanted[0], service, persist)}
        _report(g, driver, wanted, service, results, several)
    finally:
        driver.close()  # leaves the service's live gateways now, not when its registration expires


def _place_one(driver: Any, uid: str, service: str, persist: bool) -> Any:
    """The placement of uid, or the NoAvailablePod that stopped it (a Redis
    error stops the command: no document, exit 6)."""
    from stroute.errors import NoAvailablePod

    try:
        return driver.place(uid, service, persist=persist)
    except NoAvailablePod as exc:
        return exc


def _stdin_is_a_file() -> bool:
    import sys

    from stroute.cli.progress import regular_file

    return regular_file(sys.stdin)


# uids per ClientDriver.place_many call (one pipelined round trip each) when
# progress is shown: small enough for the bar to move, large enough to amortise.
_CHUNK = 1000


def _place_many(driver: Any, wanted: list[str], service: str, persist: bool, from_file: bool) -> dict[str, Any]:
    if not from_file:
        return driver.place_many(wanted, service, persist=persist)
    # Every uid was read and checked before the first placement, so the
    # file's content is known: the bar counts uids placed of those in it.
    from stroute.cli.progress import Bar

    results: dict[str, Any] = {}
    bar = Bar("placing users", unit="uids")
    try:
        for start in range(0, len(wanted), _CHUNK):
            results.update(driver.place_many(wanted[start:start + _CHUNK], service, persist=persist))
            bar.update(len(wanted), len(results))
    finally:
        bar.stop()
    return results


def placement_data(namespace: str, service: str, wanted: list[str], results: dict[str, Any]) -> dict[str, Any]:
    """The JSON contract's place document: results maps each uid to its
    Placement or to the exception that stopped it."""
    placements, failed = [], []
    for uid in wanted:
        result = results[uid]
        if isinstance(result, Exception):
            failed.append({"uid": uid, "error": str(result)})
        else:
            placements.append({"uid": uid, "pod": result.pod, "source": result.source})
    return {"namespace": namespace, "service": service, "placements": placements, "failed": failed}


def _report(g: Globals, driver: Any, wanted: list[str], service: str, results: dict[str, Any],
            several: bool) -> None:
    from stroute.errors import CorruptData, NoAvailablePod, StoreError

    data = placement_data(driver.namespace, service, wanted, results)
    if several or data["placements"] or not g.for_people:
        emit(data, g.output, _many_table if several else _one_table, schema="place")
    failed = {uid: e for uid, e in results.items() if isinstance(e, Exception)}
    if not failed:
        return
    if not several:
        raise failed[wanted[0]]  # its own message, hint and exit code
    first_uid, first = next((uid, failed[uid]) for uid in wanted if uid in failed)
    # Bad data under a uid's keys (7) before a Redis error (6) before no pod (5).
    cls = next((c for c in (CorruptData, StoreError) if any(isinstance(e, c) for e in failed.values())),
               NoAvailablePod)
    raise cls(f"{len(failed)} of {len(wanted)} uids not placed; first, uid {first_uid!r}: {first}",
              hint=getattr(first, "hint", None))


def _one_table(data: dict):
    table = new_table("UID", "Service", "Pod", "Source")
    for row in data["placements"]:
        table.add_row(row["uid"], data["service"], str(row["pod"]), row["source"])
    return table


_PER_UID_ROWS = 50


def _many_table(data: dict):
    from collections import Counter

    from rich.console import Group
    from rich.text import Text

    placements = data["placements"]
    if len(placements) <= _PER_UID_ROWS:
        table = new_table("UID", "Pod", title=f"placements on service {data['service']!r}")
        for row in placements:
            table.add_row(row["uid"], str(row["pod"]))
    else:
        table = new_table("Pod", "Users", title=f"placements on service {data['service']!r}")
        for pod, count in sorted(Counter(row["pod"] for row in placements).items()):
            table.add_row(str(pod), str(count))
    failed = [row["uid"] for row in data["failed"]]
    summary = f"{len(placements)} placed, {len(failed)} failed"
    if failed:
        summary += ": " + " ".join(failed[:8]) + (" ..." if len(failed) > 8 else "")
    return Group(table, Text(summary))


# --- --explain ---------------------------------------------------------------------


def _explained(g: Globals, driver: Any, uid: str, service: str, persist: bool) -> None:
    result = driver.explain_place(uid, service, persist=persist)
    snap = result.snapshot
    decision = result.decision
    placed = result.placement
    data = placement_data(driver.namespace, service, [uid], {uid: placed if placed is not None else result.error})
    warming = result.slow_start
    data["explain"] = {
        "strategy": result.strategy,
        "expire_ms": driver.config.state.expire_ms,
        "pods": [
            {"pod": v.pod, "state": v.display_state, "load": v.load, "heartbeat_age_ms": v.heartbeat_age_ms,
             "alive": v.alive, "routable": v.routable, "cordoned": v.cordoned,
             "slow_start": (None if v.pod not in warming else
                            {"weight": warming[v.pod].weight, "remaining_ms": warming[v.pod].remaining_ms})}
            for v in snap.pods.values()
        ],
        "unparseable": list(snap.invalid),
        "gateways": result.gateways,
        "candidates": [
            {"pod": v.pod, "load": v.load, "placed_by_this_client": n // max(1, result.gateways),
             "placed_estimate": n, "effective_load": v.load + n}
            for v, n in result.candidates
        ],
        "left_out": list(result.left_out),
        "considered": [] if decision is None else [v.pod for v in decision.considered],
        "choice": None if decision is None else decision.pod.pod,
        "why": _why(result),
        "cache": result.cache,
        "stats": driver.stats(),
    }
    emit(data, g.output, _explain_table, schema="place")
    if result.error is not None:
        raise result.error


def _why(result: Any) -> str:
    """One line: the strategy's reason, and how the link in Redis settled it."""
    placed, decision = result.placement, result.decision
    if result.error is not None:
        return str(result.error)
    if placed.source == "cache":
        return f"pod {placed.pod} is this client's cached link and the pod is alive"
    if decision is None:
        return (f"no routable pod; uid {result.uid!r} already has a link to pod {placed.pod}, "
                "which is alive, so it stands")
    chose = f"{result.strategy}: {decision.why}"
    if result.left_out:
        chose += (f" (slow start left pod{'s' if len(result.left_out) > 1 else ''} "
                  f"{', '.join(map(str, result.left_out))} out of this draw)")
    if placed.source == "new":
        return f"{chose}; a new link to pod {placed.pod} was created"
    if placed.source == "moved":
        return f"{chose}; the user's temporary link pointed at a dead pod and was moved to pod {placed.pod}"
    if placed.pod == decision.pod.pod:
        return f"{chose}; the user already had a link to pod {placed.pod}, which stands"
    return f"{chose}; but the user already has a link to alive pod {placed.pod}, which stands over that pick"


_CACHE_STATES = {
    "coherent": "cached links served; Redis reports every change",
    "suspended": "invalidation channel not confirmed: Redis was read",
    "local": "cached links live up to links.cache_seconds; one-shot commands always use this",
    "off": "links.cache_seconds is 0",
}


def _explain_table(data: dict):
    from rich.console import Group
    from rich.text import Text

    explain = data["explain"]
    uid = (data["placements"] or data["failed"])[0]["uid"]
    placed = data["placements"][0] if data["placements"] else {"pod": None, "source": None}
    candidates = {c["pod"]: c for c in explain["candidates"]}
    considered = set(explain["considered"])
    table = new_table("Pod", "State", "Load", "Heartbeat", "Routable", "Eff. load", "Note",
                      title=f"service {data['service']!r}: pod states (stale after {explain['expire_ms'] / 1000:g} s)")
    for row in explain["pods"]:
        cand = candidates.get(row["pod"])
        notes = []
        if row["cordoned"]:
            notes.append("cordoned")
        if row.get("slow_start"):
            notes.append(f"slow start: weight {row['slow_start']['weight']:.2f}, "
                         f"{row['slow_start']['remaining_ms'] / 1000:.0f} s left")
        if row["pod"] in explain["left_out"]:
            notes.append("left out of this draw")
        if row["pod"] == explain["choice"]:
            notes.append("chosen")
        elif row["pod"] in considered and len(considered) < len(candidates):
            notes.append("considered")
        if row["pod"] == placed["pod"] and placed["source"] != "new":
            notes.append(f"linked ({placed['source']})")
        table.add_row(
            str(row["pod"]), row["state"], str(row["load"]), f"{row['heartbeat_age_ms'] / 1000:.1f} s ago",
            "yes" if row["routable"] else "no", "-" if cand is None else str(cand["effective_load"]),
            ", ".join(notes),
        )
    for pod in explain["unparseable"]:
        table.add_row(str(pod), "?", "-", "-", "no", "-", "unparseable state field")
    gateways = explain["gateways"]
    lines = [f"strategy {explain['strategy']}; {len(candidates)} routable candidates; {gateways} live "
             f"gateway{'s' if gateways != 1 else ''}: this client's placements count x{gateways} in the effective load"]
    if placed["pod"] is None:
        lines.append(f"uid {uid!r}: not placed")
    else:
        lines.append(f"uid {uid!r} -> pod {placed['pod']} ({placed['source']})")
    lines.append(f"why: {explain['why']}")
    lines.append(f"cache: {explain['cache']} ({_CACHE_STATES.get(explain['cache'], '')})")
    stats = explain.get("stats")
    if stats:
        from stroute.client import OUTCOMES

        lines.append("client outcomes: " + ", ".join(f"{k.replace('_', ' ')} {stats[k]}" for k in OUTCOMES))
    return Group(table, Text("\n".join(lines)))
