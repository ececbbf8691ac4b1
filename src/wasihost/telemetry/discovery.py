"""What a node puts on MQTT: topics, payloads and Home Assistant discovery configs.

Pure functions, no I/O. The state JSON and the discovery ``value_template``
that reads it must agree, so both are defined here, side by side:

- ``<base>/<plugin>/state``: ``{"timestamp_ms": T, "<field>": value, ...,
  "units": {"<field>": unit}, "status": {...}}``. Every field the plugin
  declares (its world's table, or a generic plugin's ``describe()``) or has
  reported since the host started is present, ``null`` when this poll lacked
  it, so HA's ``{{ value_json.<field> }}`` resolves from the first state after
  a restart (``None`` makes HA show "unknown" rather than log a template error).
- ``<base>/<plugin>/health``: the plugin's health counters.
- ``<base>/availability``: ``online`` / ``offline`` (retained; the last will).
- ``<base>/node``: the node's own state (uptime), about once a minute.

Measurement names ``timestamp_ms``, ``status``, ``units`` and ``health_*``
would collide with the payload's own keys or the diagnostic entities; such
measurements stay out of MQTT (``publishable``).

Discovery configs follow Home Assistant's MQTT discovery schemas for the
``sensor`` and ``binary_sensor`` platforms; tests/telemetry/ha_rules.py checks
them against rules taken from HA's source (the versions are cited there).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wasihost.model import Reading
from wasihost.readings import MEASUREMENT_NAME, MEASUREMENTS

AVAILABLE = "online"
NOT_AVAILABLE = "offline"
RESERVED_FIELDS = frozenset({"timestamp_ms", "status", "units"})
HEALTH_KEYS = ("state", "polls", "errors", "traps", "restarts", "reloads", "quarantines")
# Diagnostic entities per plugin: (health key, name, state_class, icon)
DIAGNOSTICS: tuple[tuple[str, str, str | None, str], ...] = (
    ("state", "Status", None, "mdi:state-machine"),
    ("traps", "Traps", "total_increasing", "mdi:alert-octagon-outline"),
    ("reloads", "Reloads", "total_increasing", "mdi:reload"),
)
# What the status entity keeps as attributes: keys that change on an event
# only. Counters that change every cycle (polls, last_poll_ms, timestamp_ms)
# would make HA's recorder write a state and an attributes row per plugin per
# cycle; they stay in the health JSON for other readers.
STATUS_ATTRIBUTES = ("health", "last_error")
NODE_STATE_INTERVAL_S = 60.0  # how often <base>/node is published

# Our device classes → Home Assistant sensor device classes, with the units HA
# accepts for each (homeassistant/components/sensor/const.py DEVICE_CLASS_UNITS;
# HA 2024.3 logs a warning for a unit its class does not accept, 2026.4 refuses
# the config). ``None`` in a unit set means "no unit": HA's ``aqi`` takes none,
# so our "IAQ" label is left out.
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
    "voltage": ("voltage", frozenset({"V", "mV"})),
    "current": ("current", frozenset({"A", "mA"})),
    "power": ("power", frozenset({"W", "kW"})),
    "battery": ("battery", frozenset({"%"})),
    "signal_strength": ("signal_strength", frozenset({"dB", "dBm"})),
    "frequency": ("frequency", frozenset({"Hz", "kHz", "MHz", "GHz"})),
    "distance": ("distance", frozenset({"mm", "cm", "m", "km", "in", "ft", "yd", "mi"})),
}

# suggested_display_precision (decimals HA shows; the state keeps every digit).
# The seed worlds' fields, from what their sensors resolve: a DHT22 reads 0.1 °C
# and 0.1 %RH, a BME680's gas resistance and IAQ are whole numbers worth showing.
PRECISION: dict[str, dict[str, int]] = {
    "dht22-plugin": {"temperature": 1, "humidity": 1, "dew_point": 1, "heat_index": 1},
    "pi-monitor-plugin": {"cpu_temperature": 1, "cpu_load": 0, "memory_used": 0, "uptime": 0},
    "bme680-plugin": {
        "temperature": 1,
        "humidity": 1,
        "pressure": 1,
        "gas_resistance": 0,
        "iaq": 0,
        "co2_equivalent": 0,
        "breath_voc": 1,
    },
}
# Any other plugin (a generic sensor-plugin's describe() has no precision): by unit.
UNIT_PRECISION: dict[str, int] = {
    "°C": 1, "°F": 1, "K": 1, "%": 1, "hPa": 1, "mbar": 1, "kPa": 2, "Pa": 0, "inHg": 2,
    "psi": 2, "Ω": 0, "kΩ": 1, "ppm": 0, "ppb": 0, "µg/m³": 0, "lx": 0, "s": 0, "ms": 0,
    "min": 0, "h": 1, "d": 1, "V": 2, "mV": 0, "A": 2, "mA": 0, "W": 1, "kW": 2, "Hz": 0,
    "dB": 0, "dBm": 0, "mm": 0, "cm": 1, "m": 2, "km": 2, "IAQ": 0,
}  # fmt: skip

# Icons where HA's device class gives none (or there is no class).
FIELD_ICONS: dict[str, str] = {
    "gas_resistance": "mdi:air-filter",
    "cpu_load": "mdi:cpu-64-bit",
    "memory_used": "mdi:memory",
    "co2_equivalent": "mdi:molecule-co2",
}
DEFAULT_ICON = "mdi:gauge"

# Words shown in capitals in entity names (cpu_temperature → "CPU temperature").
_ACRONYMS = {
    "cpu": "CPU", "gpu": "GPU", "iaq": "IAQ", "voc": "VOC", "tvoc": "TVOC", "co2": "CO2",
    "eco2": "eCO2", "pm1": "PM1", "pm25": "PM2.5", "pm10": "PM10", "uv": "UV", "rssi": "RSSI",
    "ram": "RAM", "led": "LED", "id": "ID", "ip": "IP",
}  # fmt: skip
_CHIP = re.compile(r"^[a-z]+[0-9][a-z0-9]*$")  # dht22, bme680, ds18b20: a part number
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

    @property
    def node(self) -> str:
        """The node's own state; two levels, so no plugin's topic can be it."""
        return f"{self.base}/node"

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
    world: str = ""


@dataclass(frozen=True, slots=True)
class Device:
    """What HA's device page shows for the node."""

    node: str
    sw_version: str
    model: str = "wasihost"
    configuration_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "identifiers": [f"wasihost_{self.node}"],
            "name": self.node,
            "manufacturer": "wasihost",
            "model": self.model,
            "sw_version": self.sw_version,
        }
        if self.configuration_url is not None:
            doc["configuration_url"] = self.configuration_url
        return doc


