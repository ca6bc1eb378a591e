"""`stroute top --plot` and the history `top --watch` keeps: the ring, the
drawing (pure functions, given samples), and the command on a real server."""

from __future__ import annotations

import pytest

from link_place_support import isolated, publish, run, run_bin  # noqa: F401  (fixture)
from stroute.cli.plot import ASCII_LEVELS, BLOCKS, TREND_SAMPLES, History, capacity, chart, plot_lines
from stroute.config import Config


# --- the ring ------------------------------------------------------------------------


def test_capacity_spans_the_history():
    assert capacity(300, 2) == 151  # 0 s, 2 s, ... 300 s
    assert capacity(10, 3) == 4
    assert capacity(1, 0.1) == 11
    assert capacity(1, 2) == 2  # never fewer than two: a change needs two samples


def test_the_ring_keeps_the_last_samples_and_drops_the_oldest():
    history = History(3)
    for load in (1, 2, 3, 4, 5):
        history.record({("lobby", 0): load, ("lobby", 1): load * 10})
    assert len(history.frames) == 3
    assert history.series(("lobby", 0)) == [3, 4, 5]
    assert history.series(("lobby", 1)) == [30, 40, 50]
    assert history.keys() == [("lobby", 0), ("lobby", 1)]
    history.record({("lobby", 0): 6, ("lobby", 1): None})  # pod 1 died
    assert history.series(("lobby", 1)) == [40, 50, None]
    for _ in range(3):
        history.record({("lobby", 0): 7})
    assert history.keys() == [("lobby", 0)]  # gone once its last sample is


def test_the_trend_is_the_last_loads_since_the_pod_came_alive():
    history = History(50)
    for load in range(20):
        history.record({("lobby", 0): load})
    assert history.get(("lobby", 0)) == list(range(20 - TREND_SAMPLES, 20))
    history.record({("lobby", 0): None})
    assert history.get(("lobby", 0)) is None  # dead now: no trend
    history.record({("lobby", 0): 3})
    assert history.get(("lobby", 0)) == [3]  # starts over
    assert history.get(("game", 9)) is None


# --- the drawing -----------------------------------------------------------------------


def _history(samples: list[dict]) -> History:
    history = History(len(samples))
    for sample in samples:
        history.record(sample)
    return history


def test_chart_scales_to_the_peak():
    assert chart([0, 50, 100, None], 100) == BLOCKS[0] + BLOCKS[4] + BLOCKS[7] + " "  # 3.5 rounds to 4
    assert chart([0, 50, 100], 100, ascii=True) == ASCII_LEVELS[0] + ASCII_LEVELS[4] + ASCII_LEVELS[7]
    assert chart([0, 0], 0) == BLOCKS[0] * 2  # all idle: the lowest level, not blank


def test_a_series_per_pod_and_a_scale_per_service():
    samples = [{("lobby", 0): 10 * i, ("lobby", 1): 5 * i, ("game", 2): 3} for i in range(1, 5)]
    lines = plot_lines(_history(samples), width=80, period=2)
    assert lines[0] == "game: load 0..3, last 6s (4 samples every 2 s)"
    assert lines[2] == "lobby: load 0..40, last 6s (4 samples every 2 s)"
    charts = {line.split()[0]: line for line in lines if "/" in line.split()[0]}
    assert list(charts) == ["game/2", "lobby/0", "lobby/1"]  # one series per pod, by service
    assert len(lines) == 5
    # The chart is a column per sample (the history holds 4), newest right.
    assert charts["lobby/0"] == "lobby/0  " + chart([10, 20, 30, 40], 40) + "  min 10  max 40  now 40"
    # Scaled to the busiest pod of its service: pod 1 reaches half way.
    assert charts["lobby/1"] == "lobby/1  " + chart([5, 10, 15, 20], 40) + "  min 5  max 20  now 20"
    assert chart([20], 40) == BLOCKS[4]
    assert charts["game/2"].startswith("game/2   " + BLOCKS[7] * 4)  # its own scale: 3 of 3 is full


def test_a_pod_that_joined_late_or_died_has_gaps_and_no_current_load():
    samples = [{("lobby", 0): 8}, {("lobby", 0): 8, ("lobby", 1): 4}, {("lobby", 0): None, ("lobby", 1): 4}]
    lines = plot_lines(_history(samples), width=80, period=1)
    assert lines[1] == "lobby/0  " + BLOCKS[7] * 2 + " " + "  min 8  max 8  now -"
    assert lines[2] == "lobby/1  " + " " + BLOCKS[4] * 2 + "  min 4  max 4  now 4"


