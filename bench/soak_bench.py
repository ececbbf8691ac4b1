"""The soak (issue 17): many polls as fast as the host allows, on a simulated clock.

One in-process host runs the seed plugins as source plugins in the shared
Python runtime (pi_monitor, dht22, bme680, dashboard and sht31, as
config/host.toml gives them) plus the generic test component
(build/test-plugins/generic.wasm, world sensor-plugin) on the simulated
board, with history on disk and web, MQTT and reloading off. The wall clock
and the monotonic clock it is given are simulated: each cycle advances both
by the default poll interval (2 s), so a few minutes of real time record
simulated days of history, and everything timed on those clocks (the commit
interval, set to the Pi's 60 s; the guest memory checks; the supervisor) runs
at simulated speed. Pruning is called each simulated hour, as the host's
pruning task does each real one.

Cycles run back to back (``run_once`` then ``after_cycle``). The simulated
SHT31 needs 16 ms of real time between its trigger and its read, so it
reports an error on most of these fast polls: counted, not slept for.

Sampled every ``SAMPLE_EVERY`` cycles: RSS (VmRSS), each plugin's guest
memory and recycles, open file descriptors, threads (Python's and the
kernel's count), the database's size (file plus WAL) and the bytes the
process wrote (/proc/self/io: ``write_bytes`` counts what it sent to the
block layer, page-cache writes the kernel flushes to the card later;
``wchar`` every byte passed to write(), cached or not).

``WASIHOST_SOAK_CYCLES`` sets the number of cycles (a full run otherwise
runs for ``FULL_SECONDS`` of real time, a quick one ``QUICK_CYCLES``):
``WASIHOST_SOAK_CYCLES=400000 python -m bench.run --only soak`` is two
million polls of the five sensor plugins.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, figure, progress
from wasihost.boards.sim import SimBoard
from wasihost.config import parse_config
from wasihost.host import PRUNE_INTERVAL_SECONDS, Host

INTERVAL_S = 2.0  # [polling] interval_seconds, the default
COMMIT_INTERVAL_S = 60.0  # [history] commit_interval_seconds, the Pi's default
QUICK_CYCLES = 20_000
FULL_SECONDS = 300.0
SAMPLE_EVERY = 500
START_MS = 1_780_000_000_000  # 2026-05-28: a synced clock
DAY_S = 86_400.0
YEAR_DAYS = 365.0
MB = 1024 * 1024

# name: (folder, led, extra plugin config), as config/host.toml gives them.
SEED: dict[str, tuple[str, int | None, dict[str, Any]]] = {
    "pi_monitor": ("pi-monitor", 0, {}),
    "dht22": ("dht22", 1, {"grants": {"gpio_pins": [4]}, "settings": {"gpio_pin": 4}}),
    "bme680": ("bme680", 2, {"grants": {"i2c_addresses": ["0x77"]},
                             "settings": {"i2c_address": 0x77}}),
    "dashboard": ("dashboard", None, {}),
    "sht31": ("sht31", 3, {"world": "sensor-plugin", "grants": {"i2c_addresses": ["0x44"]}}),
}  # fmt: skip


class SimClock:
    """Wall and monotonic time that move only when the soak advances them."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wall_ms(self) -> int:
        return START_MS + int(self.seconds * 1000)

    def monotonic(self) -> float:
        return 1000.0 + self.seconds


@dataclass
class Sample:
    cycle: int
    real_s: float
    sim_s: float
    rss_mb: float
    fds: int
    py_threads: int
    os_threads: int
    db_bytes: int
    write_bytes: int
    wchar: int
    guest: dict[str, int | None] = field(default_factory=dict)
    recycles: dict[str, int] = field(default_factory=dict)


