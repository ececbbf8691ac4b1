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

Long-term statistics, as Home Assistant keeps them: each series also has a
min/mean/max (and count) per 5 minutes (``stats_5m``, kept ``short_term_days``)
and per hour (``stats_1h``, kept ``long_term_days``: years, at about 0.4 MB per
measurement per year, measured). They are maintained in the same transaction as the
samples, by recomputing every bucket a write touched (a 5-minute bucket from
its raw samples, an hour from its twelve 5-minute rows), so they are exactly
what the samples say whatever order readings arrive in (a clock stepped
back, a backlog written late), and a crash leaves them consistent. Both
tables are keyed by bucket first: a commit rewrites the one or two pages
holding the current buckets of every series, not a page per series (that is
what the samples table costs, and why commits are batched on a Pi). Only the
hourly table has a per-series index, written once per new hour; 5-minute
rows are read only for ranges short enough to scan. ``query`` picks the
resolution a range needs: raw samples up to ``RAW_MAX_RANGE_MS``, then the
finest statistics with at most the points asked for. Statistics are pruned
by recorded time, like samples.

The connection is shared by worker threads under a lock; callers run
these blocking methods off the event loop.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
CREATE TABLE IF NOT EXISTS stats_5m (
    bucket_ms INTEGER NOT NULL,
    series_id INTEGER NOT NULL REFERENCES series(id),
    n INTEGER NOT NULL,
    mean REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (bucket_ms, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stats_1h (
    bucket_ms INTEGER NOT NULL,
    series_id INTEGER NOT NULL REFERENCES series(id),
    n INTEGER NOT NULL,
    mean REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (bucket_ms, series_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS stats_1h_by_series ON stats_1h (series_id, bucket_ms);
"""

FIVE_MINUTES_MS = 300_000
HOUR_MS = 3_600_000
# Up to this range /api/history answers from raw samples (when they reach back
# that far): a day or two of readings is what a chart of hours should show.
RAW_MAX_RANGE_MS = 48 * HOUR_MS

Resolution = Literal["raw", "5m", "1h"]
RESOLUTIONS: tuple[Resolution, ...] = ("raw", "5m", "1h")
_BUCKET_MS: dict[Resolution, int] = {"5m": FIVE_MINUTES_MS, "1h": HOUR_MS}
_TABLE: dict[Resolution, str] = {"5m": "stats_5m", "1h": "stats_1h"}


# Only finite numbers are samples. The host writes nothing else, but the file
# is on disk: a tampered or damaged database may hold text, blobs or ±inf
# (SQLite stores NaN as NULL, which the schema refuses), and strict JSON has
# no way to carry them. abs() of a text is 0.0, hence the typeof().
def _finite(column: str) -> str:
    return f"typeof({column}) IN ('real', 'integer') AND abs({column}) <= 1.7976931348623157e308"


FINITE = _finite("value")
# A statistics row is usable when all of it is: a count and three finite numbers.
_STAT_OK = "typeof(n) = 'integer' AND n > 0 AND " + " AND ".join(
    _finite(c) for c in ("mean", "min", "max")
)

# Recompute the buckets a write touched. A 5-minute bucket from its samples
# (HAVING: none left means no row, not a row of NULLs); an hour from its
# 5-minute rows, weighting each mean by its count. UPSERT rather than REPLACE
# updates the row in place: the hourly index is written only for a new hour.
_UPSERT = (
    "ON CONFLICT (bucket_ms, series_id) DO UPDATE SET "
    "n = excluded.n, mean = excluded.mean, min = excluded.min, max = excluded.max"
)
_COMPILE_5M = (
    "INSERT INTO stats_5m (bucket_ms, series_id, n, mean, min, max) "
    "SELECT ?1, series_id, COUNT(*), AVG(value), MIN(value), MAX(value) FROM samples "
    f"WHERE series_id = ?2 AND ts_ms >= ?1 AND ts_ms < ?1 + {FIVE_MINUTES_MS} AND {FINITE} "
    f"GROUP BY series_id {_UPSERT}"
)
_COMPILE_1H = (
    "INSERT INTO stats_1h (bucket_ms, series_id, n, mean, min, max) "
    "SELECT ?1, series_id, SUM(n), SUM(mean * n) / SUM(n), MIN(min), MAX(max) FROM stats_5m "
    f"WHERE bucket_ms >= ?1 AND bucket_ms < ?1 + {HOUR_MS} AND series_id = ?2 AND {_STAT_OK} "
    f"GROUP BY series_id {_UPSERT}"
)


def _bucket(t_ms: int, width_ms: int) -> int:
    return t_ms - t_ms % width_ms


@dataclass(frozen=True)
class Series:
    plugin: str
    field: str
    unit: str
    since_ms: int
    until_ms: int
    points: list[tuple[int, float]]
    downsampled: bool
    resolution: Resolution = "raw"
    # Per point, the (min, max) it summarises: empty for raw samples shown as they are.
    extents: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """Points are ``[t, value]``, or ``[t, mean, min, max]`` when they summarise
        several samples (downsampled, or statistics; ``t`` is then the bucket start)."""
        if self.extents:
            points = [
                [t, v, lo, hi] for (t, v), (lo, hi) in zip(self.points, self.extents, strict=True)
            ]
        else:
            points = [[t, v] for t, v in self.points]
        return {
            "plugin": self.plugin,
            "field": self.field,
            "unit": self.unit,
            "since": self.since_ms,
            "until": self.until_ms,
            "points": points,
            "downsampled": self.downsampled,
            "resolution": self.resolution,
        }


class History:
    def __init__(
        self,
        path: Path,
        retention_days: float = 7.0,
        short_term_days: float = 10.0,
        long_term_days: float = 3650.0,
    ) -> None:
        self.path = path
        self.retention_ms = int(retention_days * 86_400_000)
        self.short_term_ms = int(short_term_days * 86_400_000)
        self.long_term_ms = int(long_term_days * 86_400_000)
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
                    self._compile(rows)
            except BaseException:
                # Whatever failed, ids cached in this transaction may name series
                # rows that were rolled back (by us or by SQLite); refilled lazily.
                self._series.clear()
                raise
        return len(rows)

    def _compile(self, rows: list[tuple[int, int, float]]) -> None:
        """Recompute the statistics of every bucket ``rows`` (series, stamp, value) fall in."""
        fives = {(_bucket(t, FIVE_MINUTES_MS), series) for series, t, _ in rows}
        hours = {(_bucket(b, HOUR_MS), series) for b, series in fives}
        self._db.executemany(_COMPILE_5M, sorted(fives))
        self._db.executemany(_COMPILE_1H, sorted(hours))

    def compile_missing(self) -> int:
        """Compute the statistics of samples stored before statistics existed (a
        database from an older version); returns the 5-minute buckets computed.

        Once per database: after it, every write keeps them. Done in pages of
        samples so the lock is never held for long (a week of three plugins is
        millions of rows; on a Pi a few minutes).
        """
        with self._lock:
            if self._db.execute("SELECT 1 FROM stats_5m LIMIT 1").fetchone() is not None:
                return 0
            series_ids = [row[0] for row in self._db.execute("SELECT id FROM series")]
        if series_ids:
            log.info(
                "history: computing the statistics of the samples of %d series stored "
                "before statistics were kept (once; readings are saved meanwhile)",
                len(series_ids),
            )
        done = 0
        for series_id in series_ids:
            t = _NO_STAMP
            while True:
                with self._lock:
                    stamps = [
                        row[0]
                        for row in self._db.execute(
                            "SELECT ts_ms FROM samples WHERE series_id = ? AND ts_ms > ? "
                            "ORDER BY ts_ms LIMIT 20000",
                            (series_id, t),
                        )
                    ]
                    if not stamps:
                        break
                    rows = [(series_id, stamp, 0.0) for stamp in stamps]
                    with sqlite.transaction(self._db):
                        self._compile(rows)
                    done += len({_bucket(stamp, FIVE_MINUTES_MS) for stamp in stamps})
                    t = stamps[-1]
        return done

    def resolution_for(
        self, series_id: int, since_ms: int, until_ms: int, max_points: int
    ) -> Resolution:
        """Raw samples for ranges up to ``RAW_MAX_RANGE_MS`` unless statistics reach
        further back in the range than they do (older than the raw retention);
        beyond, the finest statistics with at most ``max_points`` buckets."""
        span = until_ms - since_ms
        if span <= RAW_MAX_RANGE_MS:
            (oldest,) = self._db.execute(
                "SELECT MIN(ts_ms) FROM samples WHERE series_id = ? AND ts_ms >= ?",
                (series_id, since_ms),
            ).fetchone()
            if oldest is None or oldest - since_ms < FIVE_MINUTES_MS:
                older = None
            else:
                older = self._db.execute(
                    "SELECT 1 FROM stats_5m WHERE bucket_ms > ? AND bucket_ms < ? "
                    "AND series_id = ? LIMIT 1",
                    (since_ms - FIVE_MINUTES_MS, _bucket(int(oldest), FIVE_MINUTES_MS), series_id),
                ).fetchone()
            if older is None:
                return "raw"
        return "5m" if span <= max_points * FIVE_MINUTES_MS else "1h"

    def query(
        self,
        plugin: str,
        field: str,
        since_ms: int,
        until_ms: int,
        max_points: int = 500,
        resolution: Resolution | Literal["auto"] = "raw",
    ) -> Series:
        """The series between ``since_ms`` and ``until_ms`` (inclusive), at most
        ``max_points`` points, at ``resolution`` ("auto": the one the range needs,
        as /api/history asks); empty when the plugin never reported ``field`` (yet)."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, unit FROM series WHERE plugin = ? AND field = ?", (plugin, field)
            ).fetchone()
            if row is None:
                shown: Resolution = "raw" if resolution == "auto" else resolution
                return Series(plugin, field, "", since_ms, until_ms, [], False, shown)
            series_id, unit = row
            if resolution == "auto":
                resolution = self.resolution_for(series_id, since_ms, until_ms, max_points)
            if resolution != "raw":
                return self._statistics(
                    plugin, field, unit, series_id, since_ms, until_ms, max_points, resolution
                )
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM samples "
                f"WHERE series_id = ? AND ts_ms BETWEEN ? AND ? AND {FINITE}",
                (series_id, since_ms, until_ms),
            ).fetchone()
            downsampled = count > max_points
            points: list[tuple[int, float]] = []
            extents: list[tuple[float, float]] = []
            if downsampled:
                bucket = max(1, -(-(until_ms - since_ms + 1) // max_points))
                cursor = self._db.execute(
                    "SELECT CAST(AVG(ts_ms) AS INTEGER), AVG(value), MIN(value), MAX(value) "
                    f"FROM samples WHERE series_id = ? AND ts_ms BETWEEN ? AND ? AND {FINITE} "
                    "GROUP BY (ts_ms - ?) / ? ORDER BY 1",
                    (series_id, since_ms, until_ms, since_ms, bucket),
                )
                # An average of finite values can still overflow to inf: that bucket is dropped.
                for t, v, lo, hi in cursor:
                    if math.isfinite(v):
                        points.append((int(t), float(v)))
                        extents.append((float(lo), float(hi)))
            else:
                cursor = self._db.execute(
                    "SELECT ts_ms, value FROM samples "
                    f"WHERE series_id = ? AND ts_ms BETWEEN ? AND ? AND {FINITE} ORDER BY ts_ms",
                    (series_id, since_ms, until_ms),
                )
                points = [(int(t), float(v)) for t, v in cursor]
        return Series(plugin, field, unit, since_ms, until_ms, points, downsampled, "raw", extents)

    def _statistics(
        self,
        plugin: str,
        field: str,
        unit: str,
        series_id: int,
        since_ms: int,
        until_ms: int,
        max_points: int,
        resolution: Resolution,
    ) -> Series:
        """The buckets overlapping the range, merged in groups when more than
        ``max_points`` (counts weight the means). Caller holds the lock."""
        width = _BUCKET_MS[resolution]
        table = _TABLE[resolution]
        # The hourly table has a per-series index; 5-minute rows are found by time.
        where = (
            f"FROM {table} WHERE series_id = ? AND bucket_ms > ? AND bucket_ms <= ? AND {_STAT_OK}"
            if resolution == "1h"
            else f"FROM {table} WHERE bucket_ms > ? AND bucket_ms <= ? AND series_id = ? "
            f"AND {_STAT_OK}"
        )
        bounds = (since_ms - width, until_ms)
        args = (series_id, *bounds) if resolution == "1h" else (*bounds, series_id)
        (count,) = self._db.execute(f"SELECT COUNT(*) {where}", args).fetchone()
        downsampled = count > max_points
        if downsampled:
            group = -(-(until_ms - since_ms + width) // max_points)
            group = -(-group // width) * width  # whole buckets per point
            cursor = self._db.execute(
                "SELECT MIN(bucket_ms), SUM(mean * n) / SUM(n), MIN(min), MAX(max) "
                f"{where} GROUP BY (bucket_ms - ?) / ? ORDER BY 1",
                (*args, _bucket(since_ms, width), group),
            )
        else:
            cursor = self._db.execute(
                f"SELECT bucket_ms, mean, min, max {where} ORDER BY bucket_ms", args
            )
        points: list[tuple[int, float]] = []
        extents: list[tuple[float, float]] = []
        for t, v, lo, hi in cursor:
            # A weighted mean of finite values can still overflow: that point is dropped.
            if math.isfinite(v):
                points.append((int(t), float(v)))
                extents.append((float(lo), float(hi)))
        return Series(
            plugin, field, unit, since_ms, until_ms, points, downsampled, resolution, extents
        )

    def fields(self) -> list[tuple[str, str, str]]:
        """Every (plugin, field, unit) ever stored."""
        with self._lock:
            return list(self._db.execute("SELECT plugin, field, unit FROM series ORDER BY 1, 2"))

    def prune(self, now_ms: int) -> int:
        """Delete the samples past the retention of recorded time (see the module
        docstring) and before ``now_ms`` minus the retention, and the statistics
        past theirs the same way; returns how many samples."""
        removed = 0
        tables = (
            ("samples", "ts_ms", self.retention_ms, 1),
            ("stats_5m", "bucket_ms", self.short_term_ms, FIVE_MINUTES_MS),
            ("stats_1h", "bucket_ms", self.long_term_ms, HOUR_MS),
        )
        with self._lock, sqlite.transaction(self._db):
            for table, column, retention_ms, width in tables:
                for low, high in ((_NO_STAMP, SANE_EPOCH_MS), (SANE_EPOCH_MS, None)):
                    cutoff = self._recorded_cutoff(table, column, retention_ms, low, high)
                    if cutoff is None:
                        continue
                    calendar = now_ms - retention_ms
                    gaps = cutoff < calendar - MAX_GAP_MS
                    if gaps and table == "samples" and not self._said_gaps:
                        self._said_gaps = True
                        log.info(
                            "history: keeping samples older than %.1f days by the wall clock: "
                            "retention counts recorded time, and the stored stamps have gaps "
                            "(the host was off, or the clock stepped forward)",
                            self.retention_ms / 86_400_000,
                        )
                    # Samples go only in whole 5-minute buckets: a bucket is recomputed
                    # from its samples whenever one arrives, so none may be missing.
                    below = min(cutoff, calendar)
                    below = _bucket(below, FIVE_MINUTES_MS) if table == "samples" else below
                    cursor = self._db.execute(
                        f"DELETE FROM {table} WHERE {column} >= ? AND {column} < ?",
                        (low, below - width + 1),
                    )
                    if table == "samples":
                        removed += cursor.rowcount
        return removed

    def _recorded_cutoff(
        self, table: str, column: str, retention_ms: int, low: int, high: int | None
    ) -> int | None:
        """The stamp in ``[low, high)`` below which lies more than ``retention_ms`` of
        recorded time in ``table``, walking back from the newest stamp there and
        skipping gaps over ``MAX_GAP_MS``; None if there is not that much.

        Index seeks only, about one per ``MAX_GAP_MS`` of stored time.
        """
        top_sql = f"SELECT MAX({column}) FROM {table} WHERE {column} >= ? AND {column} < ?"
        step_sql = f"SELECT MIN({column}) FROM {table} WHERE {column} >= ? AND {column} < ?"
        (top,) = self._db.execute(top_sql, (low, 2**63 - 1 if high is None else high)).fetchone()
        need = retention_ms
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
