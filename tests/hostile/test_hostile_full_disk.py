"""A full disk under the history database (issue 17).

The disk fills for real, as far as SQLite can tell: ``PRAGMA max_page_count``
caps the file at the pages it has, and inserts past that fail with
``SQLITE_FULL`` ("database or disk is full"), the error a full SD card gives.
The host must go on polling, say so once when saving starts failing and once
when it works again, keep a bounded backlog whose overflow is counted, retry
with a capped backoff on the monotonic clock instead of every cycle, show
``degraded`` (not a restart-me 503) on /healthz, and at shutdown make a last
attempt and say what was lost. The MQTT outbox (its SQLite full the same way)
and the state snapshots (every write raising ENOSPC) on the same disk also say
so once when they start failing and once when they work again.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wasihost import snapshots
from wasihost.config import HostConfig
from wasihost.host import HISTORY_DRAIN_READINGS, HISTORY_RETRY_MAX_S, Host
from wasihost.model import Measurement, Reading
from wasihost.telemetry.outbox import OutboxMessage
from wasihost.web.server import create_app

T0 = 1_700_000_000_000
PLUGINS = ("pi-monitor", "dht22", "bme680")
MAX_UNSAVED = 500
INTERVAL_S = 2.0


def cycle(i: int) -> list[Reading]:
    """One cycle's readings, a second of recorded time apart per cycle, three plugins."""
    t = T0 + 1000 * i
    return [
        Reading(p, f"{p}-plugin", t, (Measurement(p, "value", float(i), "", "none", t),), {})
        for p in PLUGINS
    ]


class Disk:
    """Counts the history commits tried, and fills or frees the disk."""

    def __init__(self, host: Host) -> None:
        assert host.history is not None
        self.db = host.history._db  # max_page_count is a setting of the connection
        self.attempts = 0
        real = host.history.write

        def counted(readings: list[Reading]) -> int:
            self.attempts += 1
            return real(readings)

        host.history.write = counted  # type: ignore[method-assign]

    def fill(self) -> None:
        (pages,) = self.db.execute("PRAGMA page_count").fetchone()
        self.db.execute(f"PRAGMA max_page_count = {pages}")

    def free(self) -> None:
        self.db.execute("PRAGMA max_page_count = 1000000")


def history_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("history")]


@pytest.fixture
def host(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    tmp_path: Path,
) -> Host:
    # The whole [history] section: make_config's database path is replaced with it.
    history = {"path": str(tmp_path / "history.sqlite3"), "max_unsaved_readings": MAX_UNSAVED}
    return make_host(make_config({}, history=history))


async def fill_until_it_fails(host: Host, disk: Disk, monotonic: Any) -> int:
    """Cycles until the first commit fails (the last pages' free room is used up
    first); returns the next cycle's number."""
    disk.fill()
    for i in range(1, 1000):
        await host.save_history(cycle(i))
        monotonic.advance(INTERVAL_S)
        if host.history_unsaved:
            return i + 1
    raise AssertionError("the disk never filled")


