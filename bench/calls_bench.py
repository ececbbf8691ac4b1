"""Per-call cost of each seed plugin's poll, sandboxed vs native, and a full cycle (issue 9).

"Sandboxed" is the host's call path today (wasmtime-py's generic component
API); "native" is the same app.py in-process against the same capability
code (wasihost.testing). Both run the same polls on the same simulated
board, side by side in one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, figure, progress
from wasihost.boards.sim import SimBoard
from wasihost.capabilities import Grants
from wasihost.config import parse_config
from wasihost.errors import WasihostError
from wasihost.host import Host
from wasihost.testing import ComponentPlugin, NativePlugin

SEED: dict[str, tuple[Grants, dict[str, Any]]] = {
    "dht22": (Grants(leds=frozenset({1}), gpio_pins=frozenset({4}), buzzer=True),
              {"gpio_pin": 4, "led": 1}),
    "pi-monitor": (Grants(leds=frozenset({0}), fan=True), {"led": 0}),
    "bme680": (Grants(leds=frozenset({2}), i2c_addresses=frozenset({0x77})),
               {"i2c_address": 0x77, "led": 2}),
    "sht31": (Grants(leds=frozenset({3}), i2c_addresses=frozenset({0x44})), {"led": 3}),
}  # fmt: skip


def _per_poll_us(plugin: NativePlugin | ComponentPlugin, polls: int) -> float:
    started = time.perf_counter()
    for _ in range(polls):
        with contextlib.suppress(WasihostError):  # a simulated read failure is workload too
            plugin.poll()
    return (time.perf_counter() - started) / polls * 1e6


def _poll_figures(runs: int, polls: int) -> list[Figure]:
    figures = []
    for name, (grants, settings) in SEED.items():
        progress(f"per-poll cost: {name}")
        samples: dict[str, list[float]] = {"native": [], "sandboxed": []}
        for kind, cls in (("native", NativePlugin), ("sandboxed", ComponentPlugin)):
            board = SimBoard(seed=1)
            board.set_dht22(21.0, 45.0)
            clock = itertools.count(1_700_000_000_000, 2000)  # each poll one interval later
            plugin = cls(ROOT / "plugins" / name, board=board, grants=grants, settings=settings,
                         clock_ms=lambda clock=clock: next(clock))  # fmt: skip
            _per_poll_us(plugin, 50)  # warm up
            samples[kind] = [_per_poll_us(plugin, polls) for _ in range(runs)]
            plugin.close()
        native, sandboxed = samples["native"], samples["sandboxed"]
        ratios = [s / n for s, n in zip(sandboxed, native, strict=True)]
        figures += [
            figure("poll", f"{name}: sandboxed", "µs", sandboxed),
            figure("poll", f"{name}: native", "µs", native),
            figure("poll", f"{name}: sandboxed / native", "x", ratios, "same run"),
        ]
    return figures


async def _cycle_figures(runs: int, cycles: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="wasihost-bench-") as tmp:
        config = parse_config({
            "logging": {"show_sensor_data": False},
            "web": {"enabled": False},
            "history": {"path": str(Path(tmp) / "h.sqlite3")},
            "state": {"dir": str(Path(tmp) / "state")},
            "plugins": {
                "pi-monitor": {"led": 0, "wasm": str(ROOT / "build" / "pi-monitor.wasm")},
                "dht22": {"led": 1, "wasm": str(ROOT / "build" / "dht22.wasm")},
                "bme680": {"led": 2, "wasm": str(ROOT / "build" / "bme680.wasm")},
                "dashboard": {"wasm": str(ROOT / "build" / "dashboard.wasm")},
            },
        })  # fmt: skip
        host = Host(config, board=SimBoard(seed=1))
        host.load_plugins()
        try:
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                for _ in range(cycles):
                    await host.after_cycle(await host.cycle.run_once())
                samples.append((time.perf_counter() - started) / cycles * 1000)
        finally:
            host.close()
    return [figure("cycle", "4 seed plugins, with history and stream", "ms", samples)]


def run(quick: bool = False) -> list[Figure]:
    runs, polls = (3, 200) if quick else (7, 1000)
    figures = _poll_figures(runs, polls)
    progress("full cycles")
    figures += asyncio.run(_cycle_figures(runs, 20 if quick else 100))
    return figures