def _proc(name: str) -> dict[str, str]:
    lines = Path(f"/proc/self/{name}").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _sample(host: Host, cycle: int, started: float, clock: SimClock, db: Path) -> Sample:
    status, io = _proc("status"), _proc("io")
    db_bytes = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    statuses = {name: plugin.status() for name, plugin in host.plugins.items()}
    return Sample(
        cycle=cycle,
        real_s=time.perf_counter() - started,
        sim_s=clock.seconds,
        rss_mb=int(status["VmRSS"].split()[0]) / 1024,
        fds=len(os.listdir("/proc/self/fd")),
        py_threads=threading.active_count(),
        os_threads=int(status["Threads"]),
        db_bytes=db_bytes,
        write_bytes=int(io["write_bytes"]),
        wchar=int(io["wchar"]),
        guest={n: s.get("guest_memory_bytes") for n, s in statuses.items()},
        recycles={n: int(s.get("recycles") or 0) for n, s in statuses.items()},
    )


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def _soak(workdir: Path, cycles: int | None, seconds: float) -> dict[str, Any]:
    db = workdir / "history.sqlite3"
    plugins: dict[str, Any] = {}
    for name, (folder, led, extra) in SEED.items():
        plugins[name] = {"source": str(ROOT / "plugins" / folder), **extra}
        if led is not None:
            plugins[name]["led"] = led
    plugins["generic"] = {
        "wasm": str(ROOT / "build" / "test-plugins" / "generic.wasm"),
        "world": "sensor-plugin",
    }
    config = parse_config({
        "polling": {"interval_seconds": INTERVAL_S},
        "logging": {"show_sensor_data": False},
        "web": {"enabled": False},
        "mqtt": {"enabled": False},
        "reload": {"enabled": False},
        "history": {"path": str(db), "commit_interval_seconds": COMMIT_INTERVAL_S},
        "state": {"dir": str(workdir / "state")},
        "runtime": {"python_runtime": str(ROOT / "build" / "python-runtime.wasm")},
        "plugins": plugins,
    })  # fmt: skip
    clock = SimClock()
    host = Host(config, board=SimBoard(seed=1), clock_ms=clock.wall_ms, monotonic=clock.monotonic)
    host.load_plugins()
    sensors = [n for n, p in host.plugins.items() if p.role == "sensor"]
    not_running = {
        n: p.status()["state"] for n, p in host.plugins.items() if n not in host.running()
    }
    if not_running:
        progress(f"not running after load: {not_running}")
    retention_days = config.history.retention_days
    assert host.history is not None
    samples: list[Sample] = []
    prune_every = max(1, int(PRUNE_INTERVAL_SECONDS / INTERVAL_S))
    started = time.perf_counter()
    samples.append(_sample(host, 0, started, clock, db))
    cycle = 0
    try:
        while True:
            if cycles is not None and cycle >= cycles:
                break
            if cycles is None and time.perf_counter() - started >= seconds:
                break
            readings = await host.cycle.run_once()
            await host.after_cycle(readings)
            cycle += 1
            clock.seconds += INTERVAL_S
            if cycle % prune_every == 0:
                await asyncio.to_thread(host.history.prune, clock.wall_ms())
            if cycle % SAMPLE_EVERY == 0:
                samples.append(_sample(host, cycle, started, clock, db))
                if cycle % (SAMPLE_EVERY * 20) == 0:
                    s = samples[-1]
                    progress(
                        f"{cycle} cycles, {s.sim_s / DAY_S:.2f} simulated days, "
                        f"{cycle / s.real_s:.0f} cycles/s, RSS {s.rss_mb:.1f} MB, "
                        f"db {s.db_bytes / MB:.1f} MB"
                    )
        host.flush_history()
        samples.append(_sample(host, cycle, started, clock, db))
        stats = {n: dataclasses.replace(p.stats) for n, p in host.plugins.items()}
        statuses = {n: p.status() for n, p in host.plugins.items()}
    finally:
        host.close()
    # The database as it stays: WAL checkpointed into the file, then its size and rows.
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
        series = conn.execute("SELECT count(*) FROM series").fetchone()[0]
    conn.close()
    return {
        "db_file": db.stat().st_size,
        "rows": rows,
        "series": series,
        "not_running": not_running,
        "samples": samples,
        "sensors": sensors,
        "stats": stats,
        "statuses": statuses,
        "retention_days": retention_days,
    }


