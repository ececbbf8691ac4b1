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


def _round_trip_figures(runs: int, transfers: int) -> list[Figure]:
    """A guest loop of ``transfers`` i2c.transfer calls, minus the same poll with one."""
    generic = ROOT / "tests" / "plugins" / "generic"
    wasm = ROOT / "build" / "test-plugins" / "generic.wasm"
    grants = Grants(i2c_addresses=frozenset({0x77}))
    per_call: dict[str, list[float]] = {"sandboxed": [], "native": []}
    for kind in ("sandboxed", "native"):
        options: dict[str, Any] = {"wasm": wasm} if kind == "sandboxed" else {}
        cls = ComponentPlugin if kind == "sandboxed" else NativePlugin
        plugins = {
            n: cls(generic, board=SimBoard(seed=1), grants=grants,
                   settings={"probe": 0x77, "transfers": n}, **options)
            for n in (1, transfers)
        }  # fmt: skip
        for _ in range(runs):
            many = _per_poll_us(plugins[transfers], 20)
            one = _per_poll_us(plugins[1], 200)
            per_call[kind].append((many - one) / (transfers - 1))
        for plugin in plugins.values():
            plugin.close()
    ratios = [s / n for s, n in zip(per_call["sandboxed"], per_call["native"], strict=True)]
    return [
        figure("capability", "i2c.transfer round trip, sandboxed", "µs", per_call["sandboxed"],
               "target < 10"),
        figure("capability", "i2c.transfer round trip, native", "µs", per_call["native"]),
        figure("capability", "sandboxed / native", "x", ratios, "same run"),
        figure("capability", "i2c.transfer calls per second, sandboxed", "1/s",
               [1e6 / v for v in per_call["sandboxed"]]),
    ]  # fmt: skip


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
        generic = str(ROOT / "build" / "test-plugins" / "generic.wasm")
        fifty = parse_config({
            "logging": {"show_sensor_data": False},
            "web": {"enabled": False},
            "history": {"path": str(Path(tmp) / "h50.sqlite3")},
            "state": {"dir": str(Path(tmp) / "state50")},
            "plugins": {f"s{i}": {"world": "sensor-plugin", "wasm": generic} for i in range(50)},
        })  # fmt: skip
        figures = []
        for label, cfg in (("4 seed plugins", config), ("50 sensor plugin instances", fifty)):
            host = Host(cfg, board=SimBoard(seed=1))
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
            figures.append(figure("cycle", f"{label}, with history and stream", "ms", samples))
    return figures


def run(quick: bool = False) -> list[Figure]:
    runs, polls = (3, 200) if quick else (7, 1000)
    figures = _poll_figures(runs, polls)
    progress("capability round trip")
    figures += _round_trip_figures(runs, 200 if quick else 1000)
    progress("full cycles")
    figures += asyncio.run(_cycle_figures(runs, 20 if quick else 100))
    return figures
