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

Each sample also splits RSS in two: the pages resident inside each plugin's
guest linear memory (read from /proc/self/smaps within the memory wasmtime
reserved for its current instance) and everything else, the host's own
(Python's heap, wasmtime, SQLite, thread stacks). Drift is reported after a
warm-up (the first ``WARMUP`` of the cycles: start-up allocations, the
first commits, SQLite's page cache filling to its ``cache_size``), for the
whole run too, and per fifth of the run, so a plateau can be told from a
slope. Each sample also reads glibc's malloc (``mallinfo2``: bytes in use
and free bytes it holds, over all arenas), Python's allocated blocks,
SQLite's ``sqlite3_memory_used`` and the host's resident pages by kind of
mapping (the brk heap, other anonymous mappings, files), so a growth of the
host's own memory can be placed. ``WASIHOST_SOAK_TRIM=1`` calls glibc's
``malloc_trim(0)`` before each sample: memory malloc holds free but has not
given back then stops counting, which tells fragmentation from a structure
that grows. ``WASIHOST_SOAK_TRACE=1`` also traces the host's Python allocations
from the end of the warm-up (tracemalloc, much slower) and prints the ten
call sites whose live memory grew most between the sample after the warm-up
and the end. The samples wait on disk until the end (in memory they were a
growing list inside the process they measure); ``WASIHOST_SOAK_DUMP=path``
puts that file (JSON lines) where it stays.

``WASIHOST_SOAK_CYCLES`` sets the number of cycles (a full run otherwise
runs for ``FULL_SECONDS`` of real time, a quick one ``QUICK_CYCLES``):
``WASIHOST_SOAK_CYCLES=400000 python -m bench.run --only soak`` is two
million polls of the five sensor plugins.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import dataclasses
import itertools
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, figure, progress, seed_plugin_tables
from wasihost.boards.sim import SimBoard
from wasihost.config import parse_config
from wasihost.host import PRUNE_INTERVAL_SECONDS, Host
from wasihost.runtime.guest_memory import Memory

INTERVAL_S = 2.0  # [polling] interval_seconds, the default
COMMIT_INTERVAL_S = 60.0  # [history] commit_interval_seconds, the Pi's default
QUICK_CYCLES = 20_000
FULL_SECONDS = 300.0
SAMPLE_EVERY = 500
WARMUP = 0.2  # drift counts from this fraction of the run's cycles
PHASES = 5  # RSS drift reported per fifth of the run
TRACE_FRAMES = 4
TRACE_TOP = 10
START_MS = 1_780_000_000_000  # 2026-05-28: a synced clock
DAY_S = 86_400.0
YEAR_DAYS = 365.0
# A year of hourly statistics for one series (bytes): 8 760 rows and their index,
# measured by writing a year for 30 series and vacuuming (docs/ARCHITECTURE.md).
HOURLY_BYTES_PER_SERIES_YEAR = 361_000
MB = 1024 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]  # fmt: skip


def _libc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not glibc (>= 2.33): these figures are left out
        return None


def _sqlite() -> Any:
    try:  # the library Python's sqlite3 module is linked against (a shared one here)
        lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        return lib
    except (OSError, AttributeError):
        return None


LIBC, LIBSQLITE = _libc(), _sqlite()


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
    # MB resident inside each plugin's guest linear memory (its current instance).
    guest_rss: dict[str, float] = field(default_factory=dict)
    # MB of the host's own resident pages by kind of mapping: "heap" (brk, malloc's
    # main arena), "anon" (other anonymous: malloc's thread arenas and big blocks,
    # Python's own arenas, stacks), "file" (libraries, compiled components, the WAL index).
    host_kinds: dict[str, float] = field(default_factory=dict)
    malloc_used_mb: float = 0.0  # mallinfo2: uordblks + hblkhd, every arena
    malloc_free_mb: float = 0.0  # mallinfo2: fordblks, held free
    py_blocks: int = 0  # sys.getallocatedblocks()
    sqlite_mb: float = 0.0  # sqlite3_memory_used()

    @property
    def host_rss_mb(self) -> float:
        """RSS outside the guests' linear memories: the host's own."""
        return self.rss_mb - sum(self.guest_rss.values())