def _figures(result: dict[str, Any]) -> list[Figure]:
    samples: list[Sample] = result["samples"]
    sensors: list[str] = result["sensors"]
    end = samples[-1]
    cycles = end.cycle
    polls = cycles * len(sensors)
    # Warm-up: the first tenth of the run (at least one sample in), so start-up
    # allocations, the first commit and the caches filling do not count as drift.
    warm = next((s for s in samples if s.cycle >= max(SAMPLE_EVERY, cycles // 10)), samples[0])
    after = [s for s in samples if s.cycle >= warm.cycle]
    half = next(s for s in samples if s.cycle >= cycles // 2)
    sim_days = (end.sim_s - warm.sim_s) / DAY_S or 1e-9
    sim_hours = sim_days * 24
    group = "soak"
    rss_slope = _slope([s.cycle * len(sensors) for s in after], [s.rss_mb for s in after])
    down = ", ".join(f"{n} {s}" for n, s in result["not_running"].items())
    figures = [
        figure(group, "cycles per second", "1/s", [cycles / end.real_s],
               f"{cycles} cycles, {polls} polls of {len(sensors)} sensor plugins, "
               f"{end.sim_s / DAY_S:.2f} simulated days in {end.real_s:.0f} s"
               + (f"; not running after load: {down}" if down else "")),
        figure(group, "RSS drift, warm-up to end", "MB", [end.rss_mb - warm.rss_mb],
               f"from {warm.rss_mb:.1f} MB at cycle {warm.cycle}; target < 2 over 2,000,000 "
               f"polls; trend {rss_slope * 1e6:+.2f} MB per million polls"),
        figure(group, "RSS drift, second half of the run", "MB", [end.rss_mb - half.rss_mb],
               f"from cycle {half.cycle}: does it level off?"),
        figure(group, "RSS over the run", "MB", [s.rss_mb for s in after], "per sample"),
    ]  # fmt: skip
    for name in result["statuses"]:
        first, last = warm.guest.get(name), end.guest.get(name)
        if first is None or last is None:
            continue
        recycles = end.recycles.get(name, 0) - warm.recycles.get(name, 0)
        figures.append(
            figure(group, f"guest memory drift: {name}", "MB", [(last - first) / MB],
                   f"{last / MB:.1f} MB at the end; {recycles} recycles after warm-up, "
                   f"{end.recycles.get(name, 0)} in all; target: no trap from growth")
        )  # fmt: skip
    figures += [
        figure(group, "open file descriptors drift", "count", [float(end.fds - warm.fds)],
               f"{warm.fds} -> {end.fds}"),
        figure(group, "threads drift (Python)", "count",
               [float(end.py_threads - warm.py_threads)],
               f"{warm.py_threads} -> {end.py_threads}"),
        figure(group, "threads drift (kernel)", "count",
               [float(end.os_threads - warm.os_threads)],
               f"{warm.os_threads} -> {end.os_threads}"),
    ]  # fmt: skip
    all_days = end.sim_s / DAY_S or 1e-9
    db_per_day = result["db_file"] / all_days  # the whole run: the schema is a few pages
    rows_per_day = result["rows"] / all_days
    written_per_hour = (end.write_bytes - warm.write_bytes) / sim_hours
    wchar_per_hour = (end.wchar - warm.wchar) / sim_hours
    retention = float(result["retention_days"])
    kept_days = min(YEAR_DAYS, retention)
    figures += [
        figure(group, "database per simulated day", "MB", [db_per_day / MB],
               f"checkpointed file after the run; {rows_per_day:.0f} samples a day in "
               f"{result['series']} series, {result['db_file'] / max(1, result['rows']):.0f} "
               "bytes each with the index"),
        figure(group, "written per simulated hour (write_bytes)", "MB",
               [written_per_hour / MB],
               f"{written_per_hour * 24 / MB:.1f} MB per day reaching the block layer; "
               f"commit every {COMMIT_INTERVAL_S:g} s"),
        figure(group, "written per simulated hour (wchar)", "MB", [wchar_per_hour / MB],
               "every write() call, cached or not"),
        figure(group, "database after a year, default retention", "MB",
               [db_per_day * kept_days / MB],
               f"raw samples of the last {retention:g} days (retention_days); no long-term "
               "statistics tables yet"),
        figure(group, "a year of raw samples (retention 365 days)", "MB",
               [db_per_day * YEAR_DAYS / MB],
               "target: history + statistics < 1024 MB for a year"),
        figure(group, "written in a year at this rate (write_bytes)", "GB",
               [written_per_hour * 24 * YEAR_DAYS / 1024**3], "on the card, before its FTL"),
    ]  # fmt: skip
    stats: dict[str, Any] = result["stats"]
    errors = {n: s.errors for n, s in stats.items() if s.errors}
    traps = {n: s.traps for n, s in stats.items() if s.traps}
    figures += [
        figure(group, "polls that returned an error", "count", [float(sum(errors.values()))],
               ", ".join(f"{n} {c}" for n, c in errors.items()) or "none"),
        figure(group, "plugin traps", "count", [float(sum(traps.values()))],
               (", ".join(f"{n} {c}" for n, c in traps.items()) or "none")
               + "; target: none from memory growth"),
    ]  # fmt: skip
    return figures


def run(quick: bool = False) -> list[Figure]:
    env = os.environ.get("WASIHOST_SOAK_CYCLES")
    cycles = int(env) if env else (QUICK_CYCLES if quick else None)
    what = f"{cycles} cycles" if cycles is not None else f"{FULL_SECONDS:.0f} s"
    progress(f"soak: {what} back to back, {INTERVAL_S:g} simulated seconds each")
    with tempfile.TemporaryDirectory(prefix="wasihost-soak-") as tmp:
        result = asyncio.run(_soak(Path(tmp), cycles, FULL_SECONDS))
    return _figures(result)
