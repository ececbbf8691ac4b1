"""How precisely the host keeps its deadlines against a hostile guest (issue 14).

- A guest spinning in wasm (``chaos`` loop mode) traps by epoch interruption:
  how long its caller waits for a 200 ms deadline, on a quiet machine and with
  four processes burning both cores (a Pi busy with something else).
- A guest blocked in a WASI clock wait (``chaos`` sleep mode, 60 s) cannot be
  interrupted: how long its caller waits before the host gives up on it
  (deadline + ``GRACE_S``), quiet and loaded.
- A whole cycle of the well-behaved seed dht22 next to eight plugins stuck
  in ``time.sleep`` (for 5 s, measured while they are stuck): what the cycle
  costs while they are hung, against the same cycle without them, in the
  same run.

The quiet and loaded figures come from the same run, one after the other.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, figure, progress
from wasihost.boards.sim import SimBoard
from wasihost.config import parse_config
from wasihost.errors import PluginError
from wasihost.host import Host

CHAOS = ROOT / "build" / "test-plugins" / "chaos.wasm"
DEADLINE_MS = 200


def _burn(stop: Any) -> None:
    while not stop.is_set():
        pass


@contextmanager
def _loaded(processes: int = 4) -> Iterator[None]:
    """Other processes keeping every core busy while the body runs."""
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=_burn, args=(stop,)) for _ in range(processes)]
    for burner in burners:
        burner.start()
    try:
        yield
    finally:
        stop.set()
        for burner in burners:
            burner.join()


def _host(tmp: Path, plugins: dict[str, dict[str, Any]]) -> Host:
    config = parse_config(
        {
            "web": {"enabled": False},
            "history": {"path": str(tmp / "history.sqlite3")},
            "state": {"dir": str(tmp / "state")},
            # Back off for a moment only, and never quarantine: every call is a sample.
            "supervision": {
                "backoff_initial_seconds": 0.001,
                "backoff_max_seconds": 0.001,
                "quarantine_after_traps": 1000,
            },
            "plugins": plugins,
        }
    )
    host = Host(config, board=SimBoard(seed=1))
    host.load_plugins()
    return host


def _chaos(**settings: Any) -> dict[str, Any]:
    return {
        "wasm": str(CHAOS),
        "world": "dht22-plugin",
        "timeout_ms": DEADLINE_MS,
        "settings": settings,
    }


def _waits_ms(host: Host, name: str, calls: int) -> list[float]:
    """How long each of ``calls`` calls kept its caller waiting."""
    plugin = host.plugins[name]
    waits = []
    for _ in range(calls):
        give_up = time.monotonic() + 120
        while not plugin.due():  # backoff, or a hung call still to return
            assert time.monotonic() < give_up, f"{name} never came back"
            time.sleep(0.01)
        started = time.perf_counter()
        with suppress(PluginError):  # a trap or a hang: what is measured is the wait
            plugin.call()
        waits.append((time.perf_counter() - started) * 1000)
    return waits


def _deadline_figures(calls: int) -> list[Figure]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="wasihost-bench-") as tmp:
        # The sleeping guest waits 1 s: long past the deadline and the grace, short
        # enough that its thread is back for the next sample.
        host = _host(
            Path(tmp), {"spin": _chaos(mode="loop"), "sleep": _chaos(mode="sleep", seconds=1)}
        )
        try:
            for label, load in (("quiet", False), ("4 processes busy on every core", True)):
                progress(f"deadline precision, {label}")
                if load:
                    with _loaded():
                        spin, sleep = _waits_ms(host, "spin", calls), _waits_ms(host, "sleep", 3)
                else:
                    spin, sleep = _waits_ms(host, "spin", calls), _waits_ms(host, "sleep", 3)
                figures += [
                    figure("deadline", f"spinning guest, {label}", "ms", spin,
                           f"{DEADLINE_MS} ms deadline: trap by epoch interruption"),
                    figure("deadline", f"guest blocked in time.sleep, {label}", "ms", sleep,
                           f"{DEADLINE_MS} ms deadline: the host stops waiting (hung)"),
                ]  # fmt: skip
        finally:
            host.close()
    return figures


async def _cycle_ms(host: Host, cycles: int) -> list[float]:
    samples = []
    for _ in range(cycles):
        started = time.perf_counter()
        await host.after_cycle(await host.cycle.run_once())
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _hung_cycle_figures(cycles: int) -> list[Figure]:
    progress("cycles next to eight hung plugins")
    dht22 = {"wasm": str(ROOT / "build" / "dht22.wasm"), "led": 1}
    hung = {f"hung{i}": _chaos(mode="sleep", seconds=5) for i in range(8)}
    with tempfile.TemporaryDirectory(prefix="wasihost-bench-") as tmp:
        alone = _host(Path(tmp) / "alone", {"dht22": dht22})
        crowded = _host(Path(tmp) / "crowded", {"dht22": dht22, **hung})
        try:
            first = asyncio.run(_cycle_ms(crowded, 1))  # the cycle in which they hang
            samples: dict[str, list[float]] = {"alone": [], "crowded": []}
            for _ in range(3):  # interleaved
                samples["alone"] += asyncio.run(_cycle_ms(alone, cycles))
                samples["crowded"] += asyncio.run(_cycle_ms(crowded, cycles))
            assert all(crowded.plugins[name].hung for name in hung), "measured too slowly"
            # Let the sleepers return: a process must not end with a guest inside a store.
            give_up = time.monotonic() + 60
            while any(crowded.plugins[name].hung for name in hung):
                assert time.monotonic() < give_up, "the hung plugins never returned"
                time.sleep(0.05)
        finally:
            alone.close()
            crowded.close()
    return [
        figure("hung", "first cycle, 8 plugins start sleeping 5 s", "ms", first,
               f"deadline {DEADLINE_MS} ms + grace 500 ms"),
        figure("hung", "cycle, dht22 alone", "ms", samples["alone"]),
        figure("hung", "cycle, dht22 next to 8 hung plugins", "ms", samples["crowded"],
               "same run"),
    ]  # fmt: skip


def run(quick: bool = False) -> list[Figure]:
    calls = 5 if quick else 15
    return _deadline_figures(calls) + _hung_cycle_figures(10 if quick else 50)
