"""Reading history in SQLite.

WAL mode and one transaction per ``write`` (the host's commit: each cycle, or
each ``[history] commit_interval_seconds``): a crash loses at most the readings
not yet written, and readers (the web API) never block the writer. Long
ranges are downsampled in SQL by averaging fixed time buckets, so a 24 h
chart costs a few hundred rows on the wire whatever the poll interval.

The layout is chosen for the SD card. Samples live in one ``timeline`` keyed
by time first (``ts_ms << SERIES_BITS | series_id``, SQLite's rowid), so a
commit appends every series' samples to the same last pages. Keyed by series
first (the layout before, and the obvious one), a commit rewrote at least a
page per series, and SQLite's balancing of such a B-tree several: 61 WAL
frames (250 KB) a commit for the seed plugins' 16 measurements against 6 now,
measured by ``python -m bench.run --only disk``. The price is on the read
side: one series' samples over a range are found by scanning every series'
in it, 1.6 ms an hour and 10 ms for 6 h of 16 measurements here, so raw
samples serve ranges up to ``RAW_MAX_RANGE_MS`` and statistics the longer
ones (which charts want anyway: a 24 h chart is 288 five-minute rows with
their min and max).

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
tables are keyed by bucket first, like the timeline: a commit rewrites the
one or two pages holding the current buckets of every series. Only the
hourly table has a per-series index, written once per new hour; 5-minute
rows are read only for ranges short enough to scan. ``query`` picks the
resolution a range needs: raw samples while they span up to ``RAW_MAX_RANGE_MS``,
then the finest statistics with at most four times the points asked for
(merged to those points). Statistics are pruned
by recorded time, like samples.

The connection is shared by worker threads under a lock; callers run
these blocking methods off the event loop.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
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

# Statistics per bucket and series: the 5-minute and the hourly table.
_STATS_TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    bucket_ms INTEGER NOT NULL,
    series_id INTEGER NOT NULL REFERENCES series(id),
    n INTEGER NOT NULL,
    mean REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (bucket_ms, series_id)
) WITHOUT ROWID;"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    plugin TEXT NOT NULL,
    field TEXT NOT NULL,
    unit TEXT NOT NULL,
    device_class TEXT NOT NULL,
    UNIQUE (plugin, field)
);
CREATE TABLE IF NOT EXISTS timeline (
    id INTEGER PRIMARY KEY,  -- ts_ms << SERIES_BITS | series_id: time first
    series_id INTEGER NOT NULL REFERENCES series(id),
    value REAL NOT NULL
);
{stats_5m}
{stats_1h}
CREATE INDEX IF NOT EXISTS stats_1h_by_series ON stats_1h (series_id, bucket_ms);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
""".format(
    stats_5m=_STATS_TABLE.format(name="stats_5m"), stats_1h=_STATS_TABLE.format(name="stats_1h")
)

# A sample's key in the timeline: its stamp, then its series in the low bits.
SERIES_BITS = 12
MAX_SERIES = 1 << SERIES_BITS  # measurements per node; more are refused, logged once

FIVE_MINUTES_MS = 300_000
HOUR_MS = 3_600_000
# Up to this range /api/history answers from raw samples by default (when they
# reach back that far), and at most this one when asked for raw: reading one
# series scans every series' samples in the range (the price of writing a
# commit's samples to a few pages), 10 ms for 16 series over 6 h here.
RAW_MAX_RANGE_MS = 6 * HOUR_MS
RAW_LIMIT_RANGE_MS = 48 * HOUR_MS
# Statistics at a resolution up to this many times the points asked for are
# read and merged; beyond, the next coarser resolution.
STATISTICS_OVERSAMPLE = 4

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

