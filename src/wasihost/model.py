"""The one internal model every poll result is normalised into.

App state, history, the dashboard, MQTT and metrics all consume
``Reading``/``Measurement``; no consumer looks at a world's WIT record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

StatusValue = bool | int | float | str | None


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured quantity: a number with a unit, e.g. temperature 21.5 °C."""

    plugin: str
    name: str
    value: float
    unit: str
    device_class: str
    timestamp_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "device_class": self.device_class,
        }


@dataclass(frozen=True, slots=True)
class Reading:
    """Everything one successful poll of one plugin produced.

    ``measurements`` are numbers worth charting; ``status`` holds the rest of
    the record (alarm state, staleness, counters) as plain scalars.
    """

    plugin: str
    world: str
    timestamp_ms: int
    measurements: tuple[Measurement, ...]
    status: Mapping[str, StatusValue] = field(default_factory=dict)
    # Values a host-side filter held back this cycle, at the value it last let out:
    # MQTT publishes them again (a missing field reads as "unknown" in Home
    # Assistant), history does not store them twice.
    held: tuple[Measurement, ...] = ()

    def value(self, name: str) -> float | None:
        """The value of measurement ``name``, or None when absent."""
        for m in self.measurements:
            if m.name == name:
                return m.value
        return None
