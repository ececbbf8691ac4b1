"""Per-call cost of each seed plugin's poll on both call paths and natively, and a full cycle.

"compiled" is the host's default call path (call plans converting in C,
runtime/compiled.py); "typed" the same plans in Python (runtime/plans.py, used
where the C module is not built); "generic" is wasmtime-py's public component
API (the ``[runtime] call_path = "generic"`` fallback); "native" is the same
app.py in-process against the same capability code (wasihost.testing). All
run the same polls on the same simulated board, interleaved run by run, so
ratios are same-run.

"typed, outside our Python" splits a poll on the Python plans: the time
inside wasmtime's call minus the time our capability handlers spend in
Python, i.e. the guest (CPython compiled to wasm), wasmtime's own
conversions and the C<->Python transitions: what no Python-side conversion
code can remove, and why the conversions moved to C.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, figure, progress
from wasihost.boards.sim import SimBoard
from wasihost.capabilities import Grants
from wasihost.config import HostConfig, parse_config
from wasihost.errors import WasihostError
from wasihost.host import Host
from wasihost.runtime import plans
from wasihost.runtime.shared import runtime_wasm
from wasihost.testing import ComponentPlugin, NativePlugin, RuntimePlugin

# "runtime": the plugin's folder in the shared Python runtime, on the compiled path
# (how the host runs a source plugin); the others run its own built component.
KINDS = ("compiled", "typed", "generic", "native", "runtime")

SEED: dict[str, tuple[Grants, dict[str, Any]]] = {
    "dht22": (Grants(leds=frozenset({1}), gpio_pins=frozenset({4}), buzzer=True),
              {"gpio_pin": 4, "led": 1}),
    "pi-monitor": (Grants(leds=frozenset({0}), fan=True), {"led": 0}),
    "bme680": (Grants(leds=frozenset({2}), i2c_addresses=frozenset({0x77})),
               {"i2c_address": 0x77, "led": 2}),
    "sht31": (Grants(leds=frozenset({3}), i2c_addresses=frozenset({0x44})), {"led": 3}),
}  # fmt: skip


def _direct_poll(plugin: NativePlugin | ComponentPlugin) -> Callable[[], Any]:
    """The poll without the handover to the plugin's thread: these figures compare
    call paths, and the handover (a thread wake-up each way, the same on every
    path) has figures of its own (``_handover_figures``)."""
    if isinstance(plugin, NativePlugin):
        return plugin.poll
    live = plugin.plugin
    instance = live._instance  # the bench reaches past the lifecycle on purpose
    assert instance is not None and live._checked is not None
    key = live._checked.logic_key
    return lambda: instance.call(key)


def _per_poll_us(plugin: NativePlugin | ComponentPlugin, polls: int) -> float:
    poll = _direct_poll(plugin)
    started = time.perf_counter()
    for _ in range(polls):
        with contextlib.suppress(WasihostError):  # a simulated read failure is workload too
            poll()
    return (time.perf_counter() - started) / polls * 1e6


def _handover_figures(runs: int, polls: int) -> list[Figure]:
    """What running each guest call on the plugin's own thread costs (issue 14):
    dht22 on the compiled path, called directly, through ``Plugin.call`` (a
    blocking caller), through ``Plugin.call_async`` (the poll cycle), and the
    way the cycle called before (``asyncio.to_thread`` around a direct call)."""
    board = SimBoard(seed=1)
    board.set_dht22(21.0, 45.0)
    grants, settings = SEED["dht22"]
    harness = _harness("compiled", ROOT / "plugins" / "dht22", board=board, grants=grants,
                       settings=settings)  # fmt: skip
    assert isinstance(harness, ComponentPlugin)
    plugin, direct = harness.plugin, _direct_poll(harness)

    def per_call_us(call: Callable[[], Any]) -> float:
        started = time.perf_counter()
        for _ in range(polls):
            with contextlib.suppress(WasihostError):
                call()
        return (time.perf_counter() - started) / polls * 1e6

    async def per_await_us(call: Callable[[], Awaitable[Any]]) -> float:
        started = time.perf_counter()
        for _ in range(polls):
            with contextlib.suppress(WasihostError):
                await call()
        return (time.perf_counter() - started) / polls * 1e6

    samples: dict[str, list[float]] = {k: [] for k in ("direct", "sync", "async", "to_thread")}
    try:
        for _ in range(runs):  # interleaved, one of each at a time
            samples["direct"].append(per_call_us(direct))
            samples["sync"].append(per_call_us(plugin.call))
            samples["async"].append(asyncio.run(per_await_us(plugin.call_async)))
            samples["to_thread"].append(
                asyncio.run(per_await_us(lambda: asyncio.to_thread(direct)))
            )
    finally:
        harness.close()
    return [
        figure("handover", "dht22 poll, direct (no handover)", "µs", samples["direct"]),
        figure("handover", "dht22 poll, Plugin.call (blocking caller)", "µs", samples["sync"]),
        figure("handover", "dht22 poll, Plugin.call_async (the cycle)", "µs", samples["async"]),
        figure("handover", "dht22 poll, asyncio.to_thread + direct (the cycle before)", "µs",
               samples["to_thread"]),
        figure("handover", "call_async / to_thread", "x",
               _ratios(samples["async"], samples["to_thread"]), "same run"),
    ]  # fmt: skip


def _harness(kind: str, plugin_dir: Path, **options: Any) -> NativePlugin | ComponentPlugin:
    if kind == "native":
        options.pop("wasm", None)
        return NativePlugin(plugin_dir, **options)
    if kind == "runtime":
        # ``wasm`` names the plugin's own component; in the runtime it is the runtime's.
        options["wasm"] = runtime_wasm(ROOT / "build")
        return RuntimePlugin(plugin_dir, call_path="compiled", **options)
    return ComponentPlugin(plugin_dir, call_path=kind, **options)  # type: ignore[arg-type]


class _Stopwatch:
    """Total time spent inside the functions it wraps."""

    def __init__(self) -> None:
        self.ns = 0

    def wrap(self, fn: Any) -> Any:
        def call(*args: Any) -> Any:
            started = time.perf_counter_ns()
            try:
                return fn(*args)
            finally:
                self.ns += time.perf_counter_ns() - started

        return call


def _outside_python_us(plugin: ComponentPlugin, polls: int) -> float:
    """Per poll: time inside wasmtime's call minus time in our Python handlers."""
    handlers = {k: h for k, h in plans._HANDLERS.items() if h.plugin == plugin.plugin.name}
    inside, outside = _Stopwatch(), _Stopwatch()
    real = plans._func_call
    plans._HANDLERS.update({k: inside.wrap(h) for k, h in handlers.items()})
    plans._func_call = outside.wrap(real)
    try:
        _per_poll_us(plugin, polls)
    finally:
        plans._func_call = real
        plans._HANDLERS.update(handlers)
    return (outside.ns - inside.ns) / polls / 1000


