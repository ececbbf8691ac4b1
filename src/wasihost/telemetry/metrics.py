"""Prometheus metrics for ``GET /metrics``.

A dedicated ``CollectorRegistry`` (never the process-global one), so two hosts
in one process (tests) never share series and nothing else's metrics leak in.

Two kinds of series:

- histograms (``wasihost_poll_duration_seconds`` per plugin,
  ``wasihost_cycle_duration_seconds``) accumulate observations in ``update``;
- everything else is a snapshot taken in ``update`` and emitted by a custom
  collector at scrape time: the latest value of each measured quantity and
  the plugins' own cumulative counters (``Plugin.status()`` already counts
  polls, errors, traps, ...; mirroring them into prometheus ``Counter``
  objects would only add a second copy that can drift).

Poll durations come from ``statuses()[name]["last_poll_ms"]``, observed once
per cycle for each plugin whose ``polls`` count moved (a renderer's
``last_poll_ms`` is its render time). ``observe_poll`` is the hook for a
per-call observer if the call path ever reports every call.

Thread rules: ``update`` and ``render`` may run on different threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from wasihost.model import Reading

if TYPE_CHECKING:
    from wasihost.telemetry.mqtt import MqttStats

DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Plugin.status() key → (metric name without _total, help)
PLUGIN_COUNTERS = (
    ("polls", "wasihost_plugin_polls", "Calls into the plugin's logic export."),
    ("errors", "wasihost_plugin_errors", "Polls that returned the plugin's error case."),
    ("traps", "wasihost_plugin_traps", "Guest calls that trapped or hung (instance discarded)."),
    ("hangs", "wasihost_plugin_hangs", "Guest calls the host stopped waiting for (blocked)."),
    ("restarts", "wasihost_plugin_restarts", "Fresh instances after a trap."),
    ("reloads", "wasihost_plugin_reloads", "New versions swapped in."),
    (
        "recycles",
        "wasihost_plugin_recycles",
        "Moves to a fresh instance before guest memory reached the cap (state carried).",
    ),
    (
        "restore_failures",
        "wasihost_plugin_restore_failures",
        "Saved state a new instance refused or trapped on.",
    ),
    ("quarantines", "wasihost_plugin_quarantines", "Times the plugin was quarantined."),
    ("refused_calls", "wasihost_plugin_refused_calls", "Capability calls refused by grants."),
    (
        "host_failures",
        "wasihost_plugin_host_failures",
        "Capability calls that failed inside the host (board trouble, host bugs).",
    ),
)


@dataclass(frozen=True, slots=True)
class _Sample:
    value: float
    unit: str
    timestamp_ms: int


class _Snapshot:
    """The latest per-cycle values; a collector emitting them at scrape time."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.lock = threading.Lock()
        self.measurements: dict[tuple[str, str], _Sample] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.cycles = 0
        self.led_writes: int | None = None
        self.led_write_errors: int | None = None
        self.mqtt: MqttStats | None = None
        self.history_unsaved: int | None = None
        self.history_dropped: int | None = None
        self.snapshot_failures: int | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # dynamic label sets; skip the registry's duplicate check

    def collect(self) -> Iterator[Metric]:
        node = self.node
        with self.lock:
            value = GaugeMetricFamily(
                "wasihost_measurement",
                "Latest value of a measured quantity, in its unit label.",
                labels=["node", "plugin", "field", "unit"],
            )
            stamp = GaugeMetricFamily(
                "wasihost_measurement_timestamp_seconds",
                "When the latest value was measured (epoch seconds); shows staleness.",
                labels=["node", "plugin", "field"],
            )
            for (plugin, field), sample in sorted(self.measurements.items()):
                value.add_metric([node, plugin, field, sample.unit], sample.value)
                stamp.add_metric([node, plugin, field], sample.timestamp_ms / 1000)
            yield value
            yield stamp
            for key, name, doc in PLUGIN_COUNTERS:
                family = CounterMetricFamily(name, doc, labels=["node", "plugin"])
                for plugin, status in sorted(self.statuses.items()):
                    count = status.get(key)
                    if isinstance(count, int | float):
                        family.add_metric([node, plugin], count)
                yield family
            state = GaugeMetricFamily(
                "wasihost_plugin_state",
                "1 for the plugin's current lifecycle state.",
                labels=["node", "plugin", "state"],
            )
            for plugin, status in sorted(self.statuses.items()):
                state.add_metric([node, plugin, str(status.get("state"))], 1)
            yield state
            memory = GaugeMetricFamily(
                "wasihost_plugin_guest_memory_bytes",
                "The plugin's guest linear memory at its last check (where measurable).",
                labels=["node", "plugin"],
            )
            for plugin, status in sorted(self.statuses.items()):
                used = status.get("guest_memory_bytes")
                if isinstance(used, int):
                    memory.add_metric([node, plugin], used)
            yield memory
            yield from self._optional()

    def _optional(self) -> Iterator[Metric]:
        def counter(name: str, doc: str, count: int | None) -> Iterator[Metric]:
            if count is not None:
                family = CounterMetricFamily(name, doc, labels=["node"])
                family.add_metric([self.node], count)
                yield family

        def gauge(name: str, doc: str, level: float) -> Metric:
            family = GaugeMetricFamily(name, doc, labels=["node"])
            family.add_metric([self.node], level)
            return family

        yield from counter("wasihost_cycles", "Poll cycles completed.", self.cycles)
        if self.history_unsaved is not None:
            yield gauge(
                "wasihost_history_unsaved_readings",
                "Readings waiting in memory for the history database (a full disk).",
                self.history_unsaved,
            )
        yield from counter(
            "wasihost_history_dropped_readings",
            "Readings dropped, never saved: the oldest beyond [history] max_unsaved_readings.",
            self.history_dropped,
        )
        yield from counter(
            "wasihost_snapshot_save_failures",
            "State snapshot writes that failed (a full disk); each is retried an interval later.",
            self.snapshot_failures,
        )
        yield from counter("wasihost_led_writes", "LED strip writes.", self.led_writes)
        yield from counter(
            "wasihost_led_write_errors", "LED strip writes that failed.", self.led_write_errors
        )
        mqtt = self.mqtt
        if mqtt is not None:
            yield from counter(
                "wasihost_mqtt_published", "MQTT messages published.", mqtt.published
            )
            yield from counter(
                "wasihost_mqtt_reconnects", "Reconnections to the broker.", mqtt.reconnects
            )
            yield gauge(
                "wasihost_mqtt_connected", "1 while connected to the broker.", mqtt.connected
            )
            yield gauge(
                "wasihost_outbox_depth", "Messages waiting for the broker.", mqtt.outbox_depth
            )
            yield from counter(
                "wasihost_outbox_dropped",
                "Messages dropped (oldest first) by the outbox cap.",
                mqtt.outbox_dropped,
            )
            yield from counter(
                "wasihost_outbox_write_errors",
                "Cycles whose messages could not be written to the outbox.",
                mqtt.enqueue_errors,
            )
            yield from counter(
                "wasihost_outbox_lost_messages",
                "Messages lost, never queued: the outbox could not be written (a full disk).",
                mqtt.messages_lost,
            )


