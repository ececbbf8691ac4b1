"""Bytes written to the card per simulated day, by source (issue 17).

``python -m bench.run --only disk``. First a probe: the seed plugins (as
config/host.toml gives them, source plugins in the shared runtime) run 160
cycles on the simulated board and a simulated clock with history, MQTT (no
broker: messages only queue) and state snapshots on, which gives what each
writer is fed: the samples per cycle (series), the MQTT messages per cycle and
their bytes, each stateful plugin's snapshot, and the log lines per cycle in a
steady state (cycles 100 to 160).

Then each writer runs alone in a subprocess of its own, so ``/proc/self/io``
is that writer's alone, for a simulated day (synthetic timestamps, 2 s apart):

- history (the real ``History``) at commit intervals of 0, 60 and 300 s, with
  and without the statistics tables (``History._compile`` stubbed), pruned
  each simulated hour; in a full run it starts from a database holding the
  default retention (7 days) of samples and statistics, so pruning deletes an
  hour per hour as in a steady state;
- state snapshots (the real ``SnapshotStore``, 60 s, each save a changed state);
- the MQTT outbox (the real ``Outbox``, ``synchronous=FULL``) with the broker
  connected (each cycle ``put_many``, then ``peek`` and ``ack``, as the drain
  loop does) and down (``put_many`` only; the 100 000 cap fills after a few
  hours and each put then deletes the oldest too), each with a write interval
  of 0 (every put written: the simulated board's default, and every board's
  before the memory tier) and 60 s (a Pi's default);
- logs (the cycle's records replayed through ``logging`` as ``wasihost run``
  formats them, to a file), with ``show_sensor_data`` on (the simulated
  board's default) and off (a Pi's).

Figures per simulated day: ``wchar`` (every byte passed to write()),
``write_bytes`` (pages dirtied in the page cache: what reaches the block layer;
a page dirtied again before writeback counts once) and fsync/fdatasync calls.
Since a simulated day takes a minute of real time, the kernel's writeback
would coalesce far more than on a Pi; so every 30 simulated seconds (the
kernel's ``dirty_expire_centisecs``) the bench fdatasyncs the writer's files
itself, as the flusher would have, and does not count those calls. fsyncs are
counted with strace (``-e trace=fsync,fdatasync``) between two markers (an
``fsync`` of a descriptor never open, which fails); without strace, not at all.

SQLite's WAL is split from its checkpoints: the writer's connection gets
``wal_autocheckpoint=0`` and the bench checkpoints (PASSIVE, as the automatic
one) after the commit that brings the WAL to 1000 frames, as SQLite would,
measuring the bytes of commits (WAL frames: 24 + page size bytes each) and of
checkpoints (pages copied into the database file) apart, and adding up the
frame counts ``PRAGMA wal_checkpoint`` returns.

Not seen here: ext4's journal (metadata, written by jbd2, not this process),
journald's own storage of the log lines (stderr is a pipe to it on a Pi), and
the card's flash translation layer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, figure, progress, seed_plugin_tables

INTERVAL_S = 2.0  # [polling] interval_seconds, the default
DAY_S = 86_400.0
WRITEBACK_S = 30.0  # vm.dirty_expire_centisecs: dirty pages older than this are written
CHECKPOINT_FRAMES = 1000  # SQLite's default wal_autocheckpoint
START_MS = 1_780_000_000_000  # 2026-05-28
PROBE_CYCLES = 160
PROBE_STEADY = 100  # cycles before the steady-state window of the probe
PREFILL_DAYS = 7.0  # [history] retention_days, the default
SNAPSHOT_INTERVAL_S = 60.0  # [state] save_interval_seconds, the default
OUTBOX_MAX = 100_000  # [mqtt] outbox_max_messages, the default
DRAIN_BATCH = 100  # mqtt.BATCH
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"  # as wasihost run
MB = 1_000_000
MARKER_FD = 987_654  # never open: fsync() fails with EBADF


# -- helpers --------------------------------------------------------------------------


def proc_io() -> dict[str, int]:
    """This process's /proc/self/io counters."""
    lines = Path("/proc/self/io").read_text().splitlines()
    return {k: int(v) for k, _, v in (line.partition(":") for line in lines)}


def io_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in ("wchar", "write_bytes", "cancelled_write_bytes")}


