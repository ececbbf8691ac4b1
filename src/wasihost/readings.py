"""Normalising each world's poll result into ``Reading``/``Measurement``.

The seed worlds return typed records; the tables below say which record
fields are measurements (with name, unit and device class) and everything
else becomes status. The generic ``sensor-plugin`` world returns a list of
measurements, taken as they are once validated: names, units and classes
come from an untrusted plugin.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wasihost.model import Measurement, Reading, StatusValue


@dataclass(frozen=True)
class Field:
    name: str
    unit: str
    device_class: str


MEASUREMENTS: dict[str, dict[str, Field]] = {
    "dht22-plugin": {
        "temperature_c": Field("temperature", "°C", "temperature"),
        "humidity_percent": Field("humidity", "%", "humidity"),
        "dew_point_c": Field("dew_point", "°C", "temperature"),
        "heat_index_c": Field("heat_index", "°C", "temperature"),
    },
    "pi-monitor-plugin": {
        "cpu_temperature_c": Field("cpu_temperature", "°C", "temperature"),
        "cpu_load_percent": Field("cpu_load", "%", "power_factor"),
        "memory_used_percent": Field("memory_used", "%", "data_size"),
        "uptime_seconds": Field("uptime", "s", "duration"),
    },
    "bme680-plugin": {
        "temperature_c": Field("temperature", "°C", "temperature"),
        "humidity_percent": Field("humidity", "%", "humidity"),
        "pressure_hpa": Field("pressure", "hPa", "pressure"),
        "gas_resistance_ohm": Field("gas_resistance", "Ω", "voc"),
        "iaq": Field("iaq", "IAQ", "aqi"),
        # Estimates from the gas signal (docs/IAQ.md): not HA's carbon_dioxide, which
        # automations take for a real CO2 sensor.
        "co2_equivalent_ppm": Field("co2_equivalent", "ppm", "none"),
        "breath_voc_ppm": Field("breath_voc", "ppm", "volatile_organic_compounds_parts"),
    },
}


MAX_STATUS = 120  # characters of one status text (generic or record field)
MAX_STATUS_KEY = 48


def _cut(text: str, limit: int = MAX_STATUS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… [{len(text) - limit} chars cut]"


def _status(value: Any) -> StatusValue:
    """A status value safe for JSON and bounded: NaN/inf become None, since
    one NaN makes the browser's JSON.parse reject a whole stream event, and
    text is cut, since it goes into every log line, page and MQTT message.
    The load check keeps record fields to the contract's; this holds even
    if a string got past it."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float):
        return value
    return _cut(value if isinstance(value, str) else str(value)[: MAX_STATUS * 2])


def normalise(plugin: str, world: str, record: Mapping[str, Any], timestamp_ms: int) -> Reading:
    """The ``Reading`` for one poll result of ``world``.

    Non-finite numbers (NaN, inf) are dropped: they cannot be charted,
    stored or published meaningfully, and a plugin could send them.
    """
    table = MEASUREMENTS.get(world, {})
    measurements: list[Measurement] = []
    status: dict[str, StatusValue] = {}
    for key, value in record.items():
        spec = table.get(key)
        if spec is None:
            status[key[:MAX_STATUS_KEY]] = _status(value)
        elif (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ):
            # f32 fields arrive as doubles (21.3 → 21.299999237…): keep the
            # 7 significant digits an f32 actually carries.
            number = float(f"{value:.7g}")
            measurements.append(
                Measurement(plugin, spec.name, number, spec.unit, spec.device_class, timestamp_ms)
            )
    return Reading(plugin, world, timestamp_ms, tuple(measurements), status)


MEASUREMENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
MAX_MEASUREMENTS = 64
MAX_LABEL = 32  # unit, device class


def normalise_list(
    plugin: str, world: str, items: Sequence[Mapping[str, Any]], timestamp_ms: int
) -> Reading:
    """The ``Reading`` for a list of generic measurements.

    Entries with an invalid or repeated name, a non-finite value, or over-long
    labels are dropped and counted in ``status["invalid_measurements"]``;
    per-measurement status text becomes ``status["<name>_status"]``.
    """
    measurements: list[Measurement] = []
    status: dict[str, StatusValue] = {}
    invalid = max(0, len(items) - MAX_MEASUREMENTS)
    seen: set[str] = set()
    for item in items[:MAX_MEASUREMENTS]:
        name, value = item.get("name"), item.get("value")
        unit, device_class = item.get("unit"), item.get("device_class")
        if (
            not isinstance(name, str)
            or not MEASUREMENT_NAME.match(name)
            or name in seen
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not isinstance(unit, str)
            or len(unit) > MAX_LABEL
            or not isinstance(device_class, str)
            or len(device_class) > MAX_LABEL
        ):
            invalid += 1
            continue
        seen.add(name)
        measurements.append(
            Measurement(plugin, name, float(value), unit, device_class or "none", timestamp_ms)
        )
        text = item.get("status")
        if isinstance(text, str) and text:
            status[f"{name}_status"] = text[:MAX_STATUS]
    if invalid:
        status["invalid_measurements"] = invalid
    return Reading(plugin, world, timestamp_ms, tuple(measurements), status)
