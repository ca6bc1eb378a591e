"""`stroute top --watch` history and `stroute top --plot`: load per pod over time.

`History` keeps the load of every pod at each sample a watch takes, the last
so many samples (a ring: the oldest goes first). `plot_lines` draws it, one
line per pod: a chart scaled to the busiest pod of its service (so the pods
of a service compare at a glance), labelled `service/pod` with the minimum,
maximum and current load of the samples shown. Both are plain functions of
their arguments: no terminal, no Redis, no Rich.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Iterable, Mapping

DEFAULT_HISTORY_S = 300.0  # top --watch/--plot: five minutes of samples
TREND_SAMPLES = 8  # the Trend column of top --watch: its last loads

# Eight levels each; a missing sample (the pod was dead or not there yet) is a space.
BLOCKS = "▁▂▃▄▅▆▇█"
ASCII_LEVELS = "_.-:=+*#"

Key = tuple[str, int]  # (service, pod)


def capacity(history_s: float, period_s: float) -> int:
    """Samples that span history_s seconds taken every period_s (at least 2)."""
    return max(2, math.floor(history_s / period_s + 1e-9) + 1)


class History:
    """The load of each pod at each of the last `size` samples, oldest first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.frames: deque[dict[Key, int]] = deque(maxlen=size)

    def record(self, loads: Mapping[Key, int | None]) -> None:
        """One sample: each pod's load, None for a pod that is not alive (left out)."""
        self.frames.append({key: load for key, load in loads.items() if load is not None})

    def keys(self) -> list[Key]:
        """Every pod alive in a sample kept, by service and pod."""
        return sorted({key for frame in self.frames for key in frame})

    def series(self, key: Key) -> list[int | None]:
        """The pod's load at each sample kept (None where it was not alive)."""
        return [frame.get(key) for frame in self.frames]

    def get(self, key: Key, default=None) -> list[int] | None:
        """The pod's last TREND_SAMPLES loads since it last came alive (top --watch's Trend column)."""
        run: list[int] = []
        for load in reversed(self.series(key)):
            if load is None or len(run) == TREND_SAMPLES:
                break
            run.append(load)
        return run[::-1] or default


def _columns(series: list[int | None], width: int) -> list[int | None]:
    """series fitted to `width` columns, newest at the right: padded on the left
    when shorter; when longer, each column the highest load of its run of
    samples (a peak stays visible)."""
    n = len(series)
    if n <= width:
        return [None] * (width - n) + series
    out: list[int | None] = []
    for i in range(width):
        bucket = [v for v in series[i * n // width:(i + 1) * n // width] if v is not None]
        out.append(max(bucket) if bucket else None)
    return out


def chart(values: Iterable[int | None], peak: int, ascii: bool = False) -> str:
    """One character per value, its height scaled so `peak` is the top level."""
    levels = ASCII_LEVELS if ascii else BLOCKS
    top = len(levels) - 1
    out = []
    for value in values:
        if value is None:
            out.append(" ")
        else:
            out.append(levels[0 if peak <= 0 else min(top, round(value * top / peak))])
    return "".join(out)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{round(seconds, 1):g}s"
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds % 60 else f"{seconds // 60}m"


def plot_lines(history: History, *, width: int, period: float, ascii: bool = False) -> list[str]:
    """The chart of every pod in history, a header line per service, in `width` columns."""
    keys = history.keys()
    if not keys:
        return ["no pod has been alive in the samples taken"]
    stats = {}
    for key in keys:
        loads = [v for v in history.series(key) if v is not None]
        current = history.frames[-1].get(key)
        stats[key] = (f"min {min(loads)}  max {max(loads)}  now {'-' if current is None else current}",
                      max(loads))
    labels = {key: f"{key[0]}/{key[1]}" for key in keys}
    label_w = max(map(len, labels.values()))
    stats_w = max(len(text) for text, _ in stats.values())
    # No wider than the history holds: a column per sample once it is full.
    chart_w = min(history.size, max(10, width - label_w - stats_w - 4))
    span = _duration((len(history.frames) - 1) * period)
    lines = []
    for service in dict.fromkeys(key[0] for key in keys):
        pods = [key for key in keys if key[0] == service]
        peak = max(stats[key][1] for key in pods)
        samples = len(history.frames)
        lines.append(f"{service}: load 0..{peak}, last {span} ({samples} sample{'' if samples == 1 else 's'} "
                     f"every {period:g} s)")
        for key in pods:
            line = chart(_columns(history.series(key), chart_w), peak, ascii)
            lines.append(f"{labels[key].ljust(label_w)}  {line}  {stats[key][0]}")
    return lines