def _proc(name: str) -> dict[str, str]:
    lines = Path(f"/proc/self/{name}").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _guest_resident(host: Host) -> tuple[dict[str, float], dict[str, float]]:
    """MB resident in each plugin's guest linear memory, from /proc/self/smaps.

    A memory is the mappings from its base up to the end of its reservation
    (``guest_memory.Memory``); what is resident there is guest heap the guest
    has touched (its memory image is mapped copy-on-write from the compiled
    file, so pages it only read count too). The instance is the plugin's
    current one: a recycle moves to a new one. A bench-only peek at
    ``Plugin._instance``. Also what is resident outside them, by kind of mapping
    (``Sample.host_kinds``).
    """
    memories: list[tuple[str, Memory]] = []
    for name, plugin in host.plugins.items():
        instance = plugin._instance
        if instance is not None:
            memories += [(name, m) for m in instance.memories]
    found = {name: 0.0 for name, _ in memories}
    kinds = {"heap": 0.0, "anon": 0.0, "file": 0.0}
    owner: str | None = None
    kind = "anon"
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split(maxsplit=1)[0]
            if not head.endswith(":"):  # a mapping: "start-end perms offset dev inode [path]"
                start = int(head.split("-")[0], 16)
                owner = next((n for n, m in memories if m.base <= start < m.end), None)
                fields = line.split(maxsplit=5)
                path = fields[5].strip() if len(fields) > 5 else ""
                kind = "heap" if path == "[heap]" else "file" if path.startswith("/") else "anon"
            elif head == "Rss:":
                mb = int(line.split()[1]) / 1024
                if owner is not None:
                    found[owner] += mb
                else:
                    kinds[kind] += mb
    return found, kinds


def _sample(
    host: Host, cycle: int, started: float, clock: SimClock, db: Path, trim: bool = False
) -> Sample:
    if trim and LIBC is not None:
        LIBC.malloc_trim(0)
    malloc = LIBC.mallinfo2() if LIBC is not None else None
    guest_rss, host_kinds = _guest_resident(host)
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
        guest_rss=guest_rss,
        host_kinds=host_kinds,
        malloc_used_mb=(malloc.uordblks + malloc.hblkhd) / MB if malloc else 0.0,
        malloc_free_mb=malloc.fordblks / MB if malloc else 0.0,
        py_blocks=sys.getallocatedblocks(),
        sqlite_mb=LIBSQLITE.sqlite3_memory_used() / MB if LIBSQLITE is not None else 0.0,
    )


class _Samples:
    """The samples taken, kept on disk while the soak runs (JSON lines in
    ``path``), only the last in memory.

    Kept in memory they were the soak's own leak: each sample holds about 30
    Python objects (1.5 KB, measured: 1 000 samples kept took 28 700 blocks and
    RSS +1.44 MB), a list that grows with the run inside the process whose RSS
    it measures: 0.4 MB per 100 000 cycles of "host" memory, most of what the
    two-million-poll run reported as the host's drift (issue 17).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._out = open(path, "w")  # noqa: SIM115 (closed by close())

    def append(self, sample: Sample) -> None:
        self._out.write(json.dumps(dataclasses.asdict(sample)) + "\n")
        self._out.flush()

    def close(self) -> None:
        self._out.close()

    def load(self) -> list[Sample]:
        with open(self.path) as lines:
            return [Sample(**json.loads(line)) for line in lines]


def _at(samples: list[Sample], cycle: float) -> Sample:
    """The first sample at or after ``cycle`` (the last one if none)."""
    return next((s for s in samples if s.cycle >= cycle), samples[-1])


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs (0 with fewer than two points)."""
    if len(xs) < 2:
        return 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


