"""Reading history in SQLite.

WAL mode and one transaction per ``write`` (the host's commit: each cycle, or
each ``[history] commit_interval_seconds``): a crash loses at most the readings
not yet written, and readers (the web API) never block the writer. Long
ranges are downsampled in SQL by averaging fixed time buckets, so a 24 h
chart costs a few hundred rows on the wire whatever the poll interval.

Retention counts recorded time, not the calendar. Samples are stamped with
the wall clock, and on a Pi without a real-time clock that starts in 1970 (or
at the last shutdown) and NTP steps it by hours to decades, sometimes back.
Were the cutoff simply "now minus the retention", one forward step would
delete everything. So ``prune`` keeps the newest ``retention_days`` of the
stored timeline, walking back from the newest stamp and skipping every gap
longer than ``MAX_GAP_MS`` (a clock step, or the host being off: the two look
the same in the data), and never deletes a sample within the retention of
``now_ms`` either (a clock stepped back deletes nothing). A host that runs on
prunes exactly as "now minus the retention" would; after a gap, older samples
stay until a retention's worth has been recorded since (the database holds
at most about a retention of recorded time, whatever the clock did).

Stamps before ``SANE_EPOCH_MS`` (2020) are readings taken before the clock
was set. They are kept, as real readings with a wrong stamp, on a timeline
of their own: the synced readings above them are not recorded time of
theirs, and a node that never syncs (all of its stamps in 1970) is pruned
the same way within them.

The connection is shared by worker threads under a lock; callers run
these blocking methods off the event loop.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wasihost.clock import SANE_EPOCH_MS
from wasihost.model import Reading
from wasihost.telemetry import sqlite

log = logging.getLogger("wasihost.history")

# A longer gap between stored stamps is not recorded time: the clock stepped, or
# the host was off. Twice the longest poll interval ([polling] interval_seconds <= 1 h),
# so a running host's gaps all count; a clock step shorter than this counts as time.
MAX_GAP_MS = 2 * 3_600_000
_NO_STAMP = -(2**63)

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    plugin TEXT NOT NULL,
    field TEXT NOT NULL,
    unit TEXT NOT NULL,
    device_class TEXT NOT NULL,
    UNIQUE (plugin, field)
);
CREATE TABLE IF NOT EXISTS samples (
    series_id INTEGER NOT NULL REFERENCES series(id),
    ts_ms INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (series_id, ts_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_by_time ON samples (ts_ms);
"""


# Only finite numbers are samples. The host writes nothing else, but the file
# is on disk: a tampered or damaged database may hold text, blobs or ±inf
# (SQLite stores NaN as NULL, which the schema refuses), and strict JSON has
# no way to carry them. abs() of a text is 0.0, hence the typeof().
FINITE = "typeof(value) IN ('real', 'integer') AND abs(value) <= 1.7976931348623157e308"


@dataclass(frozen=True)
class Series:
    plugin: str
    field: str
    unit: str
    since_ms: int
    until_ms: int
    points: list[tuple[int, float]]
    downsampled: bool

    def to_json(self) -> dict[str, object]:
        return {
            "plugin": self.plugin,
            "field": self.field,
            "unit": self.unit,
            "since": self.since_ms,
            "until": self.until_ms,
            "points": [[t, v] for t, v in self.points],
            "downsampled": self.downsampled,
        }


