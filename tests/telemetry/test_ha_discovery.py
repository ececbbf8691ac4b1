"""Every discovery config a node publishes, checked against Home Assistant's
MQTT discovery rules (``ha_rules.py``: derived from HA 2024.3.3 and 2026.4.0,
the versions and files are cited there).

Optional, against a real Home Assistant: ``WASIHOST_HA_PYTHON=/path/to/python``
(a Python with ``homeassistant`` installed, e.g. ``pip install
homeassistant==2024.3.3`` in a venv of Python 3.11) also runs HA's own
``DISCOVERY_SCHEMA`` of the MQTT sensor and binary_sensor platforms, and its
Jinja parser, on the same configs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.telemetry.ha_rules import VERSIONS, validate
from wasihost.readings import MEASUREMENTS
from wasihost.telemetry import discovery
from wasihost.telemetry.discovery import Device, Entity, Topics

# homeassistant/components/mqtt/discovery.py TOPIC_MATCHER (both versions)
TOPIC = re.compile(
    r"^homeassistant/(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)"
    r"?(?P<object_id>[a-zA-Z0-9_-]+)/config$"
)
SEED = {"dht22": "dht22-plugin", "pi-monitor": "pi-monitor-plugin", "bme680": "bme680-plugin"}
GENERIC_INFO = {
    "name": "Odd sensor",
    "version": "1.0",
    "measurements": [
        {"name": "co2", "unit": "ppm", "device_class": "carbon_dioxide"},
        {"name": "supply", "unit": "mV", "device_class": "voltage"},
        {"name": "items", "unit": "", "device_class": "none"},  # a dict method's name
        {"name": "mystery", "unit": "furlongs", "device_class": "distance"},  # class dropped
        {"name": "pm25", "unit": "µg/m³", "device_class": "pm25"},  # micro sign, not mu
        {"name": "status", "unit": "", "device_class": "none"},  # reserved: left out
        {"name": "Bad Name", "unit": "", "device_class": "none"},  # never published
    ],
}


def all_messages(configuration_url: str | None = "http://attic.local:3000/") -> dict[str, Any]:
    topics = Topics.for_node("attic")
    entities = [e for plugin, world in SEED.items() for e in discovery.declared_entities(
        plugin, world, None)] + discovery.declared_entities("odd-one", "sensor-plugin",
        GENERIC_INFO)  # fmt: skip
    plugins = [*SEED, "odd-one", "dashboard"]
    device = Device("attic", "0.1.0", "wasihost on the simulated board", configuration_url)
    messages = discovery.discovery_messages("homeassistant", topics, entities, plugins, 60, device)
    return {topic: json.loads(payload) for topic, payload in messages}


def test_every_config_follows_home_assistant_rules() -> None:
    messages = all_messages()
    assert len(messages) == 2 + 15 + 5 + 5 * 3  # node, seed fields, generic fields, diagnostics
    unique_ids = [config["unique_id"] for config in messages.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    for topic, config in messages.items():
        match = TOPIC.match(topic)
        assert match is not None, topic
        for version in VERSIONS:
            assert validate(match["component"], config, version) == [], (topic, version)


def test_the_validator_catches_what_home_assistant_rejects() -> None:
    good = all_messages()["homeassistant/sensor/wasihost_attic/dht22_temperature/config"]
    for version in VERSIONS:
        assert validate("sensor", good, version) == []
        bad = {**good, "unit_of_measurement": "%"}
        assert any("not valid for device_class" in e for e in validate("sensor", bad, version))
        assert validate("sensor", {**good, "stat_cls": "measurement"}, version) == [
            "unknown key 'stat_cls'"
        ]
        abbreviated = {"stat_cla": "total", "dev_cla": "temperature", "exp_aft": 0}
        errors = validate("sensor", {**good, **abbreviated}, version)
        assert "expire_after must be above 0" in errors
        assert any("state_class 'total' not valid" in e for e in errors)
        assert any("unique_id" in e for e in validate("sensor", {**good, "unique_id": ""}, version))
        broken = {**good, "value_template": "{{ value_json.temperature "}
        assert any("does not parse" in e for e in validate("sensor", broken, version))
        wrong = {**good, "default_entity_id": "binary_sensor.x"}
        assert any("default_entity_id" in e for e in validate("sensor", wrong, version))
        local = {**good, "device": {**good["device"], "configuration_url": "attic:3000"}}
        assert any("configuration_url" in e for e in validate("sensor", local, version))


def test_configs_read_as_a_person_would() -> None:
    messages = all_messages()
    config = messages["homeassistant/sensor/wasihost_attic/dht22_temperature/config"]
    assert config["name"] == "DHT22 Temperature"
    assert config["suggested_display_precision"] == 1
    assert config["object_id"] == "wasihost_attic_dht22_temperature"
    assert config["default_entity_id"] == "sensor.wasihost_attic_dht22_temperature"
    assert config["device"]["configuration_url"] == "http://attic.local:3000/"
    assert config["device"]["model"] == "wasihost on the simulated board"
    assert "icon" not in config  # HA's temperature class has one
    cpu = messages["homeassistant/sensor/wasihost_attic/pi-monitor_cpu_load/config"]
    assert cpu["name"] == "Pi monitor CPU load" and cpu["icon"] == "mdi:cpu-64-bit"
    assert cpu["suggested_display_precision"] == 0
    uptime = messages["homeassistant/sensor/wasihost_attic/uptime/config"]
    assert uptime["device_class"] == "duration" and uptime["unit_of_measurement"] == "s"
    assert uptime["state_topic"] == "wasihost/attic/node"
    link = messages["homeassistant/binary_sensor/wasihost_attic/connectivity/config"]
    assert link["device_class"] == "connectivity" and "availability_topic" not in link
    assert (link["payload_on"], link["payload_off"]) == ("online", "offline")
    for topic, config in messages.items():
        assert config["name"][:1].isupper(), topic
        assert config.get("expire_after", 1) > 0, topic
    # without a reachable dashboard there is no link at all
    bare = all_messages(configuration_url=None)
    assert all("configuration_url" not in c["device"] for c in bare.values())


def test_status_attributes_leave_out_counters_that_change_every_cycle() -> None:
    status = all_messages()["homeassistant/sensor/wasihost_attic/dht22_health_state/config"]
    assert status["json_attributes_template"] == (
        "{{ {'health': value_json.health | default(None), "
        "'last_error': value_json.last_error | default(None)} | tojson }}"
    )
    assert status["expire_after"] == 60  # a plugin gone from the config goes unavailable


def test_every_seed_field_has_a_precision() -> None:
    for world, table in MEASUREMENTS.items():
        for spec in table.values():
            assert discovery.precision(Entity("p", spec.name, spec.unit, "", world)) is not None


HA_CHECK = """
import json, sys
import jinja2
from homeassistant.components.mqtt import sensor, binary_sensor
from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS
failures = []
for topic, config in json.load(sys.stdin).items():
    platform = binary_sensor if "/binary_sensor/" in topic else sensor
    schema = platform.DISCOVERY_SCHEMA
    config = {ABBREVIATIONS.get(k, k): v for k, v in config.items()}
    try:
        schema(config)
        for key in ("value_template", "json_attributes_template"):
            if key in config:
                jinja2.Environment().parse(config[key])
    except Exception as exc:
        failures.append(f"{topic}: {exc}")
print(json.dumps(failures))
"""


@pytest.mark.skipif(
    not os.environ.get("WASIHOST_HA_PYTHON"),
    reason="set WASIHOST_HA_PYTHON to a Python with homeassistant installed",
)
def test_home_assistants_own_discovery_schemas_accept_every_config() -> None:
    python = os.environ["WASIHOST_HA_PYTHON"]
    result = subprocess.run(
        [python, "-c", HA_CHECK],
        input=json.dumps(all_messages()),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
