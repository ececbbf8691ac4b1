"""Topics, payloads and Home Assistant discovery configs (pure functions)."""

from __future__ import annotations

import json

from wasihost.model import Measurement, Reading
from wasihost.readings import MEASUREMENTS
from wasihost.telemetry import discovery
from wasihost.telemetry.discovery import Device, Entity, Topics


def test_topics() -> None:
    topics = Topics.for_node("attic")
    assert topics.availability == "wasihost/attic/availability"
    assert topics.state("dht22") == "wasihost/attic/dht22/state"
    assert Topics.for_node("attic", "home/attic/").health("bme680") == "home/attic/bme680/health"


def test_seed_device_classes_map_to_valid_home_assistant_classes() -> None:
    mapped = {
        (world, spec.name): discovery.ha_device_class(spec.device_class, spec.unit)
        for world, table in MEASUREMENTS.items()
        for spec in table.values()
    }
    assert mapped[("dht22-plugin", "temperature")] == ("temperature", "°C")
    assert mapped[("dht22-plugin", "humidity")] == ("humidity", "%")
    assert mapped[("bme680-plugin", "pressure")] == ("pressure", "hPa")
    assert mapped[("bme680-plugin", "iaq")] == ("aqi", None)  # HA's aqi takes no unit
    assert mapped[("bme680-plugin", "gas_resistance")] == (None, "Ω")  # no HA class for Ω
    assert mapped[("pi-monitor-plugin", "uptime")] == ("duration", "s")
    assert mapped[("pi-monitor-plugin", "cpu_load")] == (None, "%")
    assert mapped[("pi-monitor-plugin", "memory_used")] == (None, "%")
    # a class HA knows with a unit it would reject: keep the unit, drop the class
    assert discovery.ha_device_class("temperature", "mK") == (None, "mK")


def test_state_payload_has_every_known_field_so_templates_resolve() -> None:
    m = Measurement("bme680", "temperature", 21.5, "°C", "temperature", 5)
    reading = Reading("bme680", "bme680-plugin", 5, (m,), {"heating": True})
    doc = json.loads(discovery.state_payload(reading, ["temperature", "gas_resistance"]))
    assert doc == {
        "timestamp_ms": 5,
        "temperature": 21.5,
        "gas_resistance": None,  # not in this poll: HA shows "unknown", no template error
        "units": {"temperature": "°C"},
        "status": {"heating": True},
    }


def test_reserved_and_awkward_field_names() -> None:
    assert not discovery.publishable("status")
    assert not discovery.publishable("timestamp_ms")
    assert not discovery.publishable("health_traps")
    assert discovery.publishable("temperature")
    assert discovery.value_template("temperature") == "{{ value_json.temperature | default(None) }}"
    # Jinja resolves value_json.items to the dict method, not the key
    assert discovery.value_template("items") == "{{ value_json['items'] | default(None) }}"
    m = Measurement("gen", "status", 1.0, "", "", 5)
    doc = json.loads(discovery.state_payload(Reading("gen", "w", 5, (m,), {"ok": 1}), []))
    assert doc["status"] == {"ok": 1}


def test_declared_fields_come_from_the_world_table_or_describe() -> None:
    seed = discovery.declared_entities("bme680", "bme680-plugin", None)
    assert [e.field for e in seed] == [
        "temperature",
        "humidity",
        "pressure",
        "gas_resistance",
        "iaq",
        "co2_equivalent",
        "breath_voc",
    ]
    info = {
        "measurements": [
            {"name": "co2", "unit": "ppm", "device_class": "co2"},
            {"name": "units", "unit": "", "device_class": ""},  # reserved
            {"name": "9lives", "unit": "", "device_class": ""},  # never a valid name
            "garbage",
        ]
    }
    (co2,) = discovery.declared_entities("scd41", "sensor-plugin", info)
    assert co2 == Entity("scd41", "co2", "ppm", "co2", "sensor-plugin")
    assert discovery.declared_entities("dashboard", "dashboard-plugin", None) == []
    assert discovery.declared_entities("x", None, info) == []


