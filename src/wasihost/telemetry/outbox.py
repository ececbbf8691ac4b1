"""The FIFO of MQTT messages waiting for the broker: in memory, and in SQLite
when they wait long.

Every message the host wants to publish goes through here, connected or not,
so one code path covers the normal case and an outage: the publisher reads
the oldest messages (``peek``), publishes them, and only then deletes them
(``ack``).

Two tiers, because an SD card pays for every write. A message first waits in
memory; it is written to SQLite only once the oldest message in memory has
waited ``write_interval_s`` (the broker is down, or slow), or memory holds
``memory_max`` messages, or the outbox is closed. With a broker that keeps up,
messages are published and acked within milliseconds and never touch the
disk: measured by ``python -m bench.run --only disk``, writing each cycle's
nine messages of the seed plugins and deleting them once acked cost 535 MB and
86,800 fsyncs a day. Every message in memory is newer than every message on
disk (only memory is appended to, and a write moves all of it to the end of
the disk's queue), so ``peek`` reads the disk first, then memory, and the
order holds. ``write_interval_s = 0`` writes every ``put_many`` at once, as
before this tier existed. The trade-off, as for history's commits: a crash or
power cut loses the messages in memory (up to ``write_interval_s`` of them
while the broker is down; while it keeps up, the last cycle's, which the next
cycle's state replaces); a clean shutdown writes them.

Durability on disk: WAL with ``synchronous=FULL``, so a written message
survives a power cut too. It costs one fsync per write and per drained batch.

Capacity: at most ``max_messages`` rows on disk after each write, which deletes
the oldest beyond it in its own transaction (so a write larger than the cap
keeps its newest, and a cap lowered across a restart applies at the next
write) and counts them in ``dropped``, stored in the same database so the count
survives restarts. When the disk cannot be written (full, a failing card), the
messages stay in memory, still published if the broker is there, and are
written at the next ``put_many``; beyond ``memory_max`` the oldest are lost
and counted in ``lost`` (since start). Disk ids come from ``AUTOINCREMENT``, so
they are never reused; memory ids are negative.

Thread rules: everything is shared under one lock; the host calls
``put_many`` from a worker thread and the publisher calls ``peek``/``ack``
via ``asyncio.to_thread``. Every method blocks briefly on disk I/O at most,
never on the network.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
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

log = logging.getLogger("wasihost.mqtt")

# Messages kept in memory at most: about 110 cycles of the seed plugins' nine.
MEMORY_MAX = 1_000


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One MQTT publication: ``payload`` bytes to ``topic`` with ``qos`` and ``retain``."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class Outbox:
    """A bounded, persistent, thread-safe FIFO of ``OutboxMessage``."""

    def __init__(
        self,
        path: Path,
        max_messages: int,
        write_interval_s: float = 0.0,
        memory_max: int = MEMORY_MAX,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        self.path = path
        self.max_messages = max_messages
        self.write_interval_s = write_interval_s
        self.memory_max = memory_max
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._db = sqlite.connect(path, synchronous="FULL", schema=SCHEMA)
        (depth,) = self._db.execute("SELECT COUNT(*) FROM messages").fetchone()
        (dropped,) = self._db.execute(
            "SELECT value FROM counters WHERE name = 'dropped'"
        ).fetchone()
        self._depth = int(depth)
        self._dropped = int(dropped)
        # (id, message, when it arrived on the monotonic clock), oldest first.
        self._memory: deque[tuple[int, OutboxMessage, float]] = deque()
        self._next_memory_id = -1
        self.lost = 0  # dropped from memory while the disk could not be written

    def put_many(self, messages: Iterable[OutboxMessage]) -> int:
        """Queue ``messages``; write what is due to disk (see the module
        docstring); returns how many the disk's cap dropped. A failing write
        raises, with the messages kept in memory (``lost`` counts any that no
        longer fit)."""
        now = self._monotonic()
        with self._lock:
            for message in messages:
                self._memory.append((self._next_memory_id, message, now))
                self._next_memory_id -= 1
            if not self._memory:
                return 0
            due = (
                now - self._memory[0][2] >= self.write_interval_s
                or len(self._memory) >= self.memory_max
            )
            if not due:
                return 0
            try:
                return self._write_memory()
            except BaseException:
                overflow = len(self._memory) - self.memory_max
                for _ in range(max(0, overflow)):
                    self._memory.popleft()
                self.lost += max(0, overflow)
                raise

    def _write_memory(self) -> int:
        """Move every message in memory to the end of the disk's queue, in one
        transaction, then drop the oldest beyond the cap. Caller holds the lock."""
        rows = [(m.topic, m.payload, m.qos, int(m.retain)) for _, m, _ in self._memory]
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
        self._memory.clear()
        self._depth = depth - over
        self._dropped += over
        return over

    def peek(self, limit: int) -> list[tuple[int, OutboxMessage]]:
        """Up to ``limit`` of the oldest messages with their ids, oldest first
        (the disk's, then memory's); they stay queued until ``ack``."""
        with self._lock:
            cursor = self._db.execute(
                "SELECT id, topic, payload, qos, retain FROM messages ORDER BY id LIMIT ?",
                (limit,),
            )
            batch = [
                (int(row_id), OutboxMessage(topic, bytes(payload), int(qos), bool(retain)))
                for row_id, topic, payload, qos, retain in cursor
            ]
            for memory_id, message, _ in self._memory:
                if len(batch) >= limit:
                    break
                batch.append((memory_id, message))
            return batch

    def ack(self, ids: Sequence[int]) -> None:
        """Delete delivered messages. Ids already gone (dropped by the cap
        while their publish was in flight, or moved from memory to disk, which
        then sends them again) are ignored."""
        if not ids:
            return
        on_disk = [(i,) for i in ids if i > 0]
        in_memory = {i for i in ids if i < 0}
        with self._lock:
            if in_memory:
                self._memory = deque(item for item in self._memory if item[0] not in in_memory)
            if on_disk:
                with sqlite.transaction(self._db, "IMMEDIATE"):
                    cursor = self._db.executemany("DELETE FROM messages WHERE id = ?", on_disk)
                self._depth -= cursor.rowcount

    def depth(self) -> int:
        """Messages waiting, in memory and on disk (no query)."""
        return self._depth + len(self._memory)

    @property
    def dropped(self) -> int:
        """Messages deleted by the cap since the database was created."""
        return self._dropped

    def close(self) -> None:
        """Write what waits in memory (a clean shutdown loses nothing), then close."""
        with self._lock:
            if self._memory:
                waiting = len(self._memory)
                try:
                    self._write_memory()
                except Exception as exc:  # sqlite3.Error, OSError: the disk is full or failing
                    self.lost += waiting
                    log.error(
                        "MQTT outbox: %d messages not written at shutdown, lost: %s", waiting, exc
                    )
            self._db.close()
