"""A durable FIFO of MQTT messages waiting for the broker, in SQLite.

Every message the host wants to publish goes through here, connected or not,
so one code path covers the normal case and an outage: the publisher reads
the oldest messages (``peek``), publishes them, and only then deletes them
(``ack``). A crash or restart between the two re-sends, never loses.

Durability: WAL with ``synchronous=FULL``, so a committed ``put_many`` survives
a power cut too (history can afford ``NORMAL``; the outbox promises
"nothing lost"). It costs one fsync per cycle and one per drained batch.

Capacity: at most ``max_messages`` rows after each ``put_many``, which
deletes the oldest beyond it in its own transaction (so a batch larger than
the cap keeps its newest, and a cap lowered across a restart applies at the
next write) and counts them in ``dropped``, stored in the same database so the
count survives restarts. Messages ``put_many`` could not write at all (a full
disk) never got here: the publisher counts those. Ids come from ``AUTOINCREMENT``, so they are never
reused and ``ORDER BY id`` is the order messages were produced in.

Thread rules: the connection is shared under a lock; the host calls
``put_many`` from a worker thread and the publisher calls ``peek``/``ack``
via ``asyncio.to_thread``. Every method blocks briefly on disk I/O, never on
the network.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wasihost.telemetry import sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
"""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One MQTT publication: ``payload`` bytes to ``topic`` with ``qos`` and ``retain``."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class Outbox:
    """A bounded, persistent, thread-safe FIFO of ``OutboxMessage``."""

    def __init__(self, path: Path, max_messages: int) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        self.path = path
        self.max_messages = max_messages
        self._lock = threading.Lock()
        self._db = sqlite.connect(path, synchronous="FULL", schema=SCHEMA)
        (depth,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
        (dropped,) = self._db.execute(
            "SELECT value FROM counters WHERE name = 'dropped'"
        ).fetchone()
        self._depth = int(depth)
        self._dropped = int(dropped)

    def put_many(self, messages: Iterable[OutboxMessage]) -> int:
        """Append ``messages`` in one transaction, then drop the oldest beyond
        the cap; returns how many were dropped by this call."""
        rows = [(m.topic, m.payload, m.qos, int(m.retain)) for m in messages]
        if not rows:
            return 0
        with self._lock:
            with sqlite.transaction(self._db, "IMMEDIATE"):
                self._db.executemany(
                    "INSERT INTO messages (topic, payload, qos, retain) VALUES (?, ?, ?, ?)", rows
                )
                depth = self._depth + len(rows)
                over = max(0, depth - self.max_messages)
                if over:
                    self._db.execute(
                        "DELETE FROM messages WHERE id IN "
                        "(SELECT id FROM messages ORDER BY id LIMIT ?)",
                        (over,),
                    )
                    self._db.execute(
                        "UPDATE counters SET value = value + ? WHERE name = 'dropped'", (over,)
                    )
            self._depth = depth - over
            self._dropped += over
        return over

    def peek(self, limit: int) -> list[tuple[int, OutboxMessage]]:
        """Up to ``limit`` of the oldest messages with their ids, oldest first;
        they stay in the outbox until ``ack``."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT id, topic, payload, qos, retain FROM messages ORDER BY id LIMIT ?",
                (limit,),
            )
            return [
                (int(row_id), OutboxMessage(topic, bytes(payload), int(qos), bool(retain)))
                for row_id, topic, payload, qos, retain in cursor
            ]

    def ack(self, ids: Sequence[int]) -> None:
        """Delete delivered messages. Ids already gone (dropped by the cap
        while their publish was in flight) are ignored."""
        if not ids:
            return
        with self._lock:
            with sqlite.transaction(self._db, "IMMEDIATE"):
                cursor = self._db.executemany(
                    "DELETE FROM messages WHERE id = ?", [(i,) for i in ids]
                )
            self._depth -= cursor.rowcount

    def depth(self) -> int:
        """Messages waiting (cached; no query)."""
        return self._depth

    @property
    def dropped(self) -> int:
        """Messages deleted by the cap since the database was created."""
        return self._dropped

    def close(self) -> None:
        with self._lock:
            self._db.close()