# Recompute the buckets a write touched, for every series at once (they lie
# together in time): a 5-minute bucket from its samples, an hour from its
# 5-minute rows, weighting each mean by its count. UPSERT rather than REPLACE
# updates a row in place: the hourly index is written only for a new hour.
_UPSERT = (
    "ON CONFLICT (bucket_ms, series_id) DO UPDATE SET "
    "n = excluded.n, mean = excluded.mean, min = excluded.min, max = excluded.max"
)
_COMPILE_5M = (
    "INSERT INTO stats_5m (bucket_ms, series_id, n, mean, min, max) "
    "SELECT ?1, series_id, COUNT(*), AVG(value), MIN(value), MAX(value) FROM timeline "
    f"WHERE id >= ?1 << {SERIES_BITS} AND id < (?1 + {FIVE_MINUTES_MS}) << {SERIES_BITS} "
    f"AND {FINITE} GROUP BY series_id {_UPSERT}"
)
_COMPILE_1H = (
    "INSERT INTO stats_1h (bucket_ms, series_id, n, mean, min, max) "
    "SELECT ?1, series_id, SUM(n), SUM(mean * n) / SUM(n), MIN(min), MAX(max) FROM stats_5m "
    f"WHERE bucket_ms >= ?1 AND bucket_ms < ?1 + {HOUR_MS} AND {_STAT_OK} "
    f"GROUP BY series_id {_UPSERT}"
)


def _summaries(
    rows: Iterable[tuple[int, float, float, float]],
) -> tuple[list[tuple[int, float]], list[tuple[float, float]]]:
    """(points, extents) of ``(t, mean, min, max)`` rows. A mean of finite values
    can still overflow to inf: that row is dropped."""
    points: list[tuple[int, float]] = []
    extents: list[tuple[float, float]] = []
    for t, v, lo, hi in rows:
        if math.isfinite(v):
            points.append((int(t), float(v)))
            extents.append((float(lo), float(hi)))
    return points, extents


def _bucket(t_ms: int, width_ms: int) -> int:
    return t_ms - t_ms % width_ms


# In ``meta`` while samples stored before statistics have none yet.
_COMPILE_PENDING = "compile_statistics"

# Stamps the timeline can key (SQLite integers are 64-bit): 1970 to year 37 000.
_LAST_STAMP = 2**50


def _first_key(t_ms: int) -> int:
    """The smallest timeline key at ``t_ms`` (any series; clamped to the keyable)."""
    return min(max(t_ms, 0), _LAST_STAMP) << SERIES_BITS


