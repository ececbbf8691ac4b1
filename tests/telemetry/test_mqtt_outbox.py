"""The MQTT outbox: order, acks, the cap, restarts, threads, and its memory tier
(messages reach the disk only when they wait long)."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from wasihost.config import MqttConfig
from wasihost.telemetry.mqtt import MqttPublisher
from wasihost.telemetry.outbox import Outbox, OutboxMessage


def messages(*numbers: int) -> list[OutboxMessage]:
    return [OutboxMessage(f"t/{n}", str(n).encode(), 1, n % 2 == 0) for n in numbers]


def payloads(outbox: Outbox, limit: int = 1000) -> list[int]:
    return [int(m.payload) for _, m in outbox.peek(limit)]


def test_fifo_peek_and_ack(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", 100)
    outbox.put_many(messages(1, 2, 3))
    outbox.put_many(messages(4))
    batch = outbox.peek(2)
    assert [m for _, m in batch] == messages(1, 2)  # topic, payload, qos, retain kept
    assert outbox.depth() == 4  # peek does not remove
    outbox.ack([i for i, _ in batch])
    assert payloads(outbox) == [3, 4] and outbox.depth() == 2
    outbox.ack([i for i, _ in batch])  # acking twice is harmless
    assert outbox.depth() == 2
    outbox.close()


def test_nothing_lost_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, 100)
    outbox.put_many(messages(1, 2, 3))
    outbox.ack([outbox.peek(1)[0][0]])
    outbox.close()
    reopened = Outbox(path, 100)
    assert payloads(reopened) == [2, 3] and reopened.depth() == 2
    reopened.put_many(messages(4))
    assert payloads(reopened) == [2, 3, 4]  # new ids still sort after old ones
    reopened.close()


def test_cap_drops_the_oldest_and_counts_them_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, 5)
    assert outbox.put_many(messages(1, 2, 3, 4)) == 0
    assert outbox.put_many(messages(5, 6, 7, 8)) == 3
    assert payloads(outbox) == [4, 5, 6, 7, 8]
    assert outbox.depth() == 5 and outbox.dropped == 3
    outbox.close()

    reopened = Outbox(path, 5)
    assert reopened.dropped == 3 and reopened.depth() == 5
    reopened.put_many(messages(9, 10))
    assert payloads(reopened) == [6, 7, 8, 9, 10] and reopened.dropped == 5
    reopened.close()
    assert Outbox(path, 5).dropped == 5


def test_a_batch_larger_than_the_cap_keeps_its_newest(tmp_path: Path) -> None:
    # A long outage's worth in one call must still cost the oldest, not the newest.
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, 3)
    assert outbox.put_many(messages(*range(1, 11))) == 7
    assert payloads(outbox) == [8, 9, 10] and outbox.dropped == 7
    assert outbox.put_many(messages(*range(11, 16))) == 5  # into a full outbox
    assert payloads(outbox) == [13, 14, 15] and outbox.depth() == 3 and outbox.dropped == 12
    outbox.close()
    reopened = Outbox(path, 3)
    assert reopened.put_many(messages(16)) == 1
    assert payloads(reopened) == [14, 15, 16] and reopened.dropped == 13
    reopened.close()


def test_a_cap_lowered_across_a_restart_drops_the_oldest_at_the_next_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, 10)
    outbox.put_many(messages(*range(1, 11)))
    outbox.close()
    smaller = Outbox(path, 4)
    assert smaller.put_many(messages(11)) == 7
    assert payloads(smaller) == [8, 9, 10, 11] and smaller.depth() == 4 and smaller.dropped == 7
    smaller.close()


def test_a_message_dropped_while_in_flight_is_not_counted_twice(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", 3)
    outbox.put_many(messages(1, 2, 3))
    in_flight = outbox.peek(3)
    outbox.put_many(messages(4, 5))  # drops 1 and 2 while "publishing"
    outbox.ack([i for i, _ in in_flight])
    assert payloads(outbox) == [4, 5] and outbox.depth() == 2 and outbox.dropped == 2
    outbox.close()


def test_concurrent_writers_and_a_reader(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", 100_000)
    per_thread, threads = 200, 4

    def write(k: int) -> None:
        for n in range(per_thread):
            outbox.put_many(messages(k * 10_000 + n))

    acked: list[int] = []
    done = threading.Event()

    def drain() -> None:
        while not done.is_set() or outbox.depth():
            batch = outbox.peek(50)
            outbox.ack([i for i, _ in batch])
            acked.extend(int(m.payload) for _, m in batch)

    workers = [threading.Thread(target=write, args=(k,)) for k in range(threads)]
    reader = threading.Thread(target=drain)
    reader.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    reader.join()
    assert sorted(acked) == sorted(
        k * 10_000 + n for k in range(threads) for n in range(per_thread)
    )
    for k in range(threads):  # each writer's messages come out in its order
        mine = [n for n in acked if n // 10_000 == k]
        assert mine == sorted(mine)
    assert outbox.depth() == 0
    outbox.close()


def test_rejects_a_zero_cap(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_messages"):
        Outbox(tmp_path / "o.sqlite3", 0)


def disk_rows(outbox: Outbox) -> list[bytes]:
    """The payloads on disk, read past the outbox (the memory tier is not there)."""
    with sqlite3.connect(outbox.path) as db:
        return [bytes(row[0]) for row in db.execute("SELECT payload FROM messages ORDER BY id")]


def test_full_disk_error_surfaces_and_nothing_is_half_written(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", 100)
    outbox.put_many(messages(1))
    db = outbox._db  # max_page_count is a setting of the connection
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")  # no room for another page
    big = OutboxMessage("t/big", b"x" * 100_000)
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        outbox.put_many([big])
    assert not db.in_transaction  # SQLite rolled back by itself
    assert disk_rows(outbox) == [b"1"]  # nothing half-written
    # The message the disk refused waits in memory, in order, still deliverable.
    assert [m.payload for _, m in outbox.peek(10)] == [b"1", big.payload]
    assert outbox.depth() == 2 and outbox.lost == 0
    db.execute("PRAGMA max_page_count = 1000000")  # space freed
    outbox.put_many(messages(2))  # writes what waited, then this
    assert disk_rows(outbox) == [b"1", big.payload, b"2"]
    outbox.close()


def test_with_a_broker_that_keeps_up_nothing_reaches_the_disk(tmp_path: Path) -> None:
    """The SD card's case: each cycle's messages published and acked before the
    write interval is up are never written (535 MB and 86,800 fsyncs a day before)."""
    clock = [0.0]
    outbox = Outbox(tmp_path / "o.sqlite3", 100, write_interval_s=60, monotonic=lambda: clock[0])
    for cycle in range(1000):
        outbox.put_many(messages(3 * cycle, 3 * cycle + 1, 3 * cycle + 2))
        batch = outbox.peek(50)  # the publisher
        assert [int(m.payload) for _, m in batch] == [3 * cycle, 3 * cycle + 1, 3 * cycle + 2]
        outbox.ack([i for i, _ in batch])
        clock[0] += 2.0
    assert outbox.depth() == 0
    with sqlite3.connect(outbox.path) as db:
        assert db.execute("SELECT seq FROM sqlite_sequence").fetchall() == []  # no row, ever
    outbox.close()


def test_messages_that_wait_are_written_once_per_interval_in_order(tmp_path: Path) -> None:
    clock = [0.0]
    outbox = Outbox(tmp_path / "o.sqlite3", 100, write_interval_s=60, monotonic=lambda: clock[0])
    for n in range(1, 31):  # the broker is down: a message every 2 s
        outbox.put_many(messages(n))
        clock[0] += 2.0
    # The first waited 58 s at the 30th put: all still in memory.
    assert disk_rows(outbox) == [] and payloads(outbox) == list(range(1, 31))
    outbox.put_many(messages(31))  # the first has waited 60 s: all 31 written at once
    assert disk_rows(outbox) == [str(n).encode() for n in range(1, 32)]
    clock[0] += 2.0
    outbox.put_many(messages(32))  # a new wait begins
    assert len(disk_rows(outbox)) == 31
    assert payloads(outbox) == list(range(1, 33))  # the disk's, then memory's
    batch = outbox.peek(40)
    outbox.ack([i for i, _ in batch])
    assert outbox.depth() == 0 and disk_rows(outbox) == []
    outbox.close()


def test_a_clean_shutdown_writes_what_waits_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(path, 100, write_interval_s=60)
    outbox.put_many(messages(1, 2, 3))
    outbox.ack([outbox.peek(1)[0][0]])  # 1 was delivered
    outbox.close()
    assert payloads(Outbox(path, 100)) == [2, 3]


def test_memory_is_bounded_while_the_disk_fails(tmp_path: Path) -> None:
    """The oldest beyond ``memory_max`` are lost, counted; the rest are written later."""
    outbox = Outbox(tmp_path / "o.sqlite3", 1000, memory_max=10)
    db = outbox._db
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")
    padding = b"x" * 5000
    for n in range(1, 26):
        with pytest.raises(sqlite3.OperationalError):
            outbox.put_many([OutboxMessage(f"t/{n}", str(n).encode() + padding)])
    assert outbox.lost == 15 and outbox.depth() == 10
    db.execute("PRAGMA max_page_count = 1000000")
    outbox.put_many(messages(26))
    assert [int(p.rstrip(b"x")) for p in disk_rows(outbox)] == list(range(16, 27))
    outbox.close()


def test_an_ack_for_a_message_moved_to_disk_is_harmless(tmp_path: Path) -> None:
    """Peeked from memory, written to disk before its ack (the broker slowed down):
    the ack finds nothing, and the disk's copy is sent again (at least once)."""
    clock = [0.0]
    outbox = Outbox(tmp_path / "o.sqlite3", 100, write_interval_s=60, monotonic=lambda: clock[0])
    outbox.put_many(messages(1))
    in_flight = outbox.peek(10)
    clock[0] += 60.0
    outbox.put_many(messages(2))  # due: 1 and 2 written
    outbox.ack([i for i, _ in in_flight])
    assert payloads(outbox) == [1, 2]
    outbox.close()


