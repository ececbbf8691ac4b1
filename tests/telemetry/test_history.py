"""Reading history in SQLite: storage, range queries, downsampling, restarts, failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host
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
            "INSERT INTO samples (series_id, ts_ms, value) VALUES (1, ?, ?)",
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


def test_prune_drops_samples_past_retention(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3", retention_days=1)
    day = 86_400_000
    history.write([reading(0, 1.0), reading(day, 2.0), reading(2 * day, 3.0)])
    assert history.prune(now_ms=2 * day) == 1  # cutoff: one day ago, exclusive
    series = history.query("dht22", "temperature", 0, 3 * day)
    assert series is not None and [v for _, v in series.points] == [2.0, 3.0]


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