class History:
    def __init__(self, path: Path, retention_days: float = 7.0) -> None:
        self.path = path
        self.retention_ms = int(retention_days * 86_400_000)
        self._lock = threading.Lock()
        self._said_gaps = False  # the gaps in the timeline were logged once
        # synchronous=NORMAL: durable at each WAL checkpoint
        self._db = sqlite.connect(path, synchronous="NORMAL", schema=SCHEMA)
        self._series: dict[tuple[str, str], int] = {
            (plugin, field): series_id
            for series_id, plugin, field in self._db.execute("SELECT id, plugin, field FROM series")
        }

    def _series_id(self, plugin: str, field: str, unit: str, device_class: str) -> int:
        key = (plugin, field)
        if key not in self._series:
            self._db.execute(
                "INSERT INTO series (plugin, field, unit, device_class) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (plugin, field) DO UPDATE SET unit = excluded.unit",
                (plugin, field, unit, device_class),
            )
            row = self._db.execute(
                "SELECT id FROM series WHERE plugin = ? AND field = ?", key
            ).fetchone()
            self._series[key] = int(row[0])
        return self._series[key]

    def write(self, readings: Iterable[Reading]) -> int:
        """Store one cycle's readings in one transaction; returns the samples written."""
        rows = []
        with self._lock:
            try:
                with sqlite.transaction(self._db):
                    for reading in readings:
                        for m in reading.measurements:
                            series = self._series_id(m.plugin, m.name, m.unit, m.device_class)
                            rows.append((series, m.timestamp_ms, m.value))
                    self._db.executemany(
                        "INSERT OR REPLACE INTO samples (series_id, ts_ms, value) VALUES (?, ?, ?)",
                        rows,
                    )
            except BaseException:
                # Whatever failed, ids cached in this transaction may name series
                # rows that were rolled back (by us or by SQLite); refilled lazily.
                self._series.clear()
                raise
        return len(rows)

    def query(
        self, plugin: str, field: str, since_ms: int, until_ms: int, max_points: int = 500
    ) -> Series:
        """The series between ``since_ms`` and ``until_ms`` (inclusive), at most
        ``max_points`` points; empty when the plugin never reported ``field`` (yet)."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, unit FROM series WHERE plugin = ? AND field = ?", (plugin, field)
            ).fetchone()
            if row is None:
                return Series(plugin, field, "", since_ms, until_ms, [], False)
            series_id, unit = row
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM samples "
                f"WHERE series_id = ? AND ts_ms BETWEEN ? AND ? AND {FINITE}",
                (series_id, since_ms, until_ms),
            ).fetchone()
            downsampled = count > max_points
            if downsampled:
                bucket = max(1, -(-(until_ms - since_ms + 1) // max_points))
                cursor = self._db.execute(
                    "SELECT CAST(AVG(ts_ms) AS INTEGER), AVG(value) FROM samples "
                    f"WHERE series_id = ? AND ts_ms BETWEEN ? AND ? AND {FINITE} "
                    "GROUP BY (ts_ms - ?) / ? ORDER BY 1",
                    (series_id, since_ms, until_ms, since_ms, bucket),
                )
            else:
                cursor = self._db.execute(
                    "SELECT ts_ms, value FROM samples "
                    f"WHERE series_id = ? AND ts_ms BETWEEN ? AND ? AND {FINITE} ORDER BY ts_ms",
                    (series_id, since_ms, until_ms),
                )
            # An average of finite values can still overflow to inf: that bucket is dropped.
            points = [(int(t), float(v)) for t, v in cursor if math.isfinite(v)]
        return Series(plugin, field, unit, since_ms, until_ms, points, downsampled)

    def fields(self) -> list[tuple[str, str, str]]:
        """Every (plugin, field, unit) ever stored."""
        with self._lock:
            return list(self._db.execute("SELECT plugin, field, unit FROM series ORDER BY 1, 2"))

    def prune(self, now_ms: int) -> int:
        """Delete the samples past the retention of recorded time (see the module
        docstring) and before ``now_ms`` minus the retention; returns how many."""
        removed = 0
        with self._lock, sqlite.transaction(self._db):
            for low, high in ((_NO_STAMP, SANE_EPOCH_MS), (SANE_EPOCH_MS, None)):
                cutoff = self._recorded_cutoff(low, high)
                if cutoff is None:
                    continue
                calendar = now_ms - self.retention_ms
                if cutoff < calendar - MAX_GAP_MS and not self._said_gaps:
                    self._said_gaps = True
                    log.info(
                        "history: keeping samples older than %.1f days by the wall clock: "
                        "retention counts recorded time, and the stored stamps have gaps "
                        "(the host was off, or the clock stepped forward)",
                        self.retention_ms / 86_400_000,
                    )
                cursor = self._db.execute(
                    "DELETE FROM samples WHERE ts_ms >= ? AND ts_ms < ?",
                    (low, min(cutoff, calendar)),
                )
                removed += cursor.rowcount
        return removed

    def _recorded_cutoff(self, low: int, high: int | None) -> int | None:
        """The stamp in ``[low, high)`` below which lies more than the retention of
        recorded time, walking back from the newest stamp there and skipping gaps
        over ``MAX_GAP_MS``; None if there is not that much.

        Index seeks only, about one per ``MAX_GAP_MS`` of stored time.
        """
        top_sql = "SELECT MAX(ts_ms) FROM samples WHERE ts_ms >= ? AND ts_ms < ?"
        step_sql = "SELECT MIN(ts_ms) FROM samples WHERE ts_ms >= ? AND ts_ms < ?"
        (top,) = self._db.execute(top_sql, (low, 2**63 - 1 if high is None else high)).fetchone()
        need = self.retention_ms
        while top is not None:
            run_top = t = int(top)
            # Down this run, a gap of at most MAX_GAP_MS at a time.
            while (
                step := self._db.execute(step_sql, (max(low, t - MAX_GAP_MS), t)).fetchone()[0]
            ) is not None:
                if run_top - step >= need:
                    return run_top - need
                t = int(step)
            need -= run_top - t
            (top,) = self._db.execute(top_sql, (low, t)).fetchone()
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()
