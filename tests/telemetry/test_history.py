"""Reading history in SQLite: storage, range queries, downsampling, restarts, failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import HISTORY_RETRY_INITIAL_S, Host
from wasihost.model import Measurement, Reading
from wasihost.telemetry.history import History


def reading(t_ms: int, value: float, plugin: str = "dht22") -> Reading:
    m = Measurement(plugin, "temperature", value, "°C", "temperature", t_ms)
    return Reading(plugin, "dht22-plugin", t_ms, (m,), {})


def test_range_query_returns_what_was_written(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    for i in range(10):
        history.write([reading(1_000 * i, 20.0 + i)])
    series = history.query("dht22", "temperature", 3_000, 6_000)
    assert series is not None
    assert series.points == [(3_000, 23.0), (4_000, 24.0), (5_000, 25.0), (6_000, 26.0)]
    assert series.unit == "°C"
    assert not series.downsampled
    assert history.query("dht22", "humidity", 0, 10_000).points == []
    history.close()


def test_long_ranges_are_downsampled(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    history.write([reading(t, float(t % 7)) for t in range(0, 86_400_000, 60_000)])
    series = history.query("dht22", "temperature", 0, 86_400_000, max_points=100)
    assert series is not None and series.downsampled
    assert 50 <= len(series.points) <= 100
    assert all(0.0 <= v <= 6.0 for _, v in series.points)
    assert [t for t, _ in series.points] == sorted(t for t, _ in series.points)


def test_only_finite_numbers_leave_a_tampered_database(tmp_path: Path) -> None:
    """Whatever else the file holds (written by hand here), queries return finite floats;
    a downsampled bucket whose average overflows is dropped, not returned as inf."""
    history = History(tmp_path / "h.sqlite3")
    history.write([reading(1_000, 20.0)])
    with sqlite3.connect(tmp_path / "h.sqlite3") as db:
        db.executemany(
            "INSERT INTO timeline (id, series_id, value) VALUES ((? << 12) | 1, 1, ?)",
            [
                (2_000, float("inf")),
                (3_000, "text"),
                (4_000, b"\xff"),
                (5_000, -float("inf")),
                (6_000, 1e308),
                (6_001, 1e308),
                (9_000, 21.0),
            ],
        )
    assert history.query("dht22", "temperature", 0, 10_000).points == [
        (1_000, 20.0),
        (6_000, 1e308),
        (6_001, 1e308),
        (9_000, 21.0),
    ]
    downsampled = history.query("dht22", "temperature", 0, 9_999, max_points=2)
    assert downsampled.downsampled
    assert downsampled.points == [(1_000, 20.0)]  # 6 000..9 000 averaged to inf: dropped
    history.close()


def test_history_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    first = History(path)
    first.write([reading(5, 21.5)])
    first.close()
    second = History(path)
    series = second.query("dht22", "temperature", 0, 10)
    assert series is not None and series.points == [(5, 21.5)]
    assert second.fields() == [("dht22", "temperature", "°C")]


DAY_MS = 86_400_000
HOUR_MS = 3_600_000
YEAR_MS = 365 * DAY_MS
T0 = 1_700_000_000_000  # November 2023
STEP_MS = 600_000  # a sample every 10 min keeps these tests small


def record(history: History, start_ms: int, end_ms: int) -> list[int]:
    """Samples every STEP_MS from ``start_ms`` up to ``end_ms`` inclusive; their stamps."""
    stamps = list(range(start_ms, end_ms + 1, STEP_MS))
    history.write([reading(t, 20.0) for t in stamps])
    return stamps


def stamps(history: History) -> list[int]:
    return [t for t, _ in history.query("dht22", "temperature", -(2**62), 2**62, 10**9).points]


@pytest.mark.parametrize("start_ms", [T0, 0], ids=["2023", "1970"])
def test_prune_drops_samples_past_retention(tmp_path: Path, start_ms: int) -> None:
    """A host that runs on: the samples older than the retention go, whatever epoch
    its clock is in (a Pi that never synced its clock keeps 1970 stamps)."""
    history = History(tmp_path / "h.sqlite3", retention_days=1)
    written = record(history, start_ms, start_ms + 2 * DAY_MS)
    assert history.prune(now_ms=start_ms + 2 * DAY_MS) == 144  # cutoff: one day ago, exclusive
    assert stamps(history) == written[144:]
    record(history, start_ms + 2 * DAY_MS + STEP_MS, start_ms + 2 * DAY_MS + HOUR_MS)
    assert history.prune(now_ms=start_ms + 2 * DAY_MS + HOUR_MS) == 6  # an hour later
    history.close()


# --- Clock jumps --------------------------------------------------------------------
# A Pi without a real-time clock boots in 1970 (or at its last shutdown) and NTP steps
# its wall clock a minute later, by hours to decades, sometimes back.


@pytest.mark.parametrize("jump_ms", [3 * DAY_MS, YEAR_MS], ids=["3 days", "a year"])
def test_a_forward_clock_jump_prunes_no_more_than_time_that_passed(
    tmp_path: Path, jump_ms: int, caplog: pytest.LogCaptureFixture
) -> None:
    history = History(tmp_path / "h.sqlite3", retention_days=1)
    before = record(history, T0, T0 + DAY_MS)  # a day of readings
    assert history.prune(now_ms=T0 + DAY_MS) == 0
    later = T0 + DAY_MS + jump_ms  # the clock steps; the host runs on an hour
    after = record(history, later, later + HOUR_MS)
    with caplog.at_level("INFO", "wasihost.history"):
        # An hour was recorded since: an hour of the oldest readings goes, not all of them.
        assert history.prune(now_ms=later + HOUR_MS) == 6
        assert history.prune(now_ms=later + HOUR_MS) == 0
    assert stamps(history) == before[6:] + after
    assert caplog.text.count("recorded time") == 1  # said once
    history.close()


def test_a_backward_clock_jump_prunes_nothing_it_would_not_have(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3", retention_days=1)
    before = record(history, T0, T0 + DAY_MS)
    back = T0 + DAY_MS - YEAR_MS
    after = record(history, back, back + HOUR_MS)  # the clock stepped back a year
    assert history.prune(now_ms=back + HOUR_MS) == 0
    assert stamps(history) == after + before
    history.close()


def test_readings_before_ntp_are_kept_and_older_runs_pruned_by_recorded_time(
    tmp_path: Path,
) -> None:
    """Boot without a real-time clock: the first readings are stamped in 1970, then NTP
    steps the clock past the previous run's readings by days (the Pi was off)."""
    path = tmp_path / "h.sqlite3"
    history = History(path, retention_days=1)
    previous_run = record(history, T0, T0 + DAY_MS)
    history.close()
    history = History(path, retention_days=1)  # restarted, in 1970
    unsynced = record(history, 5_000, 5_000 + 2 * STEP_MS)
    assert history.prune(now_ms=5_000 + 2 * STEP_MS) == 0
    synced = T0 + 3 * DAY_MS  # NTP: two days off are real, but the host cannot tell
    now = record(history, synced, synced + HOUR_MS)
    assert history.prune(now_ms=synced + HOUR_MS) == 6  # the day kept is recorded time
    assert stamps(history) == unsynced + previous_run[6:] + now
    history.close()


