"""What a node puts on MQTT: topics, payloads and Home Assistant discovery configs.

Pure functions, no I/O. The state JSON and the discovery ``value_template``
that reads it must agree, so both are defined here, side by side:

- ``<base>/<plugin>/state``: ``{"timestamp_ms": T, "<field>": value, ...,
  "units": {"<field>": unit}, "status": {...}}``. Every field the plugin ever
  reported is present, ``null`` when this poll lacked it, so HA's
  ``{{ value_json.<field> }}`` always resolves (``None`` makes HA show
  "unknown" rather than log a template error).
- ``<base>/<plugin>/health``: the plugin's health counters.
- ``<base>/availability``: ``online`` / ``offline`` (retained; the last will).

Measurement names ``timestamp_ms``, ``status``, ``units`` and ``health_*``
would collide with the payload's own keys or the diagnostic entities; such
measurements stay out of MQTT (``publishable``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wasihost.model import Reading

AVAILABLE = "online"
NOT_AVAILABLE = "offline"
RESERVED_FIELDS = frozenset({"timestamp_ms", "status", "units"})
HEALTH_KEYS = ("state", "polls", "errors", "traps", "restarts", "reloads", "quarantines")
# Diagnostic entities per plugin: (health key, name, state_class)
DIAGNOSTICS: tuple[tuple[str, str, str | None], ...] = (
    ("state", "status", None),
    ("traps", "traps", "total_increasing"),
    ("reloads", "reloads", "total_increasing"),
)

# Our device classes → Home Assistant sensor device classes, with the units HA
# accepts for each (homeassistant/components/sensor/const.py DEVICE_CLASS_UNITS;
# HA logs a warning for a unit its class does not accept). ``None`` in a unit set
# means "no unit": HA's ``aqi`` takes none, so our "IAQ" label is left out.
# Not mapped, on purpose: ``voc`` (our gas resistance in Ω: HA's VOC classes
# are µg/m³ or ppm/ppb concentrations), ``power_factor`` and ``data_size``
# (the pi-monitor table uses them for CPU load % and memory %; HA would show
# them as a power factor and reject % for data size).
HA_DEVICE_CLASSES: dict[str, tuple[str, frozenset[str | None]]] = {
    "temperature": ("temperature", frozenset({"°C", "°F", "K"})),
    "humidity": ("humidity", frozenset({"%"})),
    "moisture": ("moisture", frozenset({"%"})),
    "pressure": ("pressure", frozenset({"Pa", "hPa", "kPa", "mbar", "cbar", "bar", "inHg", "psi"})),
    "aqi": ("aqi", frozenset({None})),
    "carbon_dioxide": ("carbon_dioxide", frozenset({"ppm"})),
    "co2": ("carbon_dioxide", frozenset({"ppm"})),
    "carbon_monoxide": ("carbon_monoxide", frozenset({"ppm"})),
    "pm1": ("pm1", frozenset({"µg/m³"})),
    "pm25": ("pm25", frozenset({"µg/m³"})),
    "pm10": ("pm10", frozenset({"µg/m³"})),
    "volatile_organic_compounds": ("volatile_organic_compounds", frozenset({"µg/m³"})),
    "volatile_organic_compounds_parts": (
        "volatile_organic_compounds_parts",
        frozenset({"ppm", "ppb"}),
    ),
    "illuminance": ("illuminance", frozenset({"lx"})),
    "duration": ("duration", frozenset({"d", "h", "min", "s", "ms"})),
    "voltage": ("voltage", frozenset({"V", "mV", "µV", "kV", "MV"})),
    "current": ("current", frozenset({"A", "mA"})),
    "power": ("power", frozenset({"mW", "W", "kW", "MW", "GW", "TW"})),
    "battery": ("battery", frozenset({"%"})),
    "signal_strength": ("signal_strength", frozenset({"dB", "dBm"})),
    "frequency": ("frequency", frozenset({"Hz", "kHz", "MHz", "GHz"})),
    "distance": ("distance", frozenset({"mm", "cm", "m", "km", "in", "ft", "yd", "mi"})),
}
# Names Jinja resolves to dict methods before keys: ``value_json.items`` is a method.
_DICT_ATTRIBUTES = frozenset(dir(dict))


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one node under ``base`` (default ``wasihost/<node id>``)."""

    base: str

    @classmethod
    def for_node(cls, node_id: str, base_topic: str | None = None) -> Topics:
        return cls((base_topic or f"wasihost/{node_id}").rstrip("/"))

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    def state(self, plugin: str) -> str:
        return f"{self.base}/{plugin}/state"

    def health(self, plugin: str) -> str:
        return f"{self.base}/{plugin}/health"


@dataclass(frozen=True, slots=True)
class Entity:
    """One measured value of one plugin, as Home Assistant sees it."""

    plugin: str
    field: str
    unit: str
    device_class: str


def publishable(field: str) -> bool:
    """False for measurement names that would collide with payload keys or
    diagnostic entities (see the module docstring)."""
    return field not in RESERVED_FIELDS and not field.startswith("health_")