def count_syncs(trace: str) -> int | None:
    """fsync/fdatasync calls that succeeded between the first two marker calls
    (``fsync(MARKER_FD)``, which fails) in strace's output; None without both."""
    inside = False
    markers = 0
    count = 0
    for line in trace.splitlines():
        m = re.search(r"\b(fsync|fdatasync)\((-?\d+)\)\s+=\s+(-?\d+)", line)
        if m is None:
            continue
        if m.group(2) == str(MARKER_FD):
            markers += 1
            inside = markers == 1
            if markers == 2:
                return count
            continue
        if inside and m.group(3) == "0":
            count += 1
    return None


def _marker() -> None:
    """A failing fsync strace sees: where the measured part starts or ends."""
    with suppress(OSError):
        os.fsync(MARKER_FD)


class Writeback:
    """fdatasync ``paths`` every ``WRITEBACK_S`` simulated seconds, as the
    kernel's flusher writes dirty pages back on a Pi; counts its calls."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.due = WRITEBACK_S
        self.calls = 0

    def tick(self, sim_s: float) -> None:
        if sim_s < self.due:
            return
        self.due = sim_s + WRITEBACK_S
        self.flush()

    def flush(self) -> None:
        for path in self.paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fdatasync(fd)
                self.calls += 1
            finally:
                os.close(fd)


class Wal:
    """Checkpoint ``db`` the way ``wal_autocheckpoint=1000`` would, measuring
    the WAL's bytes (commits) and the checkpoints' bytes (copies) apart."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute(f"PRAGMA wal_autocheckpoint={0}")
        self.page = int(db.execute("PRAGMA page_size").fetchone()[0])
        self.pending = 0  # frames since the last checkpoint, from the bytes written
        self.frames = 0  # frames checkpointed, as PRAGMA wal_checkpoint counts them
        self.checkpoints = 0
        self.wal_wchar = 0
        self.wal_write_bytes = 0
        self.ckpt_wchar = 0
        self.ckpt_write_bytes = 0

    @contextmanager
    def commit(self) -> Iterator[None]:
        """Around a call that commits: its bytes are WAL frames; checkpoint after it
        when the WAL holds ``CHECKPOINT_FRAMES`` frames or more."""
        before = proc_io()
        yield
        d = io_delta(before, proc_io())
        self.wal_wchar += d["wchar"]
        self.wal_write_bytes += d["write_bytes"]
        self.pending += d["wchar"] // (self.page + 24)
        if self.pending >= CHECKPOINT_FRAMES:
            self.checkpoint()

    def checkpoint(self) -> None:
        before = proc_io()
        _busy, log, _done = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        d = io_delta(before, proc_io())
        self.ckpt_wchar += d["wchar"]
        self.ckpt_write_bytes += d["write_bytes"]
        self.frames += int(log)
        self.checkpoints += 1
        self.pending = 0

    def result(self) -> dict[str, Any]:
        return {
            "wal_wchar": self.wal_wchar,
            "wal_write_bytes": self.wal_write_bytes,
            "ckpt_wchar": self.ckpt_wchar,
            "ckpt_write_bytes": self.ckpt_write_bytes,
            "frames": self.frames,
            "checkpoints": self.checkpoints,
            "page": self.page,
        }


def _measured(
    sim_s: float, loop: Callable[[], dict[str, Any]], writeback: Writeback
) -> dict[str, Any]:
    """Run ``loop`` between markers and io samples; the result per simulated day."""
    _marker()
    before = proc_io()
    extra = loop()
    writeback.flush()
    d = io_delta(before, proc_io())
    _marker()
    return {**d, **extra, "sim_s": sim_s, "writeback_syncs": writeback.calls}


# -- the probe: what the seed plugins produce ---------------------------------------


