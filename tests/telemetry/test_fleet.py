"""The hub's fleet view, driven with MQTT messages and a fake clock."""

from __future__ import annotations

import json
from typing import Any

from wasihost.model import Measurement, Reading
from wasihost.telemetry.discovery import state_payload
from wasihost.telemetry.fleet import MAX_NODES, Fleet


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def state(t_ms: int, temperature: float) -> bytes:
    m = Measurement("dht22", "temperature", temperature, "°C", "temperature", t_ms)
    return state_payload(Reading("dht22", "dht22-plugin", t_ms, (m,), {"alarm": False}), [])


def node(fleet: Fleet, name: str) -> dict[str, Any]:
    return next(n for n in fleet.to_json()["nodes"] if n["node"] == name)


def test_nodes_appear_and_a_silent_node_goes_offline() -> None:
    clock = Clock()
    fleet = Fleet("wasihost", offline_after_seconds=30, clock=clock)
    assert fleet.subscriptions == ("wasihost/+/availability", "wasihost/+/+/state")
    for name in ("a", "b"):
        fleet.handle(f"wasihost/{name}/availability", b"online")
        fleet.handle(f"wasihost/{name}/dht22/state", state(1000, 21.0))
    doc = fleet.to_json()
    assert (doc["online"], doc["offline"]) == (2, 0)
    a = node(fleet, "a")
    assert a["plugins"]["dht22"]["measurements"] == [
        {"name": "temperature", "value": 21.0, "unit": "°C"}
    ]
    assert a["plugins"]["dht22"]["status"] == {"alarm": False}

    clock.now += 20
    fleet.handle("wasihost/a/dht22/state", state(21_000, 22.0))
    clock.now += 20  # b silent for 40 s > 30 s; a heard 20 s ago
    assert node(fleet, "a")["online"] and not node(fleet, "b")["online"]
    b = node(fleet, "b")
    assert b["availability"] == "online"  # it never said goodbye: silence decides
    assert b["last_seen_age_seconds"] == 40.0
    assert b["plugins"]["dht22"]["measurements"][0]["value"] == 21.0  # kept, not live

    fleet.handle("wasihost/b/dht22/state", state(41_000, 23.0))  # back
    assert node(fleet, "b")["online"]


def test_last_will_marks_offline_at_once_and_online_again_on_reconnect() -> None:
    fleet = Fleet(offline_after_seconds=60, clock=Clock())
    fleet.handle("wasihost/a/availability", b"online")
    fleet.handle("wasihost/a/dht22/state", state(1000, 21.0))
    fleet.handle("wasihost/a/availability", b"offline")
    assert not node(fleet, "a")["online"]
    fleet.handle("wasihost/a/availability", b"online")
    assert node(fleet, "a")["online"]


def test_retained_messages_are_not_signs_of_life() -> None:
    fleet = Fleet(offline_after_seconds=60, clock=Clock())
    fleet.handle("wasihost/old/availability", b"online", retained=True)
    old = node(fleet, "old")
    assert old["availability"] == "online" and not old["online"] and old["last_seen_ms"] is None


def test_older_or_repeated_states_do_not_replace_newer_ones() -> None:
    fleet = Fleet(clock=Clock())
    fleet.handle("wasihost/a/availability", b"online")
    fleet.handle("wasihost/a/dht22/state", state(2000, 22.0))
    fleet.handle("wasihost/a/dht22/state", state(2000, 99.0))  # a re-sent duplicate
    fleet.handle("wasihost/a/dht22/state", state(1000, 11.0))  # older
    assert node(fleet, "a")["plugins"]["dht22"]["timestamp_ms"] == 2000
    assert node(fleet, "a")["plugins"]["dht22"]["measurements"][0]["value"] == 22.0


def test_hostile_messages_are_ignored_and_bounded() -> None:
    fleet = Fleet(clock=Clock())
    fleet.handle("wasihost/a/dht22/state", b"not json")
    fleet.handle("wasihost/a/dht22/state", json.dumps({"timestamp_ms": "soon"}).encode())
    fleet.handle("wasihost/a/dht22/state", b"[1, 2]")
    fleet.handle("wasihost/a/dht22/state", b"x" * 70_000)
    fleet.handle("elsewhere/a/availability", b"online")
    fleet.handle("wasihost/a/b/c/d", b"{}")
    assert fleet.ignored == 6
    weird = {"timestamp_ms": 5, "t": "hot", "nan": None, "ok": 1, "status": [1], "units": 3}
    fleet.handle("wasihost/a/gen/state", json.dumps(weird).encode())
    plugin = node(fleet, "a")["plugins"]["gen"]
    assert plugin["measurements"] == [
        {"name": "nan", "value": None, "unit": ""},
        {"name": "ok", "value": 1.0, "unit": ""},
    ]
    assert plugin["status"] == {}
    for i in range(MAX_NODES + 10):
        fleet.handle(f"wasihost/n{i}/availability", b"online")
    assert len(fleet.to_json()["nodes"]) == MAX_NODES