async def _soak(workdir: Path, cycles: int | None, seconds: float) -> dict[str, Any]:
    db = workdir / "history.sqlite3"
    plugins: dict[str, Any] = seed_plugin_tables()
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
    dump = os.environ.get("WASIHOST_SOAK_DUMP")
    samples = _Samples(Path(dump) if dump else workdir / "samples.jsonl")
    if dump:
        progress(f"samples written to {dump} as they are taken")
    prune_every = max(1, int(PRUNE_INTERVAL_SECONDS / INTERVAL_S))
    trace = os.environ.get("WASIHOST_SOAK_TRACE") == "1"
    trim = os.environ.get("WASIHOST_SOAK_TRIM") == "1"
    if trim:
        progress("malloc_trim(0) before each sample")
    traced: list[tracemalloc.Snapshot] = []  # after the warm-up, at the end
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
                sample = _sample(host, cycle, started, clock, db, trim)
                samples.append(sample)
                if trace and tracemalloc.is_tracing() and not traced:
                    traced.append(tracemalloc.take_snapshot())
                warm = cycle >= cycles * WARMUP if cycles is not None else (
                    sample.real_s >= seconds * WARMUP)  # fmt: skip
                if trace and warm and not tracemalloc.is_tracing():
                    progress(
                        f"tracing Python allocations from cycle {cycle}: far slower, and "
                        "RSS from here on includes tracemalloc's own tables"
                    )
                    tracemalloc.start(TRACE_FRAMES)
                if cycle % (SAMPLE_EVERY * 20) == 0:
                    progress(
                        f"{cycle} cycles, {sample.sim_s / DAY_S:.2f} simulated days, "
                        f"{cycle / sample.real_s:.0f} cycles/s, RSS {sample.rss_mb:.1f} MB, "
                        f"db {sample.db_bytes / MB:.1f} MB"
                    )
        if traced:
            traced.append(tracemalloc.take_snapshot())
        tracemalloc.stop()
        host.flush_history()
        samples.append(_sample(host, cycle, started, clock, db, trim))
        stats = {n: dataclasses.replace(p.stats) for n, p in host.plugins.items()}
        statuses = {n: p.status() for n, p in host.plugins.items()}
    finally:
        host.close()
    # The database as it stays: WAL checkpointed into the file, then its size and rows.
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute("SELECT count(*) FROM timeline").fetchone()[0]
        series = conn.execute("SELECT count(*) FROM series").fetchone()[0]
    conn.close()
    samples.close()
    return {
        "db_file": db.stat().st_size,
        "rows": rows,
        "series": series,
        "not_running": not_running,
        "samples": samples.load(),
        "sensors": sensors,
        "stats": stats,
        "statuses": statuses,
        "retention_days": retention_days,
        "traced": traced,
    }


def _traced_growth(traced: list[tracemalloc.Snapshot]) -> Figure | None:
    """The host's Python allocations that grew between the two snapshots: the
    top ``TRACE_TOP`` call sites printed, their total as a figure."""
    if len(traced) < 2:
        return None
    mine = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first, last = (snap.filter_traces(mine) for snap in traced)
    stats = last.compare_to(first, "traceback")
    growth = sum(s.size_diff for s in stats)
    progress(f"tracemalloc, after the warm-up to the end: {growth / 1024:+.1f} KiB in all; "
             f"top {TRACE_TOP} by growth:")  # fmt: skip
    for stat in stats[:TRACE_TOP]:
        site, *callers = reversed(stat.traceback)  # the allocation, then who called it
        progress(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  "
                 f"{site.filename}:{site.lineno}")  # fmt: skip
        for frame in callers[:3]:
            progress(f"        via {frame.filename}:{frame.lineno}")
    return figure("soak", "Python heap growth after warm-up (tracemalloc)", "KiB",
                  [growth / 1024], f"live memory allocated after the warm-up, net; "
                  f"top site {stats[0].size_diff / 1024:+.1f} KiB" if stats else "")  # fmt: skip


def _host_figures(
    warm: Sample,
    end: Sample,
    trend: Callable[[list[Sample], Callable[[Sample], float]], float],
    after: list[Sample],
    second: list[Sample],
) -> list[Figure]:
    """Where the host's own memory went after the warm-up: its resident pages by
    kind of mapping, malloc's bytes in use and held free, Python's blocks, SQLite."""

    def kind(name: str) -> Callable[[Sample], float]:
        return lambda s: s.host_kinds.get(name, 0.0)

    values: list[tuple[str, str, Callable[[Sample], float]]] = [
        (f"host RSS, {name} mappings", "MB", kind(name)) for name in ("heap", "anon", "file")
    ]
    values += [
        ("malloc in use (mallinfo2)", "MB", lambda s: s.malloc_used_mb),
        ("malloc held free (mallinfo2)", "MB", lambda s: s.malloc_free_mb),
        ("Python allocated blocks", "count", lambda s: float(s.py_blocks)),
        ("SQLite memory used", "MB", lambda s: s.sqlite_mb),
    ]
    return [
        figure("soak", f"{name} drift, after warm-up", unit, [value(end) - value(warm)],
               f"{value(warm):.2f} -> {value(end):.2f}; trend {trend(after, value):+.3f} "
               f"per million polls, {trend(second, value):+.3f} in the second half")
        for name, unit, value in values
    ]  # fmt: skip