def test_more_samples_than_columns_keep_each_columns_peak():
    history = _history([{("lobby", 0): load} for load in range(100)])
    lines = plot_lines(history, width=40, period=1)
    row = lines[1]
    drawn = row[len("lobby/0  "):row.index("  min")]
    assert len(drawn) == 10  # 40 columns less the label and the numbers: the 10 column minimum
    assert drawn == chart([9, 19, 29, 39, 49, 59, 69, 79, 89, 99], 99)
    assert row.endswith("min 0  max 99  now 99")
    assert lines[0] == "lobby: load 0..99, last 1m39s (100 samples every 1 s)"


def test_ascii_uses_ascii_only_and_every_chart_line_is_as_wide():
    samples = [{("lobby", p): p * i for p in range(3)} for i in range(30)]
    lines = plot_lines(_history(samples), width=70, period=0.5, ascii=True)
    assert all(line.isascii() for line in lines)
    charts = [line for line in lines if line.startswith("lobby/")]
    assert len(charts) == 3
    assert len({line.index("  min") for line in charts}) == 1


def test_nothing_alive_says_so():
    assert plot_lines(History(5), width=80, period=2) == ["no pod has been alive in the samples taken"]


# --- the command ---------------------------------------------------------------------------


@pytest.fixture
def fleet(real_url):
    config = Config().with_overrides(**{"redis.url": real_url})
    store = config.open_store()
    publish(config, store, "lobby", {0: 10, 1: 40, 2: 80})
    publish(config, store, "game", {0: 5})
    store.close()
    return real_url


def _frames(stdout: str) -> list[list[str]]:
    frames = [block.splitlines() for block in stdout.strip("\n").split("\n\n")]
    assert all(frame[0].startswith("stroute top: namespace 'default', ") for frame in frames), stdout
    return frames


def test_top_plot_count_3_draws_three_frames_in_a_pipe(tmp_path, fleet):
    proc = run_bin(tmp_path, "--redis-url", fleet, "top", "--plot", "--count", "3", "--interval", "0.1",
                   COLUMNS="80")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.isascii()  # not a terminal: the ASCII chart
    frames = _frames(proc.stdout)
    assert len(frames) == 3
    for n, frame in enumerate(frames, 1):
        assert frame[1] == f"game: load 0..5, last {0.1 * (n - 1):g}s ({n} sample{'s' if n > 1 else ''} every 0.1 s)"
        assert frame[3] == f"lobby: load 0..80, last {0.1 * (n - 1):g}s ({n} sample{'s' if n > 1 else ''} " \
                           "every 0.1 s)"
        rows = {line.split()[0]: line.split() for line in frame[2:] if "/" in line.split()[0]}
        assert sorted(rows) == ["game/0", "lobby/0", "lobby/1", "lobby/2"]
        assert rows["lobby/2"][1] == ASCII_LEVELS[7] * n  # the busiest pod, full height, a column per sample
        assert rows["lobby/1"][1] == chart([40] * n, 80, ascii=True)
        assert rows["lobby/0"][-5:] == ["10", "max", "10", "now", "10"]


def test_the_history_keeps_only_what_it_is_given(tmp_path, fleet):
    proc = run_bin(tmp_path, "--redis-url", fleet, "top", "--plot", "--count", "4", "--interval", "0.1",
                   "--history", "0.2")
    assert proc.returncode == 0, proc.stderr
    last = _frames(proc.stdout)[-1]
    assert "(3 samples every 0.1 s)" in last[1]  # 0.2 s at 0.1 s: three samples, the oldest dropped
    assert [line.split()[1] for line in last if line.startswith("lobby/2")] == [ASCII_LEVELS[7] * 3]


def test_no_headers_draws_ascii_in_process(isolated, fleet):
    result = run("--redis-url", fleet, "--no-headers", "top", "--plot", "--count", "1", "--interval", "0.1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.isascii() and "lobby/2" in result.stdout


@pytest.mark.parametrize("fmt", ["json", "yaml", "name"])
def test_plot_is_refused_as_a_document(isolated, fleet, fmt):
    for args in (["-o", fmt, "top", "--plot", "--count", "1"], ["top", "--plot", "--count", "1", "-o", fmt]):
        result = run("--redis-url", fleet, *args)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert f"stroute: error: --plot draws for people and cannot be printed as -o {fmt}" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["top", "--history", "60"], "--history only applies with --watch or --plot"),
    (["top", "--watch", "--history", "1", "--interval", "2"], "invalid --history 1.0"),
    (["top", "--plot", "--history", "100000"], "invalid --history 100000.0"),
])
def test_history_errors_are_exit_2(isolated, fleet, args, message):
    result = run("--redis-url", fleet, *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""