def test_a_full_outbox_is_logged_when_it_starts_and_stops_failing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", 1000, memory_max=100)
    publisher = MqttPublisher(MqttConfig.model_validate({"enabled": True}), "n1", 2.0, outbox)
    health = {"p": {"state": "running"}}
    publisher.enqueue_cycle([], health)
    db = outbox._db
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full
    caplog.set_level(logging.INFO, "wasihost")
    big = {f"p{i}": {"state": "running", "error": "x" * 1000} for i in range(20)}
    for _ in range(50):
        publisher.enqueue_cycle([], big)
        publisher.enqueue_cycle([], {})  # nothing to write: proves nothing
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0].startswith("MQTT outbox: cannot write to disk: database or disk is full")
    assert publisher.stats().enqueue_errors == 50
    # 20 health messages a cycle: the newest 100 wait in memory, the older 900 are lost.
    assert publisher.stats().messages_lost == 900
    assert outbox.depth() == 101  # and what was written before is kept
    assert publisher.problem is not None and "(101 messages waiting, 900 lost)" in publisher.problem
    db.execute("PRAGMA max_page_count = 1000000")  # space freed
    caplog.clear()
    publisher.enqueue_cycle([], health)
    publisher.enqueue_cycle([], health)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0].startswith("MQTT outbox: writing to disk again after")
    assert lines[0].endswith("50 cycles failed, 900 messages lost meanwhile")
    assert publisher.stats().messages_lost == 900  # since start, not reset by recovery
    assert publisher.problem is None
    assert outbox.depth() == 103
    outbox.close()