async def test_a_full_disk_is_logged_twice_retried_with_backoff_and_bounded(
    host: Host, monotonic: Any, caplog: pytest.LogCaptureFixture
) -> None:
    disk = Disk(host)
    await host.save_history(cycle(0))
    caplog.set_level(logging.DEBUG, "wasihost")
    start = await fill_until_it_fails(host, disk, monotonic)
    disk.attempts = 0
    cycles = 600  # twenty minutes at 2 s
    for i in range(start, start + cycles):
        await host.save_history(cycle(i))
        monotonic.advance(INTERVAL_S)

    # Logged when it started, and when the backlog started dropping: not per cycle.
    lines = history_lines(caplog)
    assert len(lines) == 2, lines
    assert "cannot save readings: database or disk is full" in lines[0]
    assert "dropping the oldest" in lines[1]
    # Retried 5, 10, 20 ... s apart, then every 300 s: not every cycle.
    assert 8 <= disk.attempts <= 12
    # Bounded, the overflow counted.
    assert host.history_unsaved == MAX_UNSAVED
    assert host.history_dropped == 3 * (cycles + 1) - MAX_UNSAVED
    assert host.history_problem is not None
    assert "database or disk is full" in host.history_problem

    async with TestClient(TestServer(create_app(host))) as client:
        host.state.cycle, host.state.completed_at = 1, time.monotonic()  # cycles on time
        response = await client.get("/healthz")
        body = await response.json()
        assert response.status == 200  # degraded: a restart would not free the disk
        assert body["status"] == "degraded"
        assert len(body["reasons"]) == 1
        assert "database or disk is full" in body["reasons"][0]
        assert f"{MAX_UNSAVED} readings waiting" in body["reasons"][0]
        assert (body["history_unsaved"], body["history_dropped"]) == (
            MAX_UNSAVED,
            host.history_dropped,
        )

        # Space is freed: the next attempt (within the backoff's cap) saves it all.
        disk.free()
        caplog.clear()
        end = start + cycles
        for i in range(end, end + int(HISTORY_RETRY_MAX_S / INTERVAL_S) + 1):
            await host.save_history(cycle(i))
            monotonic.advance(INTERVAL_S)
        lines = history_lines(caplog)
        assert len(lines) == 1, lines
        assert lines[0].startswith("history: saving again after")
        assert f"{host.history_dropped} dropped meanwhile" in lines[0]
        assert host.history_unsaved == 0 and host.history_problem is None
        body = await (await client.get("/healthz")).json()
        assert (body["status"], body["reasons"]) == ("ok", [])

    # What was kept is the newest: the oldest were dropped, nothing else is missing.
    assert host.history is not None
    points = host.history.query("dht22", "value", 0, 2**53, 10**6).points
    kept = [int(v) for _, v in points]
    first_kept = start - 1 + host.history_dropped // 3  # dht22 is second of three a cycle
    assert kept == list(range(start - 1)) + list(range(first_kept, i + 1))