async def test_host_history_survives_restart(
    make_config: Callable[..., HostConfig], board: SimBoard
) -> None:
    config = make_config({"dht22": {"led": 1}})
    board.set_dht22(22.0, 40.0)
    clock = [1_700_000_000_000]  # cycles a second apart, as they would be
    first = Host(config, board=board, clock_ms=lambda: clock[0])
    first.load_plugins()
    for _ in range(3):
        clock[0] += 1000
        await first.after_cycle(await first.cycle.run_once())
    first.close()

    second = Host(config, board=SimBoard(seed=1))
    assert second.history is not None
    series = second.history.query("dht22", "temperature", 0, 2**53)
    second.close()
    assert series is not None
    assert [v for _, v in series.points] == [22.0, 22.0, 22.0]


async def test_failed_commit_loses_nothing(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
    monkeypatch: pytest.MonkeyPatch,
    monotonic: Any,
) -> None:
    host = make_host(make_config({"dht22": {"led": 1}}))
    assert host.history is not None
    ticks = iter(range(1_700_000_000_000, 1_800_000_000_000, 1000))
    host.cycle.clock_ms = lambda: next(ticks)  # cycles a second apart, as they would be
    board.set_dht22(20.0, 40.0)
    real_write = host.history.write
    failures = iter([True, False])

    def flaky_write(readings: list[Reading]) -> int:
        if next(failures, False):
            raise sqlite3.OperationalError("disk I/O error (simulated)")
        return real_write(readings)

    monkeypatch.setattr(host.history, "write", flaky_write)
    await host.after_cycle(await host.cycle.run_once())  # fails: kept in memory
    board.set_dht22(21.0, 40.0)
    monotonic.advance(HISTORY_RETRY_INITIAL_S)  # the retry waits for its backoff
    await host.after_cycle(await host.cycle.run_once())  # succeeds: both cycles stored
    series = host.history.query("dht22", "temperature", 0, 2**53)
    assert series is not None
    assert [v for _, v in series.points] == [20.0, 21.0]