class Metrics:
    """The host's metrics; ``update`` once per cycle, ``render`` per scrape."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, node_id: str) -> None:
        self.node = node_id
        self.registry = CollectorRegistry(auto_describe=True)
        self._snapshot = _Snapshot(node_id)
        self.registry.register(self._snapshot)
        self._poll = Histogram(
            "wasihost_poll_duration_seconds",
            "Duration of one plugin call (sampled once per cycle per polled plugin).",
            ["node", "plugin"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._cycle = Histogram(
            "wasihost_cycle_duration_seconds",
            "Duration of one poll cycle (all plugins, LED write, state update).",
            ["node"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._polls_seen: dict[str, int] = {}

    def observe_poll(self, plugin: str, seconds: float) -> None:
        self._poll.labels(self.node, plugin).observe(seconds)

    def update(
        self,
        readings: Iterable[Reading],
        statuses: Mapping[str, Mapping[str, Any]],
        cycle_ms: float | None,
        *,
        led_writes: int | None = None,
        led_write_errors: int | None = None,
        mqtt: MqttStats | None = None,
        history_unsaved: int | None = None,
        history_dropped: int | None = None,
        snapshot_failures: int | None = None,
    ) -> None:
        """Take one cycle: its readings, ``Host.statuses()``, its duration in ms
        (``state.last_cycle_ms``), and optional LED, MQTT, history backlog
        (``Host.history_unsaved``, ``Host.history_dropped``) and snapshot
        failure counts; a series whose value is None is left out."""
        for plugin, status in statuses.items():
            polls, last_ms = status.get("polls"), status.get("last_poll_ms")
            if not isinstance(polls, int):
                continue
            if polls > self._polls_seen.get(plugin, 0) and isinstance(last_ms, int | float):
                self.observe_poll(plugin, last_ms / 1000)
            self._polls_seen[plugin] = polls
        if cycle_ms is not None:
            self._cycle.labels(self.node).observe(cycle_ms / 1000)
        snapshot = self._snapshot
        with snapshot.lock:
            for reading in readings:
                for m in reading.measurements:
                    snapshot.measurements[(m.plugin, m.name)] = _Sample(
                        m.value, m.unit, m.timestamp_ms
                    )
            snapshot.statuses = {name: dict(status) for name, status in statuses.items()}
            snapshot.cycles += 1
            snapshot.led_writes = led_writes
            snapshot.led_write_errors = led_write_errors
            snapshot.mqtt = mqtt
            snapshot.history_unsaved = history_unsaved
            snapshot.history_dropped = history_dropped
            snapshot.snapshot_failures = snapshot_failures

    def render(self) -> bytes:
        """Every series in the Prometheus text format (``content_type``)."""
        return generate_latest(self.registry)
