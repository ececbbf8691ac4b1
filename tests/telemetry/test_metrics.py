"""Prometheus metrics: the text output parses and holds the expected series."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from wasihost.model import Measurement, Reading
from wasihost.telemetry.metrics import Metrics
from wasihost.telemetry.mqtt import MqttStats


def reading(t_ms: int, temperature: float) -> Reading:
    return Reading(
        "dht22",
        "dht22-plugin",
        t_ms,
        (
            Measurement("dht22", "temperature", temperature, "°C", "temperature", t_ms),
            Measurement("dht22", "humidity", 45.0, "%", "humidity", t_ms),
        ),
    )


def status(polls: int, last_poll_ms: float, state: str = "running") -> dict[str, Any]:
    return {
        "state": state,
        "polls": polls,
        "errors": 1,
        "traps": 2,
        "restarts": 2,
        "reloads": 3,
        "quarantines": 0,
        "refused_calls": 4,
        "last_poll_ms": last_poll_ms,
    }


def samples(metrics: Metrics) -> dict[str, list[Sample]]:
    text = metrics.render().decode()
    found: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def one(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    matching = [s for s in found[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, (name, labels, found.get(name))
    return matching[0].value


def test_render_parses_and_holds_the_expected_series() -> None:
    metrics = Metrics("attic")
    statuses = {"dht22": status(1, 12.0), "broken": status(0, 0.0, "quarantined")}
    metrics.update([reading(1000, 21.5)], statuses, 30.0, led_writes=1, led_write_errors=0)
    statuses = {"dht22": status(2, 250.0), "broken": status(0, 0.0, "quarantined")}
    mqtt = MqttStats(
        published=10,
        reconnects=1,
        connected=True,
        outbox_depth=3,
        outbox_dropped=7,
        enqueue_errors=2,
        messages_lost=40,
    )
    metrics.update([reading(3000, 22.5)], statuses, 40.0, led_writes=2, mqtt=mqtt)
    assert metrics.content_type.startswith("text/plain")

    found = samples(metrics)
    labels = {"node": "attic", "plugin": "dht22"}
    assert one(found, "wasihost_measurement", field="temperature", unit="°C", **labels) == 22.5
    assert one(found, "wasihost_measurement", field="humidity", unit="%", **labels) == 45.0
    assert one(found, "wasihost_measurement_timestamp_seconds", field="humidity", **labels) == 3.0
    # two polls of dht22 observed (12 ms, 250 ms); the never-polled plugin has none
    assert one(found, "wasihost_poll_duration_seconds_count", **labels) == 2
    assert one(found, "wasihost_poll_duration_seconds_sum", **labels) == 0.262
    assert one(found, "wasihost_poll_duration_seconds_bucket", le="0.025", **labels) == 1
    assert not [s for s in found["wasihost_poll_duration_seconds_count"] if "broken" in str(s)]
    assert one(found, "wasihost_cycle_duration_seconds_count", node="attic") == 2
    assert one(found, "wasihost_cycles_total", node="attic") == 2
    for name, value in (
        ("wasihost_plugin_polls_total", 2),
        ("wasihost_plugin_errors_total", 1),
        ("wasihost_plugin_traps_total", 2),
        ("wasihost_plugin_reloads_total", 3),
        ("wasihost_plugin_quarantines_total", 0),
        ("wasihost_plugin_refused_calls_total", 4),
    ):
        assert one(found, name, **labels) == value, name
    assert one(found, "wasihost_plugin_state", node="attic", plugin="broken") == 1
    assert [s.labels["state"] for s in found["wasihost_plugin_state"]] == [
        "quarantined",
        "running",
    ]
    assert one(found, "wasihost_led_writes_total", node="attic") == 2
    assert "wasihost_led_write_errors_total" not in found  # not reported this cycle
    assert one(found, "wasihost_mqtt_published_total", node="attic") == 10
    assert one(found, "wasihost_mqtt_reconnects_total", node="attic") == 1
    assert one(found, "wasihost_mqtt_connected", node="attic") == 1
    assert one(found, "wasihost_outbox_depth", node="attic") == 3
    assert one(found, "wasihost_outbox_dropped_total", node="attic") == 7
    assert one(found, "wasihost_outbox_write_errors_total", node="attic") == 2
    assert one(found, "wasihost_outbox_lost_messages_total", node="attic") == 40


def test_registries_are_private() -> None:
    a, b = Metrics("a"), Metrics("b")
    a.update([reading(1000, 20.0)], {}, 10.0)
    assert b"wasihost_measurement{" not in b.render()
    assert b"wasihost_measurement{" in a.render()
    assert not [m for m in REGISTRY.collect() if m.name.startswith("wasihost")]


def test_history_backlog_and_snapshot_failures() -> None:
    metrics = Metrics("attic")
    metrics.update([], {}, 10.0)  # no history, no snapshots: no series
    found = samples(metrics)
    for name in (
        "wasihost_history_unsaved_readings",
        "wasihost_history_dropped_readings_total",
        "wasihost_snapshot_save_failures_total",
    ):
        assert name not in found, name
    metrics.update([], {}, 10.0, history_unsaved=500, history_dropped=1303, snapshot_failures=6)
    found = samples(metrics)
    assert one(found, "wasihost_history_unsaved_readings", node="attic") == 500
    assert one(found, "wasihost_history_dropped_readings_total", node="attic") == 1303
    assert one(found, "wasihost_snapshot_save_failures_total", node="attic") == 6