def _figures(result: dict[str, Any]) -> list[Figure]:
    samples: list[Sample] = result["samples"]
    sensors: list[str] = result["sensors"]
    end = samples[-1]
    cycles = end.cycle
    polls = cycles * len(sensors)
    # Warm-up: the first WARMUP of the run (at least one sample in), so start-up
    # allocations, the first commits and the caches filling do not count as drift.
    warm = _at(samples, max(SAMPLE_EVERY, int(cycles * WARMUP)))
    after = [s for s in samples if s.cycle >= warm.cycle]
    half = _at(samples, cycles // 2)
    second = [s for s in samples if s.cycle >= half.cycle]
    sim_days = (end.sim_s - warm.sim_s) / DAY_S or 1e-9
    sim_hours = sim_days * 24
    group = "soak"

    def trend(of: list[Sample], value: Callable[[Sample], float]) -> float:
        """MB per million polls, least squares over the samples ``of``."""
        return _slope([s.cycle * len(sensors) for s in of], [value(s) for s in of]) * 1e6

    def rss(s: Sample) -> float:
        return s.rss_mb

    def host_rss(s: Sample) -> float:
        return s.host_rss_mb

    def guest_rss(s: Sample) -> float:
        return sum(s.guest_rss.values())

    bounds = [_at(samples, cycles * i // PHASES) for i in range(PHASES + 1)]
    pairs = list(itertools.pairwise(bounds))
    phases = [b.rss_mb - a.rss_mb for a, b in pairs]
    down = ", ".join(f"{n} {s}" for n, s in result["not_running"].items())
    figures = [
        figure(group, "cycles per second", "1/s", [cycles / end.real_s],
               f"{cycles} cycles, {polls} polls of {len(sensors)} sensor plugins, "
               f"{end.sim_s / DAY_S:.2f} simulated days in {end.real_s:.0f} s"
               + (f"; not running after load: {down}" if down else "")),
        figure(group, f"RSS drift, after warm-up ({WARMUP:.0%} to end)", "MB",
               [end.rss_mb - warm.rss_mb],
               f"{warm.rss_mb:.1f} MB at cycle {warm.cycle} -> {end.rss_mb:.1f}; target < 2 "
               f"over 2,000,000 polls; trend {trend(after, rss):+.2f} MB per million polls, "
               f"{trend(second, rss):+.2f} in the second half"),
        figure(group, "RSS drift, whole run", "MB", [end.rss_mb - samples[0].rss_mb],
               f"from {samples[0].rss_mb:.1f} MB after loading, warm-up included"),
        figure(group, "RSS drift per fifth of the run", "MB", phases,
               "; ".join(f"cycles {a.cycle}-{b.cycle}: {b.rss_mb - a.rss_mb:+.2f}"
                         for a, b in pairs)),
        figure(group, "RSS drift outside guest memory, after warm-up", "MB",
               [end.host_rss_mb - warm.host_rss_mb],
               f"the host's own (Python, wasmtime, SQLite, stacks): {warm.host_rss_mb:.1f} -> "
               f"{end.host_rss_mb:.1f} MB; trend {trend(after, host_rss):+.2f} MB per million "
               f"polls, {trend(second, host_rss):+.2f} in the second half"),
        *_host_figures(warm, end, trend, after, second),
        figure(group, "RSS drift inside guest memory, after warm-up", "MB",
               [guest_rss(end) - guest_rss(warm)],
               f"pages the guests touched: {guest_rss(warm):.1f} -> {guest_rss(end):.1f} MB; "
               f"trend {trend(after, guest_rss):+.2f} MB per million polls; bounded by each "
               "plugin's recycle at 85% of max_memory_mb"),
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
        touched = (end.guest_rss.get(name, 0.0), warm.guest_rss.get(name, 0.0))
        if recycles == 0:  # across a recycle the two instances are not comparable
            figures.append(
                figure(group, f"guest memory resident drift: {name}", "MB",
                       [touched[0] - touched[1]],
                       f"{touched[1]:.1f} -> {touched[0]:.1f} MB resident of its "
                       f"{last / MB:.1f} MB linear memory")
            )  # fmt: skip
    traced = _traced_growth(result["traced"])
    if traced is not None:
        figures.append(traced)
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
               [(db_per_day * kept_days + result["series"] * HOURLY_BYTES_PER_SERIES_YEAR) / MB],
               f"raw samples of the last {retention:g} days (retention_days) plus a year of "
               f"hourly statistics for {result['series']} series (0.36 MB each, measured "
               "separately; the 5-minute ones are kept 10 days, inside the raw figure's noise)"),
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
