"""The app state: the latest reading and error of every plugin.

The poll cycle writes it once per cycle (on the event loop); the web
layer and telemetry read it. It is the single source of what the host
knows right now, and ``to_json`` is the ``GET /api/readings`` document
the dashboard plugin renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wasihost.boards.base import Color
from wasihost.model import Reading


@dataclass
class PluginView:
    """What the state holds per sensor plugin."""

    world: str
    leds: tuple[int, ...]
    reading: Reading | None = None
    error: str | None = None
    error_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        reading = self.reading
        return {
            "world": self.world,
            "timestamp_ms": reading.timestamp_ms if reading else None,
            "measurements": [m.to_json() for m in reading.measurements] if reading else [],
            "status": dict(reading.status) if reading else {},
            "error": self.error,
            "error_ms": self.error_ms,
            "leds": list(self.leds),
        }


@dataclass
class AppState:
    node: str
    board: str
    interval_seconds: float
    plugins: dict[str, PluginView] = field(default_factory=dict)
    leds: list[Color] = field(default_factory=list)
    cycle: int = 0
    timestamp_ms: int | None = None  # when the last cycle ended, on the wall clock (shown)
    last_cycle_ms: float | None = None
    # When the last cycle ended on the monotonic clock: how old it is (/healthz)
    # must not follow a step of the wall clock (NTP at boot on a Pi).
    completed_at: float | None = None

    def record_reading(self, reading: Reading) -> None:
        view = self.plugins[reading.plugin]
        view.reading = reading
        view.error = None
        view.error_ms = None

    def record_error(self, plugin: str, message: str, timestamp_ms: int) -> None:
        view = self.plugins[plugin]
        view.error = message
        view.error_ms = timestamp_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "board": self.board,
            "cycle": self.cycle,
            "timestamp_ms": self.timestamp_ms,
            "interval_seconds": self.interval_seconds,
            "last_cycle_ms": self.last_cycle_ms,
            "leds": [list(color) for color in self.leds],
            "readings": {name: view.to_json() for name, view in self.plugins.items()},
        }
