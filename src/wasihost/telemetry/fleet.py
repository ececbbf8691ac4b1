"""The hub's view of every node, built from what the nodes publish on MQTT.

A hub (``[fleet] role = "hub"``) is an ordinary node whose ``MqttPublisher``
also subscribes to ``Fleet.subscriptions`` and passes every message to
``Fleet.handle``: one broker connection, one reconnect policy, and the broker's
ACLs are the only access control (nodes never push readings over HTTP).

Liveness is the hub's own judgement, by its clock: a node is online only if
its availability is not ``offline`` (the last will fires when its connection
dies) and the hub heard from it within ``offline_after_seconds``. Retained
messages replayed at subscription time say nothing about the present, so
they never count as "heard": a node that stopped publishing shows offline,
with its last readings and their age, never as live.

Clocks: a Pi without a real-time clock boots in 1970 (or at its last
shutdown) and NTP steps its wall clock later, by hours to decades, sometimes
back, on the nodes and on the hub alike. So nothing here compares a node's
``timestamp_ms`` with the hub's clock or with its earlier stamps to decide
anything: liveness and ages are durations on the hub's monotonic clock since
a message arrived, and the newest state is the one that arrived last (the
node's outbox publishes in order) unless it repeats a stamp the hub already
took, which is an at-least-once re-send. The node's stamp is only shown.

Everything received is untrusted input (any client the ACL lets write
``wasihost/#``): payloads are size-capped and parsed defensively, and the
number of nodes and plugins kept is bounded.

Thread rules: ``handle`` runs on the event loop; ``to_json`` may run anywhere.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasihost.telemetry.discovery import NOT_AVAILABLE

log = logging.getLogger("wasihost.fleet")

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_NODES = 1000
MAX_PLUGINS_PER_NODE = 64
MAX_NAME = 64
# Stamps remembered per plugin to recognise re-sent duplicates: after a broken
# connection a node re-sends at most the batch in flight (mqtt.BATCH, 500 since
# issue 18: a state and a health message per plugin and cycle). 64 stamps cover a
# plugin's states in a batch when the node has 4 plugins or more; with fewer, an old
# duplicate can pass (sized when the batch was 100: to be revisited).
RECENT_STAMPS = 64


@dataclass
class PublishedState:
    """The latest state a node published for one plugin."""

    timestamp_ms: int  # the node's clock: shown, never compared with the hub's
    values: dict[str, float | None]
    units: dict[str, str]
    status: dict[str, Any]
    received: float | None = None  # hub monotonic clock; None: a retained message

    def age(self, wall_now: float, mono_now: float) -> float:
        """Seconds since the hub received it; for a retained message (whose arrival
        says nothing about when it was sent) by the node's stamp and the hub's wall clock."""
        if self.received is None:
            return max(0.0, wall_now - self.timestamp_ms / 1000)
        return max(0.0, mono_now - self.received)

    def to_json(self, wall_now: float, mono_now: float) -> dict[str, Any]:
        return {
            "timestamp_ms": self.timestamp_ms,
            "age_seconds": round(self.age(wall_now, mono_now), 3),
            "measurements": [
                {"name": name, "value": value, "unit": self.units.get(name, "")}
                for name, value in self.values.items()
            ],
            "status": self.status,
        }


@dataclass
class NodeState:
    node: str
    availability: str | None = None  # the last payload of <base>/availability
    last_seen: float | None = None  # hub monotonic clock, live messages only
    plugins: dict[str, PublishedState] = field(default_factory=dict)
    # Per plugin, the stamps of the last RECENT_STAMPS states taken (duplicates).
    stamps: dict[str, deque[int]] = field(default_factory=dict)


class Fleet:
    """Nodes seen under ``<base_prefix>/<node>/...``, their liveness and latest readings."""

    def __init__(
        self,
        base_prefix: str = "wasihost",
        offline_after_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` is the hub's wall clock in epoch seconds (for the times shown),
        ``monotonic`` the clock durations are measured on: ``time.monotonic`` by
        default, but ``clock`` itself when only ``clock`` is injected (a test's
        stepped clock, which never jumps; a wall clock that does is then harmless
        but coarse: a node shows offline until it next speaks)."""
        self.base_prefix = base_prefix.rstrip("/")
        self.offline_after_seconds = offline_after_seconds
        self._clock = clock
        if monotonic is None:
            monotonic = time.monotonic if clock is time.time else clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._nodes: dict[str, NodeState] = {}
        self.ignored = 0  # malformed, oversized or over-limit messages

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return (f"{self.base_prefix}/+/availability", f"{self.base_prefix}/+/+/state")

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Take one message (the ``MqttPublisher`` ``on_message`` callback)."""
        parts = topic.removeprefix(self.base_prefix + "/").split("/")
        if not topic.startswith(self.base_prefix + "/") or len(payload) > MAX_PAYLOAD_BYTES:
            self.ignored += 1
            return
        now = self._monotonic()
        with self._lock:
            if len(parts) == 2 and parts[1] == "availability":
                node = self._node(parts[0])
                if node is not None:
                    node.availability = payload.decode("utf-8", "replace")[:32]
                    if not retained:
                        node.last_seen = now
                    return
            elif len(parts) == 3 and parts[2] == "state":
                node = self._node(parts[0])
                received = None if retained else now
                if node is not None and self._take_state(node, parts[1], payload, received):
                    if not retained:
                        node.last_seen = now
                    return
            self.ignored += 1

    def _node(self, name: str) -> NodeState | None:
        node = self._nodes.get(name)
        if node is None:
            if not name or len(name) > MAX_NAME or len(self._nodes) >= MAX_NODES:
                return None
            node = self._nodes[name] = NodeState(name)
        return node

    def _take_state(
        self, node: NodeState, plugin: str, payload: bytes, received: float | None
    ) -> bool:
        """Store a state payload unless it is malformed, a re-sent duplicate (its
        stamp is one of the last ones taken), or retained while a live state is
        held. Arrival order decides what is newer, not the stamp: a node whose
        clock stepped back keeps being shown. ``received``: None if retained."""
        try:
            doc = json.loads(payload)
        except ValueError:
            return False
        if not isinstance(doc, dict) or not plugin or len(plugin) > MAX_NAME:
            return False
        timestamp = doc.get("timestamp_ms")
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            return False
        held = node.plugins.get(plugin)
        if held is None and len(node.plugins) >= MAX_PLUGINS_PER_NODE:
            return False
        stamps = node.stamps.setdefault(plugin, deque(maxlen=RECENT_STAMPS))
        if held is not None and (
            timestamp in stamps or (received is None and held.received is not None)
        ):
            return True  # valid, just not news: still a sign of life
        stamps.append(timestamp)
        units = doc.get("units")
        units = units if isinstance(units, dict) else {}
        status = doc.get("status")
        status = status if isinstance(status, dict) else {}
        values: dict[str, float | None] = {}
        for key, value in doc.items():
            if key in ("timestamp_ms", "units", "status") or len(key) > MAX_NAME:
                continue
            if value is None:
                values[key] = None
            elif isinstance(value, int | float) and not isinstance(value, bool):
                values[key] = float(value) if math.isfinite(value) else None
        node.plugins[plugin] = PublishedState(
            timestamp,
            values,
            {k: str(v)[:32] for k, v in units.items()},
            {k: v for k, v in status.items() if isinstance(v, str | int | float | bool | None)},
            received,
        )
        return True

    def is_online(self, node: NodeState, now: float) -> bool:
        """Whether ``node`` counts as online at ``now`` on the monotonic clock.

        A negative age (only an injected clock that steps back can give one)
        is no sign of life: offline until the node speaks again, never online
        for as long as the clock stepped back.
        """
        return (
            node.availability != NOT_AVAILABLE
            and node.last_seen is not None
            and 0.0 <= now - node.last_seen <= self.offline_after_seconds
        )

    def to_json(self) -> dict[str, Any]:
        """The ``GET /api/fleet`` document. Ages are on the monotonic clock;
        ``last_seen_ms`` is today's wall clock minus that age."""
        wall, now = self._clock(), self._monotonic()
        with self._lock:
            nodes = []
            for name in sorted(self._nodes):
                node = self._nodes[name]
                seen = node.last_seen
                age = None if seen is None else max(0.0, now - seen)
                nodes.append(
                    {
                        "node": name,
                        "online": self.is_online(node, now),
                        "availability": node.availability,
                        "last_seen_ms": None if age is None else int((wall - age) * 1000),
                        "last_seen_age_seconds": None if age is None else round(age, 3),
                        "plugins": {
                            p: s.to_json(wall, now) for p, s in sorted(node.plugins.items())
                        },
                    }
                )
        online = sum(1 for n in nodes if n["online"])
        return {
            "offline_after_seconds": self.offline_after_seconds,
            "online": online,
            "offline": len(nodes) - online,
            "nodes": nodes,
        }