def _last_key(t_ms: int) -> int:
    """The largest timeline key at ``t_ms`` (any series; clamped to the keyable)."""
    return _first_key(t_ms) | (MAX_SERIES - 1)


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
        self._said_refused = False  # a sample the timeline cannot key was logged once
        # synchronous=NORMAL: durable at each WAL checkpoint
        self._db = sqlite.connect(path, synchronous="NORMAL", schema=SCHEMA)
        converted = self._convert_samples()
        has_samples = self._db.execute("SELECT 1 FROM timeline LIMIT 1").fetchone() is not None
        has_statistics = self._db.execute("SELECT 1 FROM stats_5m LIMIT 1").fetchone()
        if has_samples and (converted or has_statistics is None):
            # Samples from before statistics: compile_missing computes theirs. Kept
            # in the file, so a restart before it is done does not forget.
            self._db.execute(f"INSERT OR REPLACE INTO meta VALUES ('{_COMPILE_PENDING}', 1)")
        self._series: dict[tuple[str, str], int] = {
            (plugin, field): series_id
            for series_id, plugin, field in self._db.execute("SELECT id, plugin, field FROM series")
        }

    def _convert_samples(self) -> bool:
        """Move a database from before the timeline (its ``samples`` table, keyed
        by series first) to the timeline, once, in one transaction; True if it did."""
        old = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'samples'"
        ).fetchone()
        if old is None:
            return False
        (count,) = self._db.execute("SELECT COUNT(*) FROM samples").fetchone()
        log.info(
            "history: moving %d samples to the time-ordered layout (once; it writes a "
            "tenth as much to the card per commit)",
            count,
        )
        started = time.monotonic()
        with sqlite.transaction(self._db, "IMMEDIATE"):
            self._db.execute(
                "INSERT OR REPLACE INTO timeline (id, series_id, value) "
                f"SELECT (ts_ms << {SERIES_BITS}) | series_id, series_id, value FROM samples "
                f"WHERE ts_ms >= 0 AND series_id >= 0 AND series_id < {MAX_SERIES}"
            )
            self._db.execute("DROP TABLE samples")
        log.info("history: moved in %.1f s", time.monotonic() - started)
        return True

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
                            if series >= MAX_SERIES or not 0 <= m.timestamp_ms <= _LAST_STAMP:
                                self._refuse(m.plugin, m.name, series, m.timestamp_ms)
                                continue
                            rows.append((series, m.timestamp_ms, m.value))
                    self._db.executemany(
                        "INSERT OR REPLACE INTO timeline (id, series_id, value) VALUES (?, ?, ?)",
                        [((t << SERIES_BITS) | series, series, v) for series, t, v in rows],
                    )
                    self._compile(rows)
            except BaseException:
                # Whatever failed, ids cached in this transaction may name series
                # rows that were rolled back (by us or by SQLite); refilled lazily.
                self._series.clear()
                raise
        return len(rows)

    def _refuse(self, plugin: str, field: str, series: int, t_ms: int) -> None:
        if not self._said_refused:
            self._said_refused = True
            why = (
                f"more than {MAX_SERIES - 1} measurements are stored"
                if series >= MAX_SERIES
                else f"its stamp {t_ms} is before 1970 or after year 37 000"
            )
            log.warning("history: %s.%s not stored: %s (said once)", plugin, field, why)

    def _compile(self, rows: list[tuple[int, int, float]]) -> None:
        """Recompute the statistics of every bucket ``rows`` (series, stamp, value) fall in."""
        fives = sorted({_bucket(t, FIVE_MINUTES_MS) for _, t, _ in rows})
        hours = sorted({_bucket(b, HOUR_MS) for b in fives})
        self._db.executemany(_COMPILE_5M, [(b,) for b in fives])
        self._db.executemany(_COMPILE_1H, [(b,) for b in hours])

    def compile_missing(self) -> int:
        """Compute the statistics of samples stored before statistics existed (a
        database from an older version); returns the 5-minute buckets computed.

        Once per database: after it, every write keeps them. Done a bucket at a
        time, so the lock is never held for long (a week of samples is two
        thousand buckets; on a Pi a minute or two).
        """
        with self._lock:
            pending = self._db.execute(
                "SELECT 1 FROM meta WHERE name = ?", (_COMPILE_PENDING,)
            ).fetchone()
            (first,) = self._db.execute("SELECT MIN(id) FROM timeline").fetchone()
        if pending is None or first is None:
            return 0
        log.info(
            "history: computing the statistics of the samples stored before statistics "
            "were kept (once; readings are saved meanwhile)"
        )
        done = 0
        key: int | None = int(first)
        while key is not None:
            bucket = _bucket(key >> SERIES_BITS, FIVE_MINUTES_MS)
            with self._lock, sqlite.transaction(self._db):
                self._db.execute(_COMPILE_5M, (bucket,))
                self._db.execute(_COMPILE_1H, (_bucket(bucket, HOUR_MS),))
                (key,) = self._db.execute(
                    "SELECT MIN(id) FROM timeline WHERE id >= ?",
                    (_first_key(bucket + FIVE_MINUTES_MS),),
                ).fetchone()
            done += 1
        with self._lock:
            self._db.execute("DELETE FROM meta WHERE name = ?", (_COMPILE_PENDING,))
        return done

    def resolution_for(
        self, series_id: int, since_ms: int, until_ms: int, max_points: int
    ) -> Resolution:
        """Raw samples when those stored in the range span at most
        ``RAW_MAX_RANGE_MS`` (what scanning them costs; a young host's day is an
        hour of samples) and no statistics reach further back in the range than
        this series' samples do (older than the raw retention); otherwise the
        finest statistics with at most ``STATISTICS_OVERSAMPLE * max_points``
        buckets."""
        low, high = _first_key(since_ms), _last_key(until_ms)
        (first_any,) = self._db.execute(
            "SELECT MIN(id) FROM timeline WHERE id BETWEEN ? AND ?", (low, high)
        ).fetchone()
        stored_since = until_ms if first_any is None else max(since_ms, first_any >> SERIES_BITS)
        if until_ms - stored_since <= RAW_MAX_RANGE_MS:
            (oldest,) = self._db.execute(
                "SELECT MIN(id) FROM timeline WHERE id BETWEEN ? AND ? AND series_id = ?",
                (low, high, series_id),
            ).fetchone()
            oldest_ms = until_ms if oldest is None else int(oldest) >> SERIES_BITS
            older = (
                None
                if oldest_ms - since_ms < FIVE_MINUTES_MS
                else self._db.execute(
                    "SELECT 1 FROM stats_5m WHERE bucket_ms > ? AND bucket_ms < ? "
                    "AND series_id = ? LIMIT 1",
                    (since_ms - FIVE_MINUTES_MS, _bucket(oldest_ms, FIVE_MINUTES_MS), series_id),
                ).fetchone()
            )
            if older is None:
                return "raw"
        # Finer buckets merged server-side beat coarser ones: a day's chart of 240
        # points is 288 five-minute rows merged in pairs, not 24 hours.
        span = until_ms - since_ms
        return "5m" if span <= STATISTICS_OVERSAMPLE * max_points * FIVE_MINUTES_MS else "1h"

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
        as /api/history asks); empty when the plugin never reported ``field`` (yet).

        Raw samples of a long range are slow to read (see ``RAW_MAX_RANGE_MS``):
        /api/history refuses raw beyond ``RAW_LIMIT_RANGE_MS``."""
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
            where = f"FROM timeline WHERE id BETWEEN ? AND ? AND series_id = ? AND {FINITE}"
            args = (_first_key(since_ms), _last_key(until_ms), series_id)
            (count,) = self._db.execute(f"SELECT COUNT(*) {where}", args).fetchone()
            downsampled = count > max_points
            points: list[tuple[int, float]] = []
            extents: list[tuple[float, float]] = []
            if downsampled:
                bucket = max(1, -(-(until_ms - since_ms + 1) // max_points))
                cursor = self._db.execute(
                    f"SELECT CAST(AVG(id >> {SERIES_BITS}) AS INTEGER), AVG(value), MIN(value), "
                    f"MAX(value) {where} GROUP BY ((id >> {SERIES_BITS}) - ?) / ? ORDER BY 1",
                    (*args, since_ms, bucket),
                )
                points, extents = _summaries(cursor)
            else:
                cursor = self._db.execute(
                    f"SELECT id >> {SERIES_BITS}, value {where} ORDER BY id", args
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
        points, extents = _summaries(cursor)
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
            ("timeline", "id", SERIES_BITS, self.retention_ms, 1),
            ("stats_5m", "bucket_ms", 0, self.short_term_ms, FIVE_MINUTES_MS),
            ("stats_1h", "bucket_ms", 0, self.long_term_ms, HOUR_MS),
        )
        with self._lock, sqlite.transaction(self._db):
            for table, column, shift, retention_ms, width in tables:
                for low, high in ((0, SANE_EPOCH_MS), (SANE_EPOCH_MS, None)):
                    cutoff = self._recorded_cutoff(table, column, shift, retention_ms, low, high)
                    if cutoff is None:
                        continue
                    calendar = now_ms - retention_ms
                    gaps = cutoff < calendar - MAX_GAP_MS
                    if gaps and table == "timeline" and not self._said_gaps:
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
                    below = _bucket(below, FIVE_MINUTES_MS) if table == "timeline" else below
                    below = below - width + 1  # statistics: buckets that end by then
                    cursor = self._db.execute(
                        f"DELETE FROM {table} WHERE {column} >= ? AND {column} < ?",
                        (low << shift, min(max(low, below), _LAST_STAMP) << shift),
                    )
                    if table == "timeline":
                        removed += cursor.rowcount
        return removed

    def _recorded_cutoff(
        self, table: str, column: str, shift: int, retention_ms: int, low: int, high: int | None
    ) -> int | None:
        """The stamp in ``[low, high)`` below which lies more than ``retention_ms`` of
        recorded time in ``table`` (whose ``column`` is a stamp shifted left by
        ``shift`` bits), walking back from the newest stamp there and skipping
        gaps over ``MAX_GAP_MS``; None if there is not that much.

        Index seeks only, about one per ``MAX_GAP_MS`` of stored time.
        """
        top_sql = f"SELECT MAX({column}) FROM {table} WHERE {column} >= ? AND {column} < ?"
        step_sql = f"SELECT MIN({column}) FROM {table} WHERE {column} >= ? AND {column} < ?"

        def stamp(sql: str, lo: int, hi: int) -> int | None:
            (found,) = self._db.execute(sql, (lo << shift, hi << shift)).fetchone()
            return None if found is None else int(found) >> shift

        top = stamp(top_sql, low, _LAST_STAMP if high is None else high)
        need = retention_ms
        while top is not None:
            run_top = t = top
            # Down this run, a gap of at most MAX_GAP_MS at a time.
            while (step := stamp(step_sql, max(low, t - MAX_GAP_MS), t)) is not None:
                if run_top - step >= need:
                    return run_top - need
                t = step
            need -= run_top - t
            top = stamp(top_sql, low, t)
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()