def _seed_config(workdir: Path, show_sensor_data: bool) -> Any:
    from wasihost.config import parse_config

    plugins: dict[str, Any] = seed_plugin_tables()
    return parse_config({
        "polling": {"interval_seconds": INTERVAL_S},
        "logging": {"show_sensor_data": show_sensor_data},
        "web": {"enabled": False},
        "mqtt": {"enabled": True, "outbox_path": str(workdir / "outbox.sqlite3")},
        "reload": {"enabled": False},
        "history": {"path": str(workdir / "history.sqlite3"), "commit_interval_seconds": 0},
        "state": {"dir": str(workdir / "state")},
        "runtime": {"python_runtime": str(ROOT / "build" / "python-runtime.wasm")},
        "plugins": plugins,
    })  # fmt: skip


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def _probe(workdir: Path) -> dict[str, Any]:
    from wasihost.boards.sim import SimBoard
    from wasihost.host import Host

    sim = {"s": 0.0}
    host = Host(
        _seed_config(workdir, show_sensor_data=True),
        board=SimBoard(seed=1),
        clock_ms=lambda: START_MS + int(sim["s"] * 1000),
        monotonic=lambda: 1000.0 + sim["s"],
    )
    capture = _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        host.load_plugins()
        assert host.outbox is not None
        series: dict[tuple[str, str], tuple[str, str, float]] = {}
        samples = 0
        depth0 = 0
        last_messages = 0
        snapshots_before: dict[str, bytes | None] = {}
        for cycle in range(PROBE_CYCLES):
            if cycle == PROBE_STEADY:
                capture.records.clear()
                depth0 = host.outbox.depth()
                snapshots_before = {n: p.snapshot() for n, p in host.plugins.items() if p.stateful}
            before = host.outbox.depth()
            readings = await host.cycle.run_once()
            await host.after_cycle(readings)
            last_messages = host.outbox.depth() - before
            sim["s"] += INTERVAL_S
            if cycle >= PROBE_STEADY:
                for r in readings:
                    for m in r.measurements:
                        series[(m.plugin, m.name)] = (m.unit, m.device_class, m.value)
                        samples += 1
        steady = PROBE_CYCLES - PROBE_STEADY
        newest = host.outbox.peek(10**9)[-last_messages:]
        queued = host.outbox.depth() - depth0
        snapshots = {n: p.snapshot() for n, p in host.plugins.items() if p.stateful}
        records = [
            (r.name, r.levelno, r.getMessage()) for r in capture.records if r.name != "asyncio"
        ]
        running = sorted(host.running())
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
        host.close()
    return {
        "running": running,
        "series": [[p, f, u, d, v] for (p, f), (u, d, v) in sorted(series.items())],
        "samples_per_cycle": samples / steady,
        "messages_per_cycle": queued / steady,
        "messages": [[m.topic, m.payload.decode("latin-1"), m.qos] for _, m in newest],
        "snapshots": {n: (s or b"").decode("latin-1") for n, s in snapshots.items()},
        "snapshots_changed": {
            n: snapshots_before.get(n) != s for n, s in snapshots.items()
        },  # in 60 simulated seconds
        "log_records": records,
        "log_cycles": steady,
    }


# -- the writers ---------------------------------------------------------------------


