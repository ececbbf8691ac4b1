"""Home Assistant's MQTT discovery rules for the platforms a node publishes
(``sensor``, ``binary_sensor``), as a validator the tests run on every config.

Derived from Home Assistant's own source, two versions, kept in ha_rules.json:

- **2024.3.3** (the version issue 18 was tried against; Python 3.11), from the
  ``homeassistant==2024.3.3`` wheel, installed in a scratch venv and imported:
  ``components/mqtt/sensor.py`` ``_PLATFORM_SCHEMA_BASE``,
  ``components/mqtt/binary_sensor.py`` ``PLATFORM_SCHEMA_MODERN``,
  ``components/mqtt/mixins.py`` ``MQTT_ENTITY_COMMON_SCHEMA`` (device and origin
  keys), ``components/mqtt/abbreviations.py``, and ``components/sensor/const.py``
  ``DEVICE_CLASS_UNITS`` and ``DEVICE_CLASS_STATE_CLASSES``.
- **2026.4.0** (``object_id`` removed, ``default_entity_id`` its replacement since
  2025.10), from the ``homeassistant==2026.4.0`` wheel's source:
  ``components/sensor/const.py`` evaluated (``DEVICE_CLASS_UNITS``,
  ``DEVICE_CLASS_STATE_CLASSES``, ``STATE_CLASS_UNITS``, ``AMBIGUOUS_UNITS``);
  the MQTT schema keys read from ``components/mqtt/schemas.py``
  (``MQTT_ENTITY_COMMON_SCHEMA``: ``default_entity_id`` and ``entity_picture``
  in, ``object_id`` out; the device's ``model_id``), ``config.py``
  (``SCHEMA_BASE``: ``group``), ``sensor.py`` (``options``) and
  ``abbreviations.py``.

What is checked, as HA does it: abbreviations expanded with HA's own tables
(discovery.py); every key one the platform's discovery schema knows in some
version (a key only the other version knows is what that version's
``REMOVE_EXTRA`` drops: ``object_id`` / ``default_entity_id``); ``state_topic``
present; ``availability_topic`` and ``availability`` exclusive; the device has an
identifier, known keys and a ``configuration_url`` that HA's
``cv.configuration_url`` takes; the origin a name; a device class of the
platform; a sensor's unit among ``DEVICE_CLASS_UNITS`` of its class (2024.3 logs
a warning, 2026.4 refuses the config; 2026.4 maps ``AMBIGUOUS_UNITS`` first), its
state class a valid one allowed for its class (``DEVICE_CLASS_STATE_CLASSES``)
and, in 2026.4, for its unit (``STATE_CLASS_UNITS``); ``expire_after`` and
``suggested_display_precision`` non-negative integers (``cv.positive_int``), and
``expire_after`` above 0 (our rule: every entity of ours expires);
``entity_category`` one of HA's; an icon ``prefix:name`` (``cv.icon``);
``default_entity_id`` ``<platform>.<object_id>``; ``unique_id`` present (ours);
templates that parse (with jinja2 when it is installed, else the shapes we emit).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

RULES: dict[str, Any] = json.loads((Path(__file__).parent / "ha_rules.json").read_text())
VERSIONS = ("2024.3.3", "2026.4.0")
ENTITY_CATEGORIES = {"config", "diagnostic"}
BINARY_SENSOR_DEVICE_CLASSES = set(RULES["2024.3.3"]["binary_sensor_device_classes"])
_TEMPLATE_SHAPES = (
    re.compile(r"^\{\{ value_json(\.[a-z_][a-z0-9_]*|\['[a-z0-9_]+'\]) \| default\(None\) \}\}$"),
    re.compile(
        r"^\{\{ \{('[a-z_]+': value_json\.[a-z_]+ \| default\(None\)(, )?)+\} \| tojson \}\}$"
    ),
)


def expand(config: dict[str, Any], version: str) -> dict[str, Any]:
    """HA's discovery.py: abbreviated keys replaced by their full names."""
    rules = RULES[version]
    out = {rules["abbreviations"].get(k, k): v for k, v in config.items()}
    for key, table in (("device", "device_abbreviations"), ("origin", "origin_abbreviations")):
        if isinstance(out.get(key), dict):
            out[key] = {rules[table].get(k, k): v for k, v in out[key].items()}
    return out


def _template_ok(template: Any) -> bool:
    if not isinstance(template, str):
        return False
    try:
        import jinja2
    except ImportError:
        return any(shape.match(template) for shape in _TEMPLATE_SHAPES)
    try:
        jinja2.Environment().parse(template)
    except jinja2.TemplateSyntaxError:
        return False
    return True


def _topic_ok(topic: Any) -> bool:
    return isinstance(topic, str) and 0 < len(topic.encode()) <= 65535 and "\0" not in topic