def ha_device_class(device_class: str, unit: str) -> tuple[str | None, str | None]:
    """(HA device class, unit to declare) for one of our measurements; the
    class is None when HA has no class that fits (e.g. gas resistance in Ω)."""
    mapped = HA_DEVICE_CLASSES.get(device_class)
    if mapped is None:
        return None, unit or None
    ha_class, units = mapped
    if None in units:
        return ha_class, None
    if unit in units:
        return ha_class, unit
    return None, unit or None


def value_template(field: str) -> str:
    if field in _DICT_ATTRIBUTES:
        return f"{{{{ value_json['{field}'] }}}}"
    return f"{{{{ value_json.{field} }}}}"


def state_payload(reading: Reading, fields: Iterable[str]) -> bytes:
    """The state JSON for one reading; ``fields`` (every field this plugin has
    reported so far) are all present, null where this reading lacks them."""
    doc: dict[str, Any] = {"timestamp_ms": reading.timestamp_ms}
    doc.update(dict.fromkeys(f for f in fields if publishable(f)))
    units: dict[str, str] = {}
    for m in reading.measurements:
        if publishable(m.name):
            doc[m.name] = m.value
            units[m.name] = m.unit
    doc["units"] = units
    doc["status"] = dict(reading.status)
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode()


def health_payload(status: Mapping[str, Any], timestamp_ms: int) -> bytes:
    """The health JSON for one plugin, from ``Plugin.status()``."""
    doc: dict[str, Any] = {"timestamp_ms": timestamp_ms}
    doc.update({key: status.get(key) for key in HEALTH_KEYS})
    doc["last_error"] = status.get("last_error")
    doc["last_poll_ms"] = status.get("last_poll_ms")
    return json.dumps(doc, ensure_ascii=False, default=str).encode()


def _object_id(node: str, plugin: str, key: str) -> str:
    return f"wasihost_{node}_{plugin}_{key}".replace("-", "_")


def device(node: str, sw_version: str) -> dict[str, Any]:
    return {
        "identifiers": [f"wasihost_{node}"],
        "name": node,
        "model": "wasihost",
        "manufacturer": "wasihost",
        "sw_version": sw_version,
    }


def discovery_topic(prefix: str, node: str, plugin: str, key: str) -> str:
    return f"{prefix}/sensor/wasihost_{node}/{plugin}_{key}/config"


def _common(node: str, topics: Topics, sw_version: str) -> dict[str, Any]:
    return {
        "availability_topic": topics.availability,
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
        "device": device(node, sw_version),
        "origin": {"name": "wasihost", "sw_version": sw_version},
    }


def sensor_config(
    node: str, topics: Topics, entity: Entity, expire_after: int, sw_version: str
) -> dict[str, Any]:
    """The discovery config of one measured value."""
    ha_class, unit = ha_device_class(entity.device_class, entity.unit)
    config: dict[str, Any] = {
        "name": f"{entity.plugin} {entity.field.replace('_', ' ')}",
        "unique_id": f"wasihost_{node}_{entity.plugin}_{entity.field}",
        "object_id": _object_id(node, entity.plugin, entity.field),
        "state_topic": topics.state(entity.plugin),
        "value_template": value_template(entity.field),
        "state_class": "measurement",
        "expire_after": expire_after,
        **_common(node, topics, sw_version),
    }
    if unit is not None:
        config["unit_of_measurement"] = unit
    if ha_class is not None:
        config["device_class"] = ha_class
    return config


def diagnostic_configs(
    node: str, topics: Topics, plugin: str, sw_version: str
) -> list[tuple[str, dict[str, Any]]]:
    """(object key, config) of the plugin's diagnostic entities: status, traps, reloads."""
    configs = []
    for key, label, state_class in DIAGNOSTICS:
        object_key = f"health_{key}"
        config: dict[str, Any] = {
            "name": f"{plugin} {label}",
            "unique_id": f"wasihost_{node}_{plugin}_{object_key}",
            "object_id": _object_id(node, plugin, object_key),
            "state_topic": topics.health(plugin),
            "value_template": value_template(key),
            "entity_category": "diagnostic",
            **_common(node, topics, sw_version),
        }
        if state_class is not None:
            config["state_class"] = state_class
        else:  # the status entity carries the rest of the health as attributes
            config["json_attributes_topic"] = topics.health(plugin)
        configs.append((object_key, config))
    return configs


def discovery_messages(
    prefix: str,
    node: str,
    topics: Topics,
    entities: Iterable[Entity],
    plugins: Iterable[str],
    expire_after: int,
    sw_version: str,
) -> list[tuple[str, bytes]]:
    """Every (topic, payload) to publish, retained, for this node's entities."""
    messages = []
    for entity in entities:
        if publishable(entity.field):
            config = sensor_config(node, topics, entity, expire_after, sw_version)
            topic = discovery_topic(prefix, node, entity.plugin, entity.field)
            messages.append((topic, json.dumps(config, ensure_ascii=False).encode()))
    for plugin in plugins:
        for key, config in diagnostic_configs(node, topics, plugin, sw_version):
            topic = discovery_topic(prefix, node, plugin, key)
            messages.append((topic, json.dumps(config, ensure_ascii=False).encode()))
    return messages