def publishable(field: str) -> bool:
    """False for measurement names that would collide with payload keys or
    diagnostic entities (see the module docstring)."""
    return field not in RESERVED_FIELDS and not field.startswith("health_")


def declared_entities(
    plugin: str, world: str | None, info: Mapping[str, Any] | None
) -> list[Entity]:
    """The measurements a plugin says it has before it reports any: its world's
    table (seed worlds) or its ``describe()`` (generic sensor plugins)."""
    if world is None:
        return []
    table = MEASUREMENTS.get(world)
    if table is not None:
        return [Entity(plugin, f.name, f.unit, f.device_class, world) for f in table.values()]
    specs = info.get("measurements") if isinstance(info, Mapping) else None
    if not isinstance(specs, list):
        return []
    entities = []
    for spec in specs:
        if not isinstance(spec, Mapping):
            continue
        name, unit, device_class = spec.get("name"), spec.get("unit"), spec.get("device_class")
        if isinstance(name, str) and MEASUREMENT_NAME.match(name) and publishable(name):
            entities.append(
                Entity(plugin, name, str(unit or ""), str(device_class or "none"), world)
            )
    return entities


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


def precision(entity: Entity) -> int | None:
    """Decimals HA should show: the world's table, else by unit, else none."""
    by_field = PRECISION.get(entity.world, {}).get(entity.field)
    return by_field if by_field is not None else UNIT_PRECISION.get(entity.unit)


def plugin_label(plugin: str) -> str:
    """``dht22`` → ``DHT22``, ``pi-monitor`` → ``Pi monitor``."""
    if _CHIP.match(plugin):
        return plugin.upper()
    return _words(re.split(r"[-_\s]+", plugin))


def field_label(field: str) -> str:
    """``dew_point`` → ``Dew point``, ``cpu_temperature`` → ``CPU temperature``."""
    return _words(field.split("_"))


def _words(parts: list[str]) -> str:
    words = [_ACRONYMS.get(p, p) for p in parts if p]
    if not words:
        return ""
    first = words[0]
    words[0] = first if first in _ACRONYMS.values() else first[:1].upper() + first[1:]
    return " ".join(words)


