"""Shared pieces of the benchmark suite: figures, a free port, the result table.

Every figure is the median of several runs with min and max; comparisons
are made between figures measured in the same run of the suite.
"""

from __future__ import annotations

import json
import platform
import socket
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"


@dataclass(frozen=True)
class Figure:
    group: str
    name: str
    unit: str
    median: float
    min: float
    max: float
    runs: int
    note: str = ""


def figure(group: str, name: str, unit: str, samples: Sequence[float], note: str = "") -> Figure:
    return Figure(
        group, name, unit, statistics.median(samples), min(samples), max(samples), len(samples),
        note,
    )  # fmt: skip


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def print_table(figures: Sequence[Figure]) -> None:
    width = max(len(f"{f.group}: {f.name}") for f in figures)
    print(f"{'figure':<{width}}  {'median':>12} {'min':>12} {'max':>12}  unit    runs")
    for f in figures:
        label = f"{f.group}: {f.name}"
        print(
            f"{label:<{width}}  {f.median:>12.3f} {f.min:>12.3f} {f.max:>12.3f}  "
            f"{f.unit:<7} {f.runs:>4}  {f.note}"
        )


def write_results(figures: Sequence[Figure], command: str) -> Path:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpu": platform.machine(),
                    "system": platform.platform()},
        "figures": [asdict(f) for f in figures],
    }  # fmt: skip
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    return RESULTS


# name: (folder, led, extra plugin config), as config/host.toml gives them.
SEED: dict[str, tuple[str, int | None, dict[str, Any]]] = {
    "pi_monitor": ("pi-monitor", 0, {}),
    "dht22": ("dht22", 1, {"grants": {"gpio_pins": [4]}, "settings": {"gpio_pin": 4}}),
    "bme680": ("bme680", 2, {"grants": {"i2c_addresses": ["0x77"]},
                             "settings": {"i2c_address": 0x77}}),
    "dashboard": ("dashboard", None, {}),
    "sht31": ("sht31", 3, {"world": "sensor-plugin", "grants": {"i2c_addresses": ["0x44"]}}),
}  # fmt: skip


def seed_plugin_tables() -> dict[str, dict[str, Any]]:
    """The seed plugins' ``[plugins.*]`` tables, as source plugins from this checkout."""
    plugins: dict[str, dict[str, Any]] = {}
    for name, (folder, led, extra) in SEED.items():
        plugins[name] = {"source": str(ROOT / "plugins" / folder), **extra}
        if led is not None:
            plugins[name]["led"] = led
    return plugins