def _poll_figures(runs: int, polls: int) -> list[Figure]:
    figures = []
    for name, (grants, settings) in SEED.items():
        progress(f"per-poll cost: {name}")
        samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
        harnesses = {}
        for kind in KINDS:
            board = SimBoard(seed=1)
            board.set_dht22(21.0, 45.0)
            clock = itertools.count(1_700_000_000_000, 2000)  # each poll one interval later
            harnesses[kind] = _harness(
                kind, ROOT / "plugins" / name, board=board, grants=grants, settings=settings,
                clock_ms=lambda c=clock: next(c),
            )  # fmt: skip
            _per_poll_us(harnesses[kind], 50)  # warm up
        floor = []
        for _ in range(runs):
            for kind in KINDS:
                samples[kind].append(_per_poll_us(harnesses[kind], polls))
            typed = harnesses["typed"]
            assert isinstance(typed, ComponentPlugin)
            floor.append(_outside_python_us(typed, polls))
        for harness in harnesses.values():
            harness.close()
        compiled, typed, generic, native, runtime = (samples[kind] for kind in KINDS)
        figures += [
            figure("poll", f"{name}: compiled", "µs", compiled, "target <= 30"),
            figure("poll", f"{name}: typed", "µs", typed),
            figure("poll", f"{name}: generic", "µs", generic),
            figure("poll", f"{name}: native", "µs", native),
            figure("poll", f"{name}: in the shared runtime, compiled", "µs", runtime,
                   "a source plugin"),
            figure("poll", f"{name}: shared runtime / own component", "x",
                   _ratios(runtime, compiled), "same run, both compiled; target ~1"),
            figure("poll", f"{name}: generic / compiled", "x", _ratios(generic, compiled),
                   "same run; target >= 8"),
            figure("poll", f"{name}: generic / typed", "x", _ratios(generic, typed), "same run"),
            figure("poll", f"{name}: compiled / native", "x", _ratios(compiled, native),
                   "same run"),
            figure("poll", f"{name}: typed, outside our Python", "µs", floor,
                   "guest + wasmtime + C<->Python"),
        ]  # fmt: skip
    return figures


def _ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=True)]