async def test_a_backlog_drains_a_batch_at_a_time(
    make_config: Callable[..., HostConfig], make_host: Callable[[HostConfig], Host], monotonic: Any
) -> None:
    host = make_host(make_config({}))  # the default bound: 10 000 readings
    disk = Disk(host)
    await host.save_history(cycle(0))
    start = await fill_until_it_fails(host, disk, monotonic)
    for i in range(start, start + 1000):
        await host.save_history(cycle(i))
        monotonic.advance(INTERVAL_S)
    waiting = host.history_unsaved
    assert waiting == 3 * 1001 and host.history_dropped == 0
    disk.free()
    monotonic.advance(HISTORY_RETRY_MAX_S)
    drained = []  # per cycle, readings committed: the cycle's 3 and a batch of the backlog
    while host.history_unsaved:
        i += 1
        before = host.history_unsaved + 3
        await host.save_history(cycle(i))
        drained.append(before - host.history_unsaved)
    assert drained[:-1] == [3 + HISTORY_DRAIN_READINGS] * (len(drained) - 1)
    assert len(drained) == -(-waiting // HISTORY_DRAIN_READINGS)


async def test_at_shutdown_a_last_attempt_and_the_loss_is_logged(
    host: Host, monotonic: Any, caplog: pytest.LogCaptureFixture
) -> None:
    disk = Disk(host)
    await host.save_history(cycle(0))
    start = await fill_until_it_fails(host, disk, monotonic)
    for i in range(start, start + 200):
        await host.save_history(cycle(i))  # the clock stands still: no retry
    assert host.history_unsaved == MAX_UNSAVED
    dropped = host.history_dropped
    caplog.set_level(logging.INFO, "wasihost")
    caplog.clear()
    attempts = disk.attempts
    host.flush_history()  # what close() does first
    assert disk.attempts == attempts + 1  # a last attempt, despite the backoff
    lines = history_lines(caplog)
    assert lines == [
        f"history: {MAX_UNSAVED} readings not saved at shutdown, lost: database or disk is full",
        f"history: {dropped + MAX_UNSAVED} readings were dropped, never saved, "
        "since the host started",
    ]


async def test_at_shutdown_readings_waiting_are_saved_when_there_is_room(
    host: Host, monotonic: Any, caplog: pytest.LogCaptureFixture
) -> None:
    disk = Disk(host)
    await host.save_history(cycle(0))
    start = await fill_until_it_fails(host, disk, monotonic)
    for i in range(start, start + 10):
        await host.save_history(cycle(i))
    disk.free()
    caplog.set_level(logging.INFO, "wasihost")
    caplog.clear()
    host.flush_history()
    assert history_lines(caplog) == [
        f"history: saving again at shutdown: the {3 * 11} readings waiting"
    ]
    assert host.history_dropped == 0


# -- the MQTT outbox and the state snapshots on the same full disk -------------


def lines_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


@pytest.fixture
def full_host(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
    tmp_path: Path,
) -> Host:
    """A stateful plugin (bme680 snapshots its IAQ state), MQTT on (no broker
    needed: a cycle only writes the outbox) and a snapshot every 10 s."""
    mqtt = {"enabled": True, "outbox_path": str(tmp_path / "outbox.sqlite3")}
    state = {"dir": str(tmp_path / "state"), "save_interval_seconds": 10}
    host = make_host(make_config({"bme680": {}}, mqtt=mqtt, state=state))
    return host


async def test_a_full_disk_under_the_outbox_and_snapshots_is_logged_twice(
    full_host: Host, monotonic: Any, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    host = full_host
    assert host.outbox is not None and host.plugins["bme680"].stateful
    caplog.set_level(logging.DEBUG, "wasihost")
    for _ in range(3):  # a working disk: a snapshot written, messages queued
        await host.after_cycle(await host.cycle.run_once())
        monotonic.advance(INTERVAL_S)
    assert (Path(host.config.state.dir) / "bme680.state").exists()
    depth = host.outbox.depth()
    assert depth > 0

    # The disk fills: the outbox's SQLite cannot grow, a snapshot cannot be written.
    db = host.outbox._db
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")
    writes = []

    def full(path: Path, data: bytes | bytearray, durable: bool = False) -> None:
        writes.append(path)
        raise OSError(errno.ENOSPC, "No space left on device", str(path) + ".x.partial")

    monkeypatch.setattr(snapshots, "write_atomically", full)
    refused = []  # messages in each put_many the full outbox refused
    put_many = host.outbox.put_many

    def counted(messages: Iterable[OutboxMessage]) -> int:
        batch = list(messages)
        try:
            return put_many(batch)
        except sqlite3.OperationalError:
            refused.append(len(batch))
            raise

    monkeypatch.setattr(host.outbox, "put_many", counted)
    host.outbox.memory_max = 100  # what waits in memory for the disk, at most
    caplog.clear()
    cycles = 300  # ten minutes at 2 s
    for _ in range(cycles):
        await host.after_cycle(await host.cycle.run_once())
        monotonic.advance(INTERVAL_S)
    outbox_lines = lines_of(caplog, "wasihost.mqtt")
    snapshot_lines = lines_of(caplog, "wasihost.snapshots") + [
        line for line in lines_of(caplog, "wasihost.host") if "snapshot" in line
    ]
    assert len(outbox_lines) == 1, outbox_lines[:5]
    assert "MQTT outbox: cannot write to disk: database or disk is full" in outbox_lines[0]
    assert len(snapshot_lines) == 1, snapshot_lines[:5]
    assert "snapshots: cannot save state" in snapshot_lines[0]
    assert "No space left on device" in snapshot_lines[0]
    # A failed snapshot is retried one save interval later, not every cycle.
    assert len(writes) == cycles * INTERVAL_S / 10
    assert host.snapshots.failures == len(writes)
    # The last pages' free room takes the first few cycles' messages.
    assert host.mqtt is not None and cycles - 20 <= host.mqtt.enqueue_errors < cycles
    assert host.outbox.depth() >= depth  # what was queued before is kept
    assert len(refused) == host.mqtt.enqueue_errors
    assert all(refused)  # each refused cycle had messages (its health at least)
    # The newest 100 wait in memory (published if a broker were there); the older are lost.
    lost = sum(refused) - 100
    assert host.mqtt.stats().messages_lost == lost
    waiting = host.outbox.depth()
    (on_disk,) = db.execute("SELECT COUNT(*) FROM messages").fetchone()
    assert waiting == on_disk + 100 and on_disk >= depth
    # /healthz gives both reasons (the web reads them through the Node protocol).
    assert host.outbox_problem is not None
    failing_s = host.mqtt.enqueue_errors * INTERVAL_S  # on the host's monotonic clock
    assert host.outbox_problem == (
        f"MQTT outbox not written for {failing_s:.0f} s ({waiting} messages waiting, "
        f"{lost} lost): database or disk is full"
    )
    assert host.snapshot_problem is not None

    # Space is freed: one line each, with what failed meanwhile.
    db.execute("PRAGMA max_page_count = 1000000")
    monkeypatch.undo()
    caplog.clear()
    for _ in range(6):
        await host.after_cycle(await host.cycle.run_once())
        monotonic.advance(INTERVAL_S)
    outbox_lines = lines_of(caplog, "wasihost.mqtt")
    snapshot_lines = lines_of(caplog, "wasihost.snapshots")
    assert len(outbox_lines) == 1, outbox_lines
    assert outbox_lines[0].startswith("MQTT outbox: writing to disk again after")
    assert host.outbox.depth() >= waiting  # what waited in memory is on disk now
    assert f"{host.mqtt.enqueue_errors} cycles" in outbox_lines[0]
    assert "messages lost meanwhile" in outbox_lines[0]
    assert len(snapshot_lines) == 1, snapshot_lines
    assert snapshot_lines[0].startswith("snapshots: saving again after")
    assert f"{len(writes)} saves failed meanwhile" in snapshot_lines[0]
    assert (Path(host.config.state.dir) / "bme680.state").exists()
    assert host.outbox_problem is None and host.snapshot_problem is None

    # /metrics has the history backlog and the snapshot failures.
    metrics = host.metrics.render().decode()
    assert "wasihost_history_unsaved_readings{" in metrics
    assert "wasihost_history_dropped_readings_total{" in metrics
    assert (
        f'wasihost_snapshot_save_failures_total{{node="{host.config.node_id}"}} {len(writes)}.0'
        in metrics
    )
    # ... and the MQTT messages the full outbox lost: counted, not only logged.
    assert f"{lost} messages lost meanwhile" in outbox_lines[0]
    assert host.mqtt.stats().messages_lost == lost  # since start: recovery keeps the count
    assert (
        f'wasihost_outbox_lost_messages_total{{node="{host.config.node_id}"}} {lost}.0' in metrics
    )


def test_a_failing_snapshot_store_never_raises_and_says_what_a_shutdown_loses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    store = snapshots.SnapshotStore(tmp_path, 60.0, clock=lambda: now[0])
    assert store.save("a", b"1")

    def full(path: Path, data: bytes | bytearray, durable: bool = False) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", f"{path}.{now[0]}.partial")

    monkeypatch.setattr(snapshots, "write_atomically", full)
    caplog.set_level(logging.INFO, "wasihost")
    for _ in range(10):
        now[0] += 60
        assert store.save("a", b"2") is False and store.save("b", b"2") is False
        assert not store.due("a")  # the next try is an interval later
    assert len(caplog.records) == 1  # not once per failure
    assert store.failures == 20
    assert (
        store.problem == "state snapshots not saved for 540 s (20 failed): No space left on device"
    )
    caplog.clear()
    assert store.save("a", b"3", force=True) is False  # at shutdown: the loss is said
    assert [r.getMessage() for r in caplog.records] == [
        "[a] state snapshot not saved: No space left on device; a restart restores an older one"
    ]
    monkeypatch.undo()
    caplog.clear()
    assert store.save("a", b"3", force=True) is True
    assert [r.getMessage() for r in caplog.records] == [
        "snapshots: saving again after 540 s; 21 saves failed meanwhile (a, b)"
    ]
    assert store.problem is None and (tmp_path / "a.state").read_bytes() == b"3"
