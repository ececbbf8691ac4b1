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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasihost.telemetry.discovery import NOT_AVAILABLE

log = logging.getLogger("wasihost.fleet")

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_NODES = 1000
MAX_PLUGINS_PER_NODE = 64
MAX_NAME = 64


@dataclass
class PublishedState:
    """The latest state a node published for one plugin."""

    timestamp_ms: int
    values: dict[str, float | None]
    units: dict[str, str]
    status: dict[str, Any]

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "timestamp_ms": self.timestamp_ms,
            "age_seconds": round(max(0.0, now - self.timestamp_ms / 1000), 3),
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
    last_seen: float | None = None  # hub clock, epoch seconds, live messages only
    plugins: dict[str, PublishedState] = field(default_factory=dict)


class Fleet:
    """Nodes seen under ``<base_prefix>/<node>/...``, their liveness and latest readings."""

    def __init__(
        self,
        base_prefix: str = "wasihost",
        offline_after_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_prefix = base_prefix.rstrip("/")
        self.offline_after_seconds = offline_after_seconds
        self._clock = clock
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
        now = self._clock()
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
                if node is not None and self._take_state(node, parts[1], payload):
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

    def _take_state(self, node: NodeState, plugin: str, payload: bytes) -> bool:
        """Store a state payload unless it is malformed or not newer than the
        one held (a re-sent duplicate, or a backlog message overtaken)."""
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
        if held is not None and timestamp <= held.timestamp_ms:
            return True  # valid, just not news: still a sign of life
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
        )
        return True

    def is_online(self, node: NodeState, now: float) -> bool:
        return (
            node.availability != NOT_AVAILABLE
            and node.last_seen is not None
            and now - node.last_seen <= self.offline_after_seconds
        )

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """The ``GET /api/fleet`` document; ``now`` in epoch seconds (default: the clock)."""
        now = self._clock() if now is None else now
        with self._lock:
            nodes = []
            for name in sorted(self._nodes):
                node = self._nodes[name]
                seen = node.last_seen
                nodes.append(
                    {
                        "node": name,
                        "online": self.is_online(node, now),
                        "availability": node.availability,
                        "last_seen_ms": None if seen is None else int(seen * 1000),
                        "last_seen_age_seconds": None if seen is None else round(now - seen, 3),
                        "plugins": {p: s.to_json(now) for p, s in sorted(node.plugins.items())},
                    }
                )
        online = sum(1 for n in nodes if n["online"])
        return {
            "offline_after_seconds": self.offline_after_seconds,
            "online": online,
            "offline": len(nodes) - online,
            "nodes": nodes,
        }