def _url_ok(url: Any) -> bool:
    """cv.configuration_url: http(s) with a host (vol.Url), or homeassistant://."""
    parsed = urlparse(str(url))
    if parsed.scheme in ("http", "https"):
        return bool(parsed.netloc)
    return parsed.scheme == "homeassistant"


def validate(platform: str, raw: dict[str, Any], version: str) -> list[str]:
    """Every rule the config breaks in ``version`` of Home Assistant."""
    rules = RULES[version]
    config = expand(raw, version)
    errors: list[str] = []
    known = set(rules[f"{platform}_keys"])
    elsewhere = set().union(*(RULES[v][f"{platform}_keys"] for v in VERSIONS))
    for key in config:
        if key not in known and key not in elsewhere:
            errors.append(f"unknown key {key!r}")
    if not _topic_ok(config.get("state_topic")):
        errors.append("state_topic missing or invalid")
    if not config.get("unique_id") or not isinstance(config["unique_id"], str):
        errors.append("unique_id missing")
    if "availability_topic" in config and "availability" in config:
        errors.append("availability_topic and availability are exclusive")
    if "availability_topic" in config and not _topic_ok(config["availability_topic"]):
        errors.append("availability_topic invalid")
    for key in ("payload_available", "payload_not_available", "payload_on", "payload_off"):
        if key in config and not isinstance(config[key], str):
            errors.append(f"{key} not a string")
    for key in ("value_template", "json_attributes_template", "availability_template"):
        if key in config and not _template_ok(config[key]):
            errors.append(f"{key} does not parse: {config[key]!r}")
    if "json_attributes_topic" in config and not _topic_ok(config["json_attributes_topic"]):
        errors.append("json_attributes_topic invalid")
    device = config.get("device")
    if device is not None:
        if not isinstance(device, dict):
            errors.append("device not an object")
        else:
            for key in device:
                if key not in rules["device_keys"]:
                    errors.append(f"unknown device key {key!r}")
            if not device.get("identifiers") and not device.get("connections"):
                errors.append("device has no identifiers or connections")
            if "configuration_url" in device and not _url_ok(device["configuration_url"]):
                errors.append(f"device configuration_url invalid: {device['configuration_url']}")
    origin = config.get("origin")
    if origin is not None:
        if not isinstance(origin, dict) or not isinstance(origin.get("name"), str):
            errors.append("origin without a name")
        else:
            errors += [f"unknown origin key {k!r}" for k in origin if k not in rules["origin_keys"]]
    if "entity_category" in config and config["entity_category"] not in ENTITY_CATEGORIES:
        errors.append(f"entity_category {config['entity_category']!r}")
    if "icon" in config and not re.fullmatch(r"[a-z0-9-]+:[a-z0-9-]+", str(config["icon"])):
        errors.append(f"icon {config['icon']!r}")
    for key in ("expire_after", "suggested_display_precision", "off_delay"):
        value = config.get(key)
        if key in config and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            errors.append(f"{key} not a non-negative integer: {value!r}")
    if "expire_after" in config and config["expire_after"] <= 0:
        errors.append("expire_after must be above 0")
    if "default_entity_id" in config:
        domain, _, object_id = str(config["default_entity_id"]).partition(".")
        if domain != platform or not re.fullmatch(r"[a-z0-9_]+", object_id):
            errors.append(f"default_entity_id {config['default_entity_id']!r}")
        if "object_id" in config and config["object_id"] != object_id:
            errors.append("object_id and default_entity_id disagree")
    device_class = config.get("device_class")
    if platform == "binary_sensor":
        if device_class is not None and device_class not in BINARY_SENSOR_DEVICE_CLASSES:
            errors.append(f"binary_sensor device_class {device_class!r}")
        return errors
    errors += _sensor_rules(config, rules)
    return errors


def _sensor_rules(config: dict[str, Any], rules: dict[str, Any]) -> list[str]:
    errors = []
    device_class = config.get("device_class")
    state_class = config.get("state_class")
    unit = config.get("unit_of_measurement")
    unit = rules["ambiguous_units"].get(unit, unit)
    if device_class is not None and device_class not in rules["sensor_device_classes"]:
        errors.append(f"sensor device_class {device_class!r}")
    if state_class is not None and state_class not in rules["state_classes"]:
        errors.append(f"state_class {state_class!r}")
    units = rules["device_class_units"].get(device_class)
    if device_class is not None and units is not None and unit not in units:
        errors.append(f"unit {unit!r} not valid for device_class {device_class!r}: {units}")
    allowed = rules["device_class_state_classes"].get(device_class)
    if state_class is not None and allowed is not None and state_class not in allowed:
        errors.append(f"state_class {state_class!r} not valid for {device_class!r}: {allowed}")
    state_units = rules["state_class_units"].get(state_class)
    if state_units is not None and unit not in state_units:
        errors.append(f"unit {unit!r} not valid for state_class {state_class!r}")
    if "options" in config and (state_class or unit or device_class != "enum"):
        errors.append("options need device_class enum and no state_class or unit")
    return errors
