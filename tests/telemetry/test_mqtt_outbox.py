"""The durable MQTT outbox: order, acks, the cap, restarts, threads."""

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
    assert payloads(outbox) == [1] and outbox.depth() == 1
    db.execute("PRAGMA max_page_count = 1000000")  # space freed
    outbox.put_many(messages(2))
    assert payloads(outbox) == [1, 2] and outbox.depth() == 2
    outbox.close()


def test_a_full_outbox_is_logged_when_it_starts_and_stops_failing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", 100)
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
    assert lines[0].startswith("MQTT outbox: cannot queue messages: database or disk is full")
    assert publisher.stats().enqueue_errors == 50
    assert publisher.stats().messages_lost == 1000  # 20 health messages a cycle
    assert outbox.depth() == 1  # what was queued before is kept
    db.execute("PRAGMA max_page_count = 1000000")  # space freed
    caplog.clear()
    publisher.enqueue_cycle([], health)
    publisher.enqueue_cycle([], health)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert lines[0].startswith("MQTT outbox: queueing again after")
    assert lines[0].endswith("50 cycles failed, 1000 messages lost meanwhile")
    assert publisher.stats().messages_lost == 1000  # since start, not reset by recovery
    assert outbox.depth() == 3
    outbox.close()