def value_template(field: str) -> str:
    """Reads ``field`` from the state JSON; ``default`` keeps a field missing from
    a state (a retained config older than the plugin's change) from making HA
    log a template warning: it shows "unknown" instead."""
    ref = f"value_json['{field}']" if field in _DICT_ATTRIBUTES else f"value_json.{field}"
    return f"{{{{ {ref} | default(None) }}}}"


def state_payload(reading: Reading, fields: Iterable[str]) -> bytes:
    """The state JSON for one reading; ``fields`` (every field this plugin
    declares or has reported) are all present, null where this reading lacks them.
    A value a host-side filter held back this cycle goes out at its last value."""
    doc: dict[str, Any] = {"timestamp_ms": reading.timestamp_ms}
    doc.update(dict.fromkeys(f for f in fields if publishable(f)))
    units: dict[str, str] = {}
    for m in (*reading.held, *reading.measurements):
        if publishable(m.name):
            doc[m.name] = m.value
            units[m.name] = m.unit
    doc["units"] = units
    doc["status"] = dict(reading.status)
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode()


def health_payload(status: Mapping[str, Any], timestamp_ms: int) -> bytes:
    """The health JSON for one plugin, from ``Host.statuses()``."""
    doc: dict[str, Any] = {"timestamp_ms": timestamp_ms}
    doc.update({key: status.get(key) for key in HEALTH_KEYS})
    doc["health"] = status.get("health")
    doc["health_reason"] = status.get("health_reason")
    doc["last_error"] = status.get("last_error")
    doc["last_poll_ms"] = status.get("last_poll_ms")
    return json.dumps(doc, ensure_ascii=False, default=str).encode()


def node_payload(timestamp_ms: int, uptime_s: float, sw_version: str) -> bytes:
    doc = {"timestamp_ms": timestamp_ms, "uptime_s": int(uptime_s), "version": sw_version}
    return json.dumps(doc).encode()


def dashboard_url(bind_host: str, port: int, hostname: str) -> str | None:
    """The dashboard's address as another machine's browser reaches it, for the
    device page's "Visit" link; None when the web binds to loopback only (a link
    to 127.0.0.1 would open the reader's own machine)."""
    if not port:
        return None
    host = bind_host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = hostname if "." in hostname else f"{hostname}.local"  # mDNS on a Pi
    elif host == "localhost":
        return None
    else:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            pass  # a host name
        else:
            if address.is_loopback:
                return None
            if address.version == 6:
                host = f"[{host}]"
    return f"http://{host}:{port}/"


def device_model(board_kind: str, board_model: str | None = None) -> str:
    """``wasihost on Raspberry Pi 4 Model B Rev 1.4``, ``wasihost on the simulated board``."""
    if board_model:
        return f"wasihost on {board_model}"
    return {"sim": "wasihost on the simulated board", "pi": "wasihost on a Raspberry Pi"}.get(
        board_kind, "wasihost"
    )


def entity_ids(platform: str, node: str, key: str) -> dict[str, str]:
    """``object_id`` (HA ≤ 2026.3; deprecated since 2025.10, gone in 2026.4) and
    its replacement ``default_entity_id`` (``<platform>.<object_id>``, HA ≥ 2025.10).
    Each version drops the key it does not know (its discovery schemas remove
    extra keys), and one that knows both takes ``default_entity_id`` without a
    deprecation warning. Either only proposes the entity id of a new entity."""
    object_id = f"wasihost_{node}_{key}".replace("-", "_")
    return {"object_id": object_id, "default_entity_id": f"{platform}.{object_id}"}


def discovery_topic(prefix: str, node: str, key: str, platform: str = "sensor") -> str:
    return f"{prefix}/{platform}/wasihost_{node}/{key}/config"


def _common(topics: Topics, device: Device) -> dict[str, Any]:
    return {
        "availability_topic": topics.availability,
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
        "device": device.to_json(),
        "origin": {"name": "wasihost", "sw_version": device.sw_version},
    }