def test_full_disk_error_surfaces_and_history_recovers(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    history.write([reading(0, 20.0)])
    db = history._db  # max_page_count is a setting of the connection
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")  # no room for another page
    # A new series (its row is inserted, its id cached) and more samples than fit:
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        history.write([reading(t, 1.0, plugin="bme680") for t in range(5_000)])
    assert not db.in_transaction  # SQLite rolled back by itself, series row included
    db.execute("PRAGMA max_page_count = 1000000")  # space freed
    assert history.write([reading(1, 21.0, plugin="bme680"), reading(1, 22.0)]) == 2
    assert history.fields() == [("bme680", "temperature", "°C"), ("dht22", "temperature", "°C")]
    assert history.query("bme680", "temperature", 0, 10).points == [(1, 21.0)]
    assert history.query("dht22", "temperature", 0, 10).points == [(0, 20.0), (1, 22.0)]
    history.close()


async def test_commits_are_batched_by_the_commit_interval(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
    monotonic: Any,
    tmp_path: Path,
) -> None:
    """[history] commit_interval_seconds: cycles in between wait in memory; the
    first cycle commits at once, and close() commits what waits."""
    history = {"path": str(tmp_path / "h.sqlite3"), "commit_interval_seconds": 60.0}
    host = make_host(make_config({"dht22": {"led": 1}}, history=history))
    assert host.history is not None
    ticks = iter(range(1_700_000_000_000, 1_800_000_000_000, 1000))
    host.cycle.clock_ms = lambda: next(ticks)
    board.set_dht22(20.0, 40.0)  # a reading every cycle

    def stored() -> int:
        assert host.history is not None
        return len(host.history.query("dht22", "temperature", 0, 2**53).points)

    for _ in range(30):  # a minute of 2 s cycles: one commit, the first
        await host.after_cycle(await host.cycle.run_once())
        monotonic.advance(2.0)
    assert (stored(), host.history_unsaved) == (1, 29)
    await host.after_cycle(await host.cycle.run_once())  # 60 s after the first: due
    assert (stored(), host.history_unsaved) == (31, 0)
    await host.after_cycle(await host.cycle.run_once())
    assert host.history_unsaved == 1
    host.flush_history()  # what close() does
    assert (stored(), host.history_unsaved) == (32, 0)


@pytest.mark.parametrize(("kind", "seconds"), [("pi", 60.0), ("sim", 0.0)])
def test_the_commit_interval_defaults_to_a_minute_on_a_pi_only(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    kind: str,
    seconds: float,
) -> None:
    """A Pi writes to an SD card: a commit a minute, not one a cycle (docs/CONFIG.md)."""
    host = make_host(make_config({}, board={"kind": kind}))  # on the simulated board
    assert host._commit_interval_s == seconds


def test_a_database_keyed_by_series_first_is_moved_to_the_timeline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database from before the timeline (samples keyed by series, then time)
    opens with every sample in the timeline, in one step, said in the log."""
    path = tmp_path / "h.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE series (id INTEGER PRIMARY KEY, plugin TEXT NOT NULL,
                field TEXT NOT NULL, unit TEXT NOT NULL, device_class TEXT NOT NULL,
                UNIQUE (plugin, field));
            CREATE TABLE samples (series_id INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
                value REAL NOT NULL, PRIMARY KEY (series_id, ts_ms)) WITHOUT ROWID;
            CREATE INDEX samples_by_time ON samples (ts_ms);
            INSERT INTO series VALUES (1, 'dht22', 'temperature', '°C', 'temperature');
            INSERT INTO series VALUES (2, 'dht22', 'humidity', '%', 'humidity');
            """
        )
        db.executemany(
            "INSERT INTO samples VALUES (?, ?, ?)",
            [(s, T0 + i * 1000, float(i + s)) for i in range(100) for s in (1, 2)],
        )
    with caplog.at_level("INFO", "wasihost.history"):
        history = History(path)
    assert "moving 200 samples to the time-ordered layout" in caplog.text
    series = history.query("dht22", "humidity", T0, T0 + 99_000, 1000)
    assert series.points == [(T0 + i * 1000, float(i + 2)) for i in range(100)]
    history.write([reading(T0 + 100_000, 99.0)])  # and it goes on
    assert history.query("dht22", "temperature", T0 + 99_000, T0 + 100_000).points == [
        (T0 + 99_000, 100.0),
        (T0 + 100_000, 99.0),
    ]
    # The moved samples get their statistics although a write came first (2 buckets).
    assert history.compile_missing() == 2
    hour = history.query("dht22", "temperature", T0, T0 + 100_000, 10, "1h")
    assert [(lo, hi) for lo, hi in hour.extents] == [(1.0, 100.0)]
    assert history.compile_missing() == 0  # once
    history.close()
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "samples" not in tables and "samples_by_time" not in tables