def test_names_a_person_reads() -> None:
    assert discovery.plugin_label("dht22") == "DHT22"
    assert discovery.plugin_label("ds18b20") == "DS18B20"
    assert discovery.plugin_label("pi-monitor") == "Pi monitor"
    assert discovery.field_label("dew_point") == "Dew point"
    assert discovery.field_label("cpu_temperature") == "CPU temperature"
    assert discovery.field_label("iaq") == "IAQ"
    assert discovery.field_label("pm25") == "PM2.5"


def test_dashboard_link_and_device_model() -> None:
    assert discovery.dashboard_url("127.0.0.1", 3000, "attic") is None  # not reachable
    assert discovery.dashboard_url("localhost", 3000, "attic") is None
    assert discovery.dashboard_url("::1", 3000, "attic") is None
    assert discovery.dashboard_url("0.0.0.0", 3000, "attic") == "http://attic.local:3000/"
    assert discovery.dashboard_url("::", 80, "attic.lan") == "http://attic.lan:80/"
    assert discovery.dashboard_url("192.168.1.7", 3000, "x") == "http://192.168.1.7:3000/"
    assert discovery.dashboard_url("fd00::7", 3000, "x") == "http://[fd00::7]:3000/"
    assert discovery.dashboard_url("0.0.0.0", 0, "attic") is None
    assert discovery.device_model("sim") == "wasihost on the simulated board"
    assert discovery.device_model("pi", "Raspberry Pi 4 Model B Rev 1.4") == (
        "wasihost on Raspberry Pi 4 Model B Rev 1.4"
    )


def test_discovery_messages() -> None:
    topics = Topics.for_node("attic")
    entities = [
        Entity("bme680", "gas_resistance", "Ω", "voc", "bme680-plugin"),
        Entity("bme680", "iaq", "IAQ", "aqi", "bme680-plugin"),
        Entity("bme680", "status", "", ""),  # reserved: left out
    ]
    device = Device("attic", "0.1.0")
    messages = dict(
        discovery.discovery_messages("homeassistant", topics, entities, ["bme680"], 90, device)
    )
    assert set(messages) == {
        "homeassistant/binary_sensor/wasihost_attic/connectivity/config",
        "homeassistant/sensor/wasihost_attic/uptime/config",
        "homeassistant/sensor/wasihost_attic/bme680_gas_resistance/config",
        "homeassistant/sensor/wasihost_attic/bme680_iaq/config",
        "homeassistant/sensor/wasihost_attic/bme680_health_state/config",
        "homeassistant/sensor/wasihost_attic/bme680_health_traps/config",
        "homeassistant/sensor/wasihost_attic/bme680_health_reloads/config",
    }
    gas = json.loads(messages["homeassistant/sensor/wasihost_attic/bme680_gas_resistance/config"])
    assert "device_class" not in gas and gas["unit_of_measurement"] == "Ω"
    assert gas["icon"] == "mdi:air-filter" and gas["suggested_display_precision"] == 0
    assert gas["expire_after"] == 90 and gas["state_class"] == "measurement"
    assert gas["name"] == "BME680 Gas resistance"
    assert gas["object_id"] == "wasihost_attic_bme680_gas_resistance"
    assert gas["default_entity_id"] == "sensor.wasihost_attic_bme680_gas_resistance"
    iaq = json.loads(messages["homeassistant/sensor/wasihost_attic/bme680_iaq/config"])
    assert iaq["device_class"] == "aqi" and "unit_of_measurement" not in iaq
    status = json.loads(messages["homeassistant/sensor/wasihost_attic/bme680_health_state/config"])
    assert status["entity_category"] == "diagnostic" and "state_class" not in status
    assert status["json_attributes_topic"] == "wasihost/attic/bme680/health"
    assert status["expire_after"] == 90 and status["name"] == "BME680 Status"
    assert status["device"] == gas["device"]
    assert "configuration_url" not in gas["device"]
    uptime = json.loads(messages["homeassistant/sensor/wasihost_attic/uptime/config"])
    assert uptime["expire_after"] == 180  # three of the node's one-a-minute messages


def test_health_payload_keeps_counters_for_other_readers() -> None:
    status = {"state": "running", "polls": 7, "health": "ok", "health_reason": None}
    doc = json.loads(discovery.health_payload(status, 5))
    assert doc["polls"] == 7 and doc["health"] == "ok" and doc["timestamp_ms"] == 5