def sensor_config(
    topics: Topics, entity: Entity, expire_after: int, device: Device
) -> dict[str, Any]:
    """The discovery config of one measured value."""
    node = device.node
    key = f"{entity.plugin}_{entity.field}"
    ha_class, unit = ha_device_class(entity.device_class, entity.unit)
    config: dict[str, Any] = {
        "name": f"{plugin_label(entity.plugin)} {field_label(entity.field)}",
        "unique_id": f"wasihost_{node}_{key}",
        **entity_ids("sensor", node, key),
        "state_topic": topics.state(entity.plugin),
        "value_template": value_template(entity.field),
        "state_class": "measurement",
        "expire_after": expire_after,
        **_common(topics, device),
    }
    if unit is not None:
        config["unit_of_measurement"] = unit
    if ha_class is not None:
        config["device_class"] = ha_class
    else:
        config["icon"] = FIELD_ICONS.get(entity.field, DEFAULT_ICON)
    digits = precision(entity)
    if digits is not None:
        config["suggested_display_precision"] = digits
    return config


def _status_attributes_template() -> str:
    pairs = ", ".join(f"'{key}': value_json.{key} | default(None)" for key in STATUS_ATTRIBUTES)
    return f"{{{{ {{{pairs}}} | tojson }}}}"


def diagnostic_configs(
    topics: Topics, plugin: str, expire_after: int, device: Device
) -> list[tuple[str, dict[str, Any]]]:
    """(object key, config) of the plugin's diagnostic entities: status, traps,
    reloads. They expire like the measurements: a plugin that is gone (removed,
    renamed) stops sending health and shows *unavailable*, not its last state."""
    configs = []
    for key, label, state_class, icon in DIAGNOSTICS:
        object_key = f"{plugin}_health_{key}"
        config: dict[str, Any] = {
            "name": f"{plugin_label(plugin)} {label}",
            "unique_id": f"wasihost_{device.node}_{object_key}",
            **entity_ids("sensor", device.node, object_key),
            "state_topic": topics.health(plugin),
            "value_template": value_template(key),
            "entity_category": "diagnostic",
            "icon": icon,
            "expire_after": expire_after,
            **_common(topics, device),
        }
        if state_class is not None:
            config["state_class"] = state_class
        else:  # the status entity: event-driven attributes only (STATUS_ATTRIBUTES)
            config["json_attributes_topic"] = topics.health(plugin)
            config["json_attributes_template"] = _status_attributes_template()
        configs.append((object_key, config))
    return configs


def node_configs(
    topics: Topics, expire_after: int, device: Device
) -> list[tuple[str, str, dict[str, Any]]]:
    """(platform, object key, config) of the node's own entities: connectivity
    (the retained availability, so it reads *disconnected* after the last will,
    never *unavailable*) and uptime (a duration, from ``<base>/node``)."""
    node = device.node
    connectivity = {
        "name": "Connectivity",
        "unique_id": f"wasihost_{node}_connectivity",
        **entity_ids("binary_sensor", node, "connectivity"),
        "state_topic": topics.availability,
        "payload_on": AVAILABLE,
        "payload_off": NOT_AVAILABLE,
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "device": device.to_json(),
        "origin": {"name": "wasihost", "sw_version": device.sw_version},
    }
    uptime = {
        "name": "Uptime",
        "unique_id": f"wasihost_{node}_uptime",
        **entity_ids("sensor", node, "uptime"),
        "state_topic": topics.node,
        "value_template": value_template("uptime_s"),
        "device_class": "duration",
        "unit_of_measurement": "s",
        "suggested_display_precision": 0,
        "entity_category": "diagnostic",
        "expire_after": max(expire_after, int(3 * NODE_STATE_INTERVAL_S)),
        **_common(topics, device),
    }
    return [("binary_sensor", "connectivity", connectivity), ("sensor", "uptime", uptime)]


def discovery_messages(
    prefix: str,
    topics: Topics,
    entities: Iterable[Entity],
    plugins: Iterable[str],
    expire_after: int,
    device: Device,
) -> list[tuple[str, bytes]]:
    """Every (topic, payload) to publish, retained, for this node's entities."""
    node = device.node
    messages = []
    for platform, key, config in node_configs(topics, expire_after, device):
        topic = discovery_topic(prefix, node, key, platform)
        messages.append((topic, json.dumps(config, ensure_ascii=False).encode()))
    for entity in entities:
        if publishable(entity.field):
            config = sensor_config(topics, entity, expire_after, device)
            topic = discovery_topic(prefix, node, f"{entity.plugin}_{entity.field}")
            messages.append((topic, json.dumps(config, ensure_ascii=False).encode()))
    for plugin in plugins:
        for key, config in diagnostic_configs(topics, plugin, expire_after, device):
            topic = discovery_topic(prefix, node, key)
            messages.append((topic, json.dumps(config, ensure_ascii=False).encode()))
    return messages
