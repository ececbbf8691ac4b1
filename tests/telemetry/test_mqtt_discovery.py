"""Topics, payloads and Home Assistant discovery configs (pure functions)."""

from __future__ import annotations

import json

from wasihost.model import Measurement, Reading
from wasihost.readings import MEASUREMENTS
from wasihost.telemetry import discovery
from wasihost.telemetry.discovery import Entity, Topics


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
    assert discovery.value_template("temperature") == "{{ value_json.temperature }}"
    # Jinja resolves value_json.items to the dict method, not the key
    assert discovery.value_template("items") == "{{ value_json['items'] }}"
    m = Measurement("gen", "status", 1.0, "", "", 5)
    doc = json.loads(discovery.state_payload(Reading("gen", "w", 5, (m,), {"ok": 1}), []))
    assert doc["status"] == {"ok": 1}


def test_discovery_messages() -> None:
    topics = Topics.for_node("attic")
    entities = [
        Entity("bme680", "gas_resistance", "Ω", "voc"),
        Entity("bme680", "iaq", "IAQ", "aqi"),
        Entity("bme680", "status", "", ""),  # reserved: left out
    ]
    messages = dict(
        discovery.discovery_messages(
            "homeassistant", "attic", topics, entities, ["bme680"], 90, "0.1.0"
        )
    )
    assert set(messages) == {
        "homeassistant/sensor/wasihost_attic/bme680_gas_resistance/config",
        "homeassistant/sensor/wasihost_attic/bme680_iaq/config",
        "homeassistant/sensor/wasihost_attic/bme680_health_state/config",
        "homeassistant/sensor/wasihost_attic/bme680_health_traps/config",
        "homeassistant/sensor/wasihost_attic/bme680_health_reloads/config",
    }
    gas = json.loads(messages["homeassistant/sensor/wasihost_attic/bme680_gas_resistance/config"])
    assert "device_class" not in gas and gas["unit_of_measurement"] == "Ω"
    assert gas["expire_after"] == 90 and gas["state_class"] == "measurement"
    assert gas["object_id"] == "wasihost_attic_bme680_gas_resistance"
    iaq = json.loads(messages["homeassistant/sensor/wasihost_attic/bme680_iaq/config"])
    assert iaq["device_class"] == "aqi" and "unit_of_measurement" not in iaq
    status = json.loads(messages["homeassistant/sensor/wasihost_attic/bme680_health_state/config"])
    assert status["entity_category"] == "diagnostic" and "state_class" not in status
    assert status["json_attributes_topic"] == "wasihost/attic/bme680/health"
    assert status["device"] == gas["device"]
