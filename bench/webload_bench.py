"""Poll cadence under web load (issue 9, item 6).

A host in this process polls every ``INTERVAL`` while another process holds
``STREAMS`` live streams open and ``FETCHERS`` clients fetch /api/readings as
fast as they can (loopback only, bounded in time). The figure is the
lateness of each cycle start against the fixed schedule, with and without
the load, side by side in one run.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from bench.common import ROOT, Figure, figure, free_port, progress
from wasihost.boards.sim import SimBoard
from wasihost.config import parse_config
from wasihost.host import Host
from wasihost.web.server import create_app

INTERVAL = 0.5
STREAMS = 100
FETCHERS = 4

LOAD = """
import asyncio, sys, time, aiohttp
async def main(port, seconds, streams, fetchers):
    stop = time.monotonic() + seconds
    fetched = 0
    async def stream(session):
        async with session.get(f"http://127.0.0.1:{port}/api/stream") as r:
            while time.monotonic() < stop and await r.content.readline():
                pass
    async def fetch(session):
        nonlocal fetched
        while time.monotonic() < stop:
            async with session.get(f"http://127.0.0.1:{port}/api/readings") as r:
                await r.read()
                fetched += 1
    connector = aiohttp.TCPConnector(limit=streams + fetchers + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        open_streams = [asyncio.create_task(stream(session)) for _ in range(streams)]
        await asyncio.wait_for(asyncio.gather(*[fetch(session) for _ in range(fetchers)]),
                               seconds + 10)
        for task in open_streams:  # a stream waits for the next event: just close it
            task.cancel()
        await asyncio.gather(*open_streams, return_exceptions=True)
    print(fetched)
asyncio.run(main(*map(int, sys.argv[1:])))
"""


async def _lateness(host: Host, cycles: int) -> list[float]:
    """Run ``cycles`` cycles on the host's cadence; ms each start was late."""
    starts: list[float] = []
    real_run_once = host.cycle.run_once

    async def run_once() -> object:
        starts.append(time.perf_counter())
        return await real_run_once()

    host.cycle.run_once = run_once  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(host.cycle.run_forever(INTERVAL, stop, after=host.after_cycle))
    while len(starts) < cycles:
        await asyncio.sleep(INTERVAL / 4)
    stop.set()
    await task
    host.cycle.run_once = real_run_once  # type: ignore[method-assign]
    first = starts[0]
    return [max(0.0, (s - first - i * INTERVAL) * 1000) for i, s in enumerate(starts[:cycles])]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _measure(cycles: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="wasihost-bench-") as tmp:
        plugins = {
            "pi-monitor": {"led": 0}, "dht22": {"led": 1}, "bme680": {"led": 2}, "dashboard": {},
        }  # fmt: skip
        config = parse_config({
            "polling": {"interval_seconds": INTERVAL},
            "logging": {"show_sensor_data": False},
            "web": {"enabled": False},
            "history": {"path": str(Path(tmp) / "h.sqlite3")},
            "state": {"dir": str(Path(tmp) / "state")},
            "plugins": {n: {**p, "wasm": str(ROOT / "build" / f"{n}.wasm")}
                        for n, p in plugins.items()},
        })  # fmt: skip
        host = Host(config, board=SimBoard(seed=1))
        host.load_plugins()
        runner = web.AppRunner(create_app(host), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            progress(f"cadence without load ({cycles} cycles)")
            quiet = await _lateness(host, cycles)
            seconds = int(cycles * INTERVAL) + 2
            progress(f"cadence with {STREAMS} streams and {FETCHERS} fetchers ({cycles} cycles)")
            load = subprocess.Popen(
                [sys.executable, "-c", LOAD, str(port), str(seconds), str(STREAMS), str(FETCHERS)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            await asyncio.sleep(1.0)  # let the clients connect
            loaded = await _lateness(host, cycles)
            out, err = await asyncio.to_thread(load.communicate, timeout=seconds + 30)
            if load.returncode != 0 or not out.strip():
                raise RuntimeError(f"the load generator failed: {err.strip()[-2000:]}")
            fetched = int(out.strip())
        finally:
            host.stream.close()
            await runner.cleanup()
            host.close()
    figures = []
    for label, values in (("no load", quiet), ("under load", loaded)):
        figures += [
            figure("cadence", f"cycle start lateness p50, {label}", "ms",
                   [statistics.median(values)]),
            figure("cadence", f"cycle start lateness p99, {label}", "ms",
                   [_percentile(values, 0.99)]),
            figure("cadence", f"cycle start lateness max, {label}", "ms", [max(values)],
                   f"{len(values)} cycles at {INTERVAL * 1000:.0f} ms"),
        ]  # fmt: skip
    figures.append(figure("cadence", "/api/readings served during the load", "1/s",
                          [fetched / (cycles * INTERVAL)],
                          f"{STREAMS} streams open; {FETCHERS} fetchers"))  # fmt: skip
    return figures


def run(quick: bool = False) -> list[Figure]:
    return asyncio.run(_measure(20 if quick else 60))