def _history(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    from wasihost.model import Measurement, Reading
    from wasihost.telemetry.history import History

    path = workdir / "history.sqlite3"
    series: list[list[Any]] = spec["series"]
    commit_s: float = spec["commit_s"]
    cycles = int(spec["sim_s"] / INTERVAL_S)
    start_ms = START_MS
    if spec.get("prefill"):
        shutil.copyfile(spec["prefill"], path)
        with sqlite3.connect(path) as conn:
            (top,) = conn.execute("SELECT MAX(id) >> 12 FROM timeline").fetchone()
        conn.close()
        start_ms = int(top) + int(INTERVAL_S * 1000)
    history = History(path)
    if not spec["statistics"]:
        history._compile = lambda rows: None  # type: ignore[method-assign]
    wal = Wal(history._db)
    plugins = sorted({s[0] for s in series})
    writeback = Writeback([path, path.with_name(path.name + "-wal")])
    prune_every = int(3600 / INTERVAL_S)
    stats = {"prune_wchar": 0, "commits": 0, "rows": 0}

    def loop() -> dict[str, Any]:
        batch: list[Reading] = []
        due = 0.0
        for cycle in range(cycles):
            sim_s = cycle * INTERVAL_S
            t = start_ms + int(sim_s * 1000)
            wobble = (cycle % 97) / 97.0
            for plugin in plugins:
                ms = tuple(
                    Measurement(p, f, float(v) + wobble, u, d, t)
                    for p, f, u, d, v in series
                    if p == plugin
                )
                batch.append(Reading(plugin, "sensor-plugin", t, ms))
            if sim_s >= due:
                with wal.commit():
                    stats["rows"] += history.write(batch)
                stats["commits"] += 1
                batch = []
                due = sim_s + commit_s
            if cycle % prune_every == prune_every - 1:
                before = wal.wal_wchar
                with wal.commit():
                    history.prune(t)
                stats["prune_wchar"] += wal.wal_wchar - before
            writeback.tick(sim_s)
        if batch:
            with wal.commit():
                stats["rows"] += history.write(batch)
            stats["commits"] += 1
        return {**stats, **wal.result()}

    try:
        return _measured(cycles * INTERVAL_S, loop, writeback)
    finally:
        history.close()


def _prefill(series: list[list[Any]], path: Path, days: float) -> None:
    """``days`` of samples every 2 s and their statistics, ending just before
    ``START_MS``, written the fast way (one transaction)."""
    from wasihost.telemetry.history import History

    History(path).close()
    n = int(days * DAY_S / INTERVAL_S)
    first = START_MS - n * int(INTERVAL_S * 1000)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for i, (plugin, field, unit, device_class, value) in enumerate(series, 1):
        conn.execute(
            "INSERT INTO series (id, plugin, field, unit, device_class) VALUES (?, ?, ?, ?, ?)",
            (i, plugin, field, unit, device_class),
        )
        conn.executemany(
            "INSERT INTO timeline (id, series_id, value) VALUES ((? << 12) | ?, ?, ?)",
            ((first + k * 2000, i, i, float(value) + (k % 97) / 97.0) for k in range(n)),
        )
    conn.execute(
        "INSERT INTO stats_5m SELECT (id >> 12) - (id >> 12) % 300000, series_id, COUNT(*), "
        "AVG(value), MIN(value), MAX(value) FROM timeline GROUP BY 1, 2"
    )
    conn.execute(
        "INSERT INTO stats_1h SELECT bucket_ms - bucket_ms % 3600000, series_id, SUM(n), "
        "SUM(mean * n) / SUM(n), MIN(min), MAX(max) FROM stats_5m GROUP BY 1, 2"
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _snapshots(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    from wasihost.snapshots import SnapshotStore

    sim = {"s": 0.0}
    store = SnapshotStore(workdir / "state", SNAPSHOT_INTERVAL_S, clock=lambda: 1000.0 + sim["s"])
    states = {n: s.encode("latin-1") for n, s in spec["snapshots"].items()}
    cycles = int(spec["sim_s"] / INTERVAL_S)
    writeback = Writeback([])  # every save is fsynced already

    def loop() -> dict[str, Any]:
        saves = 0
        for cycle in range(cycles):
            sim["s"] = cycle * INTERVAL_S
            for name, data in states.items():
                if store.due(name):  # a changed state each time: the worst case
                    saves += store.save(name, data + cycle.to_bytes(4, "little"))
        return {"saves": saves}

    return _measured(cycles * INTERVAL_S, loop, writeback)


def _outbox(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    from wasihost.telemetry.outbox import Outbox, OutboxMessage

    path = workdir / "outbox.sqlite3"
    clock = [0.0]  # the simulated monotonic clock the write interval is measured on
    outbox = Outbox(path, OUTBOX_MAX, spec["write_interval_s"], monotonic=lambda: clock[0])
    wal = Wal(outbox._db)
    messages = [OutboxMessage(t, p.encode("latin-1"), q) for t, p, q in spec["messages"]]
    cycles = int(spec["sim_s"] / INTERVAL_S)
    connected: bool = spec["connected"]
    writeback = Writeback([])  # synchronous=FULL: each commit is fsynced already

    def loop() -> dict[str, Any]:
        for _ in range(cycles):
            with wal.commit():
                outbox.put_many(messages)
            if connected:
                ids = [i for i, _ in outbox.peek(DRAIN_BATCH)]
                with wal.commit():
                    outbox.ack(ids)
            clock[0] += INTERVAL_S
        return {**wal.result(), "depth": outbox.depth(), "dropped": outbox.dropped}

    try:
        return _measured(cycles * INTERVAL_S, loop, writeback)
    finally:
        outbox.close()


def _logs(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    path = workdir / "host.log"
    stream = path.open("a")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    shown: bool = spec["show_sensor_data"]
    records = [
        (logging.getLogger(name), level, message)
        for name, level, message in spec["log_records"]
        if shown or name != "wasihost.cycle" or level > logging.INFO
    ]
    per_cycle = spec["log_cycles"]
    days_cycles = int(spec["sim_s"] / INTERVAL_S)
    writeback = Writeback([path])

    def loop() -> dict[str, Any]:
        lines = 0
        for chunk in range(days_cycles // per_cycle):
            for logger, level, message in records:
                logger.log(level, "%s", message)
                lines += 1
            writeback.tick(chunk * per_cycle * INTERVAL_S)
        return {"lines": lines}

    try:
        return _measured(days_cycles // per_cycle * per_cycle * INTERVAL_S, loop, writeback)
    finally:
        root.removeHandler(handler)
        stream.close()


WRITERS: dict[str, Callable[[dict[str, Any], Path], dict[str, Any]]] = {
    "history": _history,
    "snapshots": _snapshots,
    "outbox": _outbox,
    "logs": _logs,
}


def child(argv: Sequence[str]) -> int:
    """``python -m bench.disk_bench probe|WRITER SPEC.json OUT.json WORKDIR``."""
    what, spec_path, out_path, workdir = argv
    spec = json.loads(Path(spec_path).read_text())
    if what == "probe":
        result = asyncio.run(_probe(Path(workdir)))
    elif what == "prefill":
        _prefill(spec["series"], Path(spec["path"]), spec["days"])
        result = {}
    else:
        result = WRITERS[what](spec, Path(workdir))
    Path(out_path).write_text(json.dumps(result))
    return 0


# -- the parent ----------------------------------------------------------------------


def _spawn(what: str, spec: dict[str, Any], tmp: Path, label: str) -> dict[str, Any]:
    """Run one writer in a subprocess of its own (under strace when there is one)."""
    work = Path(tempfile.mkdtemp(prefix=f"{what}-", dir=tmp))
    spec_path, out_path, trace_path = work / "spec.json", work / "out.json", work / "trace"
    spec_path.write_text(json.dumps(spec))
    command = [sys.executable, "-m", "bench.disk_bench", what, str(spec_path), str(out_path),
               str(work)]  # fmt: skip
    strace = shutil.which("strace") if what in WRITERS else None
    if strace:
        command = [strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=fsync,fdatasync",
                   "-o", str(trace_path), *command]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["real_s"] = time.perf_counter() - started
    if strace and trace_path.exists():
        syncs = count_syncs(trace_path.read_text())
        result["syncs"] = None if syncs is None else syncs - result["writeback_syncs"]
    if what in WRITERS:
        progress(f"{label}: {_line(result)} ({result['real_s']:.0f} s)")
    shutil.rmtree(work, ignore_errors=True)
    return result


def per_day(result: dict[str, Any], key: str) -> float:
    """``result[key]`` scaled from the simulated seconds measured to a day."""
    return float(result[key]) * DAY_S / float(result["sim_s"])


def _line(r: dict[str, Any]) -> str:
    syncs = "n/a" if r.get("syncs") is None else f"{per_day(r, 'syncs'):.0f}"
    return (
        f"wchar {per_day(r, 'wchar') / MB:.1f} MB/day, write_bytes "
        f"{per_day(r, 'write_bytes') / MB:.1f} MB/day, {syncs} fsyncs/day"
    )


def run(quick: bool = False) -> list[Figure]:
    sim_s = DAY_S / 4 if quick else DAY_S
    group = "disk"
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="wasihost-disk-") as name:
        tmp = Path(name)
        progress("disk: probing the seed plugins (160 cycles, history, MQTT and snapshots on)")
        probe = _spawn("probe", {}, tmp, "probe")
        series = probe["series"]
        n_series = len(series)
        figures.append(
            figure(group, "seed plugins: samples per cycle", "count",
                   [probe["samples_per_cycle"]],
                   f"{n_series} series of {', '.join(probe['running'])}; "
                   f"{probe['messages_per_cycle']:.1f} MQTT messages per cycle, "
                   f"{sum(len(m[1]) for m in probe['messages'])} payload bytes")
        )  # fmt: skip
        prefill = None
        if not quick:
            prefill = tmp / "prefill.sqlite3"
            progress(f"disk: a history of {PREFILL_DAYS:g} days of {n_series} series to start from")
            _spawn("prefill", {"series": series, "path": str(prefill), "days": PREFILL_DAYS},
                   tmp, "prefill")  # fmt: skip
        days = f"{sim_s / DAY_S:g} simulated day(s)"
        totals: dict[str, dict[str, Any]] = {}

        def add(label: str, result: dict[str, Any], note: str) -> None:
            totals[label] = result
            syncs = result.get("syncs")
            syncs_note = "" if syncs is None else f"; {per_day(result, 'syncs'):.0f} fsyncs/day"
            figures.append(
                figure(
                    group,
                    f"{label}: wchar",
                    "MB/day",
                    [per_day(result, "wchar") / MB],
                    note + syncs_note,
                )
            )
            figures.append(figure(group, f"{label}: write_bytes", "MB/day",
                                  [per_day(result, "write_bytes") / MB], ""))  # fmt: skip

        for commit_s in (0.0, 60.0, 300.0):
            for statistics in (True, False):
                label = f"history, commit {commit_s:g} s" + ("" if statistics else ", raw only")
                spec = {"series": series, "commit_s": commit_s, "statistics": statistics,
                        "sim_s": sim_s, "prefill": str(prefill) if prefill else None}  # fmt: skip
                r = _spawn("history", spec, tmp, label)
                add(label, r,
                    f"{days}; WAL {per_day(r, 'wal_wchar') / MB:.1f} MB/day "
                    f"({per_day(r, 'frames'):.0f} frames of {r['page']} B), checkpoints "
                    f"{per_day(r, 'ckpt_wchar') / MB:.1f} MB/day "
                    f"({per_day(r, 'checkpoints'):.0f}), prune "
                    f"{per_day(r, 'prune_wchar') / MB:.1f} MB/day; "
                    f"{per_day(r, 'commits'):.0f} commits/day")  # fmt: skip
                if not statistics:
                    full = totals[label.removesuffix(", raw only")]
                    share = per_day(full, "wchar") - per_day(r, "wchar")
                    figures.append(
                        figure(group, f"history, commit {commit_s:g} s: statistics' share",
                               "MB/day", [share / MB], "wchar with the statistics tables minus "
                               "without")
                    )  # fmt: skip
        r = _spawn("snapshots", {"snapshots": probe["snapshots"], "sim_s": sim_s}, tmp,
                   "snapshots")  # fmt: skip
        sizes = ", ".join(f"{n} {len(s)} B" for n, s in probe["snapshots"].items())
        add(
            "state snapshots, 60 s",
            r,
            f"{sizes}; {per_day(r, 'saves'):.0f} saves/day, each a changed state",
        )
        for connected, interval_s in ((True, 0.0), (True, 60.0), (False, 0.0), (False, 60.0)):
            label = (
                f"MQTT outbox, broker {'connected' if connected else 'down'}, "
                f"write interval {interval_s:g} s"
            )
            spec = {"messages": probe["messages"], "connected": connected, "sim_s": sim_s,
                    "write_interval_s": interval_s}  # fmt: skip
            r = _spawn("outbox", spec, tmp, label)
            add(label, r,
                f"WAL {per_day(r, 'wal_wchar') / MB:.1f} MB/day, checkpoints "
                f"{per_day(r, 'ckpt_wchar') / MB:.1f} MB/day; depth {r['depth']} at the end, "
                f"{r['dropped']} dropped by the cap")  # fmt: skip
        for shown in (True, False):
            label = f"logs, show_sensor_data={'true' if shown else 'false'}"
            spec = {"log_records": probe["log_records"], "log_cycles": probe["log_cycles"],
                    "show_sensor_data": shown, "sim_s": sim_s}  # fmt: skip
            r = _spawn("logs", spec, tmp, label)
            add(label, r, f"{per_day(r, 'lines'):.0f} lines/day at level info, to a file")
        # The Pi's defaults: history committed every 60 s, show_sensor_data off, the
        # outbox written once a minute (nothing while the broker keeps up).
        pi = ["history, commit 60 s", "state snapshots, 60 s", "logs, show_sensor_data=false"]
        mqtt = "MQTT outbox, broker connected, write interval 60 s"
        for what, parts in (("Pi defaults (MQTT off)", pi), ("Pi defaults + MQTT", [*pi, mqtt])):
            for key in ("wchar", "write_bytes"):
                total = sum(per_day(totals[k], key) for k in parts)
                figures.append(figure(group, f"total, {what}: {key}", "MB/day", [total / MB],
                                      " + ".join(parts)))  # fmt: skip
            if all(totals[k].get("syncs") is not None for k in parts):
                total = sum(per_day(totals[k], "syncs") for k in parts)
                figures.append(figure(group, f"total, {what}: fsyncs", "1/day", [total], ""))
    return figures


if __name__ == "__main__":
    sys.exit(child(sys.argv[1:]))