def _round_trip_figures(runs: int, transfers: int) -> list[Figure]:
    """A guest loop of ``transfers`` i2c.transfer calls, minus the same poll with one."""
    generic = ROOT / "tests" / "plugins" / "generic"
    wasm = ROOT / "build" / "test-plugins" / "generic.wasm"
    grants = Grants(i2c_addresses=frozenset({0x77}))
    per_call: dict[str, list[float]] = {kind: [] for kind in KINDS}
    plugins = {
        (kind, n): _harness(kind, generic, board=SimBoard(seed=1), grants=grants, wasm=wasm,
                            settings={"probe": 0x77, "transfers": n})
        for kind in KINDS
        for n in (1, transfers)
    }  # fmt: skip
    for _ in range(runs):
        for kind in KINDS:
            many = _per_poll_us(plugins[kind, transfers], 20)
            one = _per_poll_us(plugins[kind, 1], 200)
            per_call[kind].append((many - one) / (transfers - 1))
    for plugin in plugins.values():
        plugin.close()
    compiled, typed, generic_path, native, runtime = (per_call[kind] for kind in KINDS)
    return [
        figure("capability", "i2c.transfer round trip, compiled", "µs", compiled,
               "target < 10"),
        figure("capability", "i2c.transfer round trip, typed", "µs", typed),
        figure("capability", "i2c.transfer round trip, generic", "µs", generic_path),
        figure("capability", "i2c.transfer round trip, native", "µs", native),
        figure("capability", "i2c.transfer round trip, in the shared runtime", "µs", runtime),
        figure("capability", "shared runtime / own component (compiled)", "x",
               _ratios(runtime, compiled), "same run"),
        figure("capability", "generic / compiled", "x", _ratios(generic_path, compiled),
               "same run"),
        figure("capability", "generic / typed", "x", _ratios(generic_path, typed), "same run"),
        figure("capability", "compiled / native", "x", _ratios(compiled, native), "same run"),
        figure("capability", "i2c.transfer calls per second, compiled", "1/s",
               [1e6 / v for v in compiled]),
    ]  # fmt: skip


def _cycle_configs(tmp: Path, call_path: str) -> dict[str, HostConfig]:
    common = {
        "logging": {"show_sensor_data": False},
        "web": {"enabled": False},
        "runtime": {"call_path": call_path},
    }
    seed = {
        name: {"wasm": str(ROOT / "build" / f"{name}.wasm"), **({"led": led} if led >= 0 else {})}
        for name, led in (("pi-monitor", 0), ("dht22", 1), ("bme680", 2), ("dashboard", -1))
    }
    generic = str(ROOT / "build" / "test-plugins" / "generic.wasm")
    fifty = {f"s{i}": {"world": "sensor-plugin", "wasm": generic} for i in range(50)}
    return {
        label: parse_config({
            **common,
            "history": {"path": str(tmp / f"{key}-{call_path}.sqlite3")},
            "state": {"dir": str(tmp / f"{key}-{call_path}-state")},
            "plugins": plugins,
        })
        for label, key, plugins in (("4 seed plugins", "seed", seed),
                                    ("50 sensor plugin instances", "fifty", fifty))
    }  # fmt: skip


async def _cycle_ms(config: HostConfig, cycles: int) -> float:
    """Mean ms per full cycle over ``cycles`` cycles, after one warm-up cycle."""
    host = Host(config, board=SimBoard(seed=1))
    host.load_plugins()
    try:
        await host.after_cycle(await host.cycle.run_once())  # warm up
        started = time.perf_counter()
        for _ in range(cycles):
            await host.after_cycle(await host.cycle.run_once())
        return (time.perf_counter() - started) / cycles * 1000
    finally:
        host.close()


async def _cycle_figures(runs: int, cycles: int) -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="wasihost-bench-") as tmp:
        paths = ("compiled", "typed", "generic")
        configs = {path: _cycle_configs(Path(tmp), path) for path in paths}
        for label in configs["compiled"]:
            samples: dict[str, list[float]] = {path: [] for path in paths}
            for _ in range(runs):  # interleaved, one run of each at a time
                for path in paths:
                    samples[path].append(await _cycle_ms(configs[path][label], cycles))
            figures += [
                figure("cycle", f"{label}, compiled, with history and stream", "ms",
                       samples["compiled"]),
                figure("cycle", f"{label}, typed", "ms", samples["typed"]),
                figure("cycle", f"{label}, generic", "ms", samples["generic"]),
                figure("cycle", f"{label}, generic / compiled", "x",
                       _ratios(samples["generic"], samples["compiled"]), "same run"),
            ]  # fmt: skip
    return figures


def run(quick: bool = False) -> list[Figure]:
    runs, polls = (3, 200) if quick else (7, 1000)
    figures = _poll_figures(runs, polls)
    progress("handover to the plugin's thread")
    figures += _handover_figures(runs, polls)
    progress("capability round trip")
    figures += _round_trip_figures(runs, 200 if quick else 1000)
    progress("full cycles")
    figures += asyncio.run(_cycle_figures(runs, 20 if quick else 100))
    return figures
