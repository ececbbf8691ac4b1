"""Long-term statistics: 5-minute and hourly min/mean/max beside the raw samples,
kept past the raw retention, right whatever order readings arrive in, and the
resolution /api/history picks for a range."""

from __future__ import annotations

import sqlite3
import statistics
from pathlib import Path

import pytest

from wasihost.model import Measurement, Reading
from wasihost.telemetry.history import FIVE_MINUTES_MS, HOUR_MS, History

DAY_MS = 86_400_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS  # an hour's start, November 2023


def reading(t_ms: int, value: float, field: str = "temperature") -> Reading:
    m = Measurement("dht22", field, value, "°C", "temperature", t_ms)
    return Reading("dht22", "dht22-plugin", t_ms, (m,), {})


def summary(values: list[float]) -> tuple[float, float, float]:
    return statistics.fmean(values), min(values), max(values)


def test_buckets_summarise_their_samples(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    samples = [(T0 + i * 20_000, float((i * 7) % 13)) for i in range(2 * 180)]  # 2 h at 20 s
    # Written in small batches, as cycles commit, so buckets are recomputed as they fill.
    for start in range(0, len(samples), 7):
        history.write([reading(t, v) for t, v in samples[start : start + 7]])

    fives = history.query("dht22", "temperature", T0, T0 + 2 * HOUR_MS - 1, 1000, "5m")
    assert fives.resolution == "5m" and not fives.downsampled
    assert [t for t, _ in fives.points] == list(range(T0, T0 + 2 * HOUR_MS, FIVE_MINUTES_MS))
    for (t, mean), (lo, hi) in zip(fives.points, fives.extents, strict=True):
        values = [v for s, v in samples if t <= s < t + FIVE_MINUTES_MS]
        assert (mean, lo, hi) == pytest.approx(summary(values))

    hours = history.query("dht22", "temperature", T0, T0 + 2 * HOUR_MS - 1, 1000, "1h")
    assert [t for t, _ in hours.points] == [T0, T0 + HOUR_MS]
    for (t, mean), (lo, hi) in zip(hours.points, hours.extents, strict=True):
        values = [v for s, v in samples if t <= s < t + HOUR_MS]
        assert (mean, lo, hi) == pytest.approx(summary(values))
    first = hours.to_json()["points"][0]
    assert isinstance(first, list) and first[0] == T0
    assert first[1:] == pytest.approx(list(summary(samples_in(samples, T0))))
    history.close()


def samples_in(samples: list[tuple[int, float]], hour: int) -> list[float]:
    return [v for t, v in samples if hour <= t < hour + HOUR_MS]


def test_a_late_reading_updates_its_old_bucket(tmp_path: Path) -> None:
    """A clock stepped back, or a backlog written after a full disk: readings for a
    bucket already summarised arrive later, and the bucket is summarised again."""
    history = History(tmp_path / "h.sqlite3")
    history.write([reading(T0 + 1_000, 20.0), reading(T0 + 2_000, 22.0)])
    history.write([reading(T0 + 2 * HOUR_MS, 25.0)])  # an hour and more later
    history.write([reading(T0 + 3_000, 30.0)])  # late, into the first bucket
    hours = history.query("dht22", "temperature", T0, T0 + 3 * HOUR_MS, 1000, "1h")
    assert hours.points == [(T0, 24.0), (T0 + 2 * HOUR_MS, 25.0)]
    assert hours.extents == [(20.0, 30.0), (25.0, 25.0)]
    # The same sample written again (a retried commit) is counted once.
    history.write([reading(T0 + 3_000, 30.0)])
    again = history.query("dht22", "temperature", T0, T0 + 3 * HOUR_MS, 1000, "1h")
    assert again.points == hours.points
    history.close()


def test_statistics_outlive_the_raw_samples(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3", retention_days=1, short_term_days=2)
    for day in range(4):  # four days, a sample every 10 minutes, the day's number as value
        history.write([reading(T0 + day * DAY_MS + i * 600_000, float(day)) for i in range(144)])
    now = T0 + 4 * DAY_MS
    history.prune(now_ms=now)
    newest = T0 + 3 * DAY_MS + 143 * 600_000
    raw = history.query("dht22", "temperature", T0, now, 10_000, "raw")
    assert newest - raw.points[0][0] < DAY_MS + FIVE_MINUTES_MS  # a day of samples
    fives = history.query("dht22", "temperature", T0, now, 10_000, "5m")
    assert DAY_MS < newest - fives.points[0][0] < 2 * DAY_MS + FIVE_MINUTES_MS  # two days
    hours = history.query("dht22", "temperature", T0, now, 10_000, "1h")
    assert [v for _, v in hours.points] == [d for d in (0.0, 1.0, 2.0, 3.0) for _ in range(24)]
    history.close()


def test_statistics_are_pruned_by_recorded_time(tmp_path: Path) -> None:
    """A clock that steps forward a year does not take the hourly statistics with it."""
    history = History(tmp_path / "h.sqlite3", retention_days=1, long_term_days=30)
    history.write([reading(T0 + i * 600_000, 20.0) for i in range(6 * 24 * 3)])  # three days
    later = T0 + 365 * DAY_MS
    history.write([reading(later + i * 600_000, 21.0) for i in range(6)])
    history.prune(now_ms=later + HOUR_MS)
    hours = history.query("dht22", "temperature", 0, later + HOUR_MS, 10_000, "1h")
    assert len(hours.points) == 3 * 24 + 1  # nothing recorded is older than 30 days
    history.close()


@pytest.mark.parametrize("span_ms", [HOUR_MS, DAY_MS, 7 * DAY_MS, 365 * DAY_MS])
def test_auto_resolution_on_a_young_host(tmp_path: Path, span_ms: int) -> None:
    """On a host started an hour ago, a day's chart shows the raw samples, not twelve
    5-minute rows: an hour of samples is quick to read, and statistics reach no
    further back than they do."""
    history = History(tmp_path / "h.sqlite3")
    history.write([reading(T0 + i * 2_000, 20.0) for i in range(1800)])
    now = T0 + HOUR_MS
    series = history.query("dht22", "temperature", now - span_ms, now, 300, "auto")
    assert series.resolution == "raw"
    assert series.points
    history.close()


@pytest.mark.parametrize(
    ("span_ms", "expected", "points"),
    [
        (HOUR_MS, "raw", 60),
        (6 * HOUR_MS, "raw", 240),
        (DAY_MS, "5m", 144),  # the dashboard's day: 288 five-minute rows merged in pairs
        (3 * DAY_MS, "5m", 216),  # 864 rows merged in fours (whole buckets per point)
        (7 * DAY_MS, "1h", 72),  # three days recorded
    ],
)
def test_auto_resolution_on_a_host_that_ran_for_days(
    tmp_path: Path, span_ms: int, expected: str, points: int
) -> None:
    """Raw samples while the range's samples are quick to scan (6 h), then the finest
    statistics that are at most four times the points asked for, merged to them."""
    history = History(tmp_path / "h.sqlite3")
    history.write([reading(T0 + i * 60_000, 20.0) for i in range(3 * 24 * 60)])
    now = T0 + 3 * DAY_MS
    series = history.query("dht22", "temperature", now - span_ms, now, 240, "auto")
    assert series.resolution == expected
    assert len(series.points) == points
    history.close()


def test_auto_resolution_past_the_raw_retention(tmp_path: Path) -> None:
    """A 24 h chart on a host keeping 12 h of samples: the 5-minute statistics, which
    cover the whole day, not half a chart of raw samples."""
    history = History(tmp_path / "h.sqlite3", retention_days=0.5)
    history.write([reading(T0 + i * 60_000, 20.0) for i in range(2 * 24 * 60)])
    now = T0 + 2 * DAY_MS
    history.prune(now_ms=now)
    day = history.query("dht22", "temperature", now - DAY_MS, now, 300, "auto")
    assert day.resolution == "5m"
    assert day.points[0][0] < now - DAY_MS + HOUR_MS
    hour = history.query("dht22", "temperature", now - HOUR_MS, now, 300, "auto")
    assert hour.resolution == "raw"
    history.close()


def test_a_year_is_downsampled_with_weighted_means(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    # An hour with one sample of 0 and an hour with three of 4: the mean of the four is 3.
    history.write([reading(T0, 0.0)])
    history.write([reading(T0 + HOUR_MS + i, 4.0) for i in range(3)])
    for day in range(1, 365):  # then four samples a day: 1,456 hours to merge into 400 points
        history.write([reading(T0 + day * DAY_MS + k * 6 * HOUR_MS, float(k)) for k in range(4)])
    year = history.query("dht22", "temperature", T0, T0 + 365 * DAY_MS, 400, "1h")
    assert year.downsampled and 300 <= len(year.points) <= 400
    assert year.points[0] == (T0, 3.0)
    assert year.extents[0] == (0.0, 4.0)
    assert [t for t, _ in year.points] == sorted(t for t, _ in year.points)
    history.close()


def test_statistics_are_computed_for_a_database_from_before_them(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    history = History(path)
    values = [float(i % 17) for i in range(3 * 360)]
    history.write([reading(T0 + i * 10_000, v) for i, v in enumerate(values)])
    history.close()
    with sqlite3.connect(path) as db:  # as an older version left it: samples only
        db.execute("DELETE FROM stats_5m")
        db.execute("DELETE FROM stats_1h")
    history = History(path)
    assert history.query("dht22", "temperature", T0, T0 + 3 * HOUR_MS, 100, "1h").points == []
    assert history.compile_missing() == 36
    hours = history.query("dht22", "temperature", T0, T0 + 3 * HOUR_MS, 100, "1h")
    assert hours.points == [
        (T0 + h * HOUR_MS, pytest.approx(statistics.fmean(values[h * 360 : (h + 1) * 360])))
        for h in range(3)
    ]
    assert history.compile_missing() == 0  # once
    history.close()


def test_a_tampered_statistics_row_is_left_out(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    history.write([reading(T0, 20.0), reading(T0 + HOUR_MS, 21.0), reading(T0 + 2 * HOUR_MS, 22.0)])
    with sqlite3.connect(tmp_path / "h.sqlite3") as db:
        db.execute("UPDATE stats_1h SET mean = 'text' WHERE bucket_ms = ?", (T0,))
        db.execute("UPDATE stats_1h SET n = 0 WHERE bucket_ms = ?", (T0 + HOUR_MS,))
    hours = history.query("dht22", "temperature", T0, T0 + 3 * HOUR_MS, 100, "1h")
    assert hours.points == [(T0 + 2 * HOUR_MS, 22.0)]
    history.close()
