"""The hub's fleet view, driven with MQTT messages and a fake clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

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


def test_re_sent_duplicates_do_not_replace_newer_states() -> None:
    """At-least-once delivery: after a broken connection the node re-sends the batch
    the broker may already have passed on. Those repeat stamps the hub has seen."""
    fleet = Fleet(clock=Clock())
    fleet.handle("wasihost/a/availability", b"online")
    for t_ms in (1000, 2000, 3000):
        fleet.handle("wasihost/a/dht22/state", state(t_ms, t_ms / 100))
    fleet.handle("wasihost/a/dht22/state", state(1000, 10.0))  # re-sent
    fleet.handle("wasihost/a/dht22/state", state(2000, 20.0))
    fleet.handle("wasihost/a/dht22/state", state(3000, 99.0))
    held = node(fleet, "a")["plugins"]["dht22"]
    assert held["timestamp_ms"] == 3000 and held["measurements"][0]["value"] == 30.0
    assert fleet.ignored == 0  # valid, just not news


# --- Clock jumps: the node's clock and the hub's ----------------------------------------
# A Pi without a real-time clock boots in 1970 (or at its last shutdown) and NTP steps
# its wall clock a minute later, by hours to decades, sometimes back.

YEAR_S = 365 * 86_400.0


class Clocks:
    """The hub's wall clock (stepped like NTP does) and its monotonic clock."""

    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 5_000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def hub(clocks: Clocks, offline_after_seconds: float = 60.0) -> Fleet:
    return Fleet(
        offline_after_seconds=offline_after_seconds,
        clock=lambda: clocks.wall,
        monotonic=lambda: clocks.mono,
    )


@pytest.mark.parametrize("back_ms", [3_600_000, 1_700_000_000_000 - 5_000], ids=["hour", "1970"])
def test_a_node_whose_clock_steps_back_is_not_frozen(back_ms: int) -> None:
    clocks = Clocks()
    fleet = hub(clocks)
    now_ms = 1_700_000_000_000
    fleet.handle("wasihost/a/availability", b"online")
    fleet.handle("wasihost/a/dht22/state", state(now_ms, 21.0))
    for i in range(1, 4):  # the node's clock stepped back; its readings go on
        clocks.advance(2)
        fleet.handle("wasihost/a/dht22/state", state(now_ms - back_ms + 2000 * i, 21.0 + i))
    held = node(fleet, "a")["plugins"]["dht22"]
    assert held["measurements"][0]["value"] == 24.0
    assert held["timestamp_ms"] == now_ms - back_ms + 6000  # the node's own stamp, shown
    assert held["age_seconds"] == 0.0  # received just now


def test_a_node_whose_clock_is_behind_is_online_with_the_age_the_hub_measured() -> None:
    clocks = Clocks()
    fleet = hub(clocks)
    fleet.handle("wasihost/a/availability", b"online")
    fleet.handle("wasihost/a/dht22/state", state(5_000, 21.0))  # booted in 1970, no NTP yet
    clocks.advance(10)
    a = node(fleet, "a")
    assert a["online"] and a["plugins"]["dht22"]["age_seconds"] == 10.0  # not 53 years
    assert a["last_seen_age_seconds"] == 10.0
    assert a["last_seen_ms"] == int((clocks.wall - 10) * 1000)
    clocks.advance(55)
    assert not node(fleet, "a")["online"]  # silent for 65 s > 60 s


@pytest.mark.parametrize("step_s", [YEAR_S, -YEAR_S, -3600.0], ids=["forward", "back", "hour"])
def test_hub_clock_steps_neither_keep_a_silent_node_online_nor_drop_a_live_one(
    step_s: float,
) -> None:
    clocks = Clocks()
    fleet = hub(clocks)
    for name in ("live", "silent"):
        fleet.handle(f"wasihost/{name}/availability", b"online")
        fleet.handle(f"wasihost/{name}/dht22/state", state(1_700_000_000_000, 21.0))
    clocks.wall += step_s  # NTP steps the hub's wall clock
    clocks.advance(30)
    fleet.handle("wasihost/live/dht22/state", state(1_700_000_030_000, 22.0))
    live, silent = node(fleet, "live"), node(fleet, "silent")
    assert live["online"] and silent["online"]  # heard 0 s and 30 s ago
    assert silent["last_seen_age_seconds"] == 30.0
    assert silent["last_seen_ms"] == int((clocks.wall - 30) * 1000)  # on today's wall clock
    clocks.advance(40)
    assert node(fleet, "live")["online"] and not node(fleet, "silent")["online"]
    assert node(fleet, "silent")["plugins"]["dht22"]["age_seconds"] == 70.0


def test_one_injected_clock_serves_both_and_a_step_back_cannot_keep_a_node_online() -> None:
    """Given only a wall clock (no monotonic one), liveness uses it: a step back
    shows a node offline until it speaks again, never online for the stepped time."""
    clock = Clock()
    fleet = Fleet(offline_after_seconds=60, clock=clock)
    fleet.handle("wasihost/a/availability", b"online")
    fleet.handle("wasihost/a/dht22/state", state(1000, 21.0))
    clock.now -= YEAR_S
    a = node(fleet, "a")
    assert not a["online"] and a["last_seen_age_seconds"] == 0.0
    fleet.handle("wasihost/a/dht22/state", state(3000, 22.0))
    assert node(fleet, "a")["online"]


def test_retained_states_never_replace_one_heard_live() -> None:
    """Nodes publish states without the retain flag: a retained one is a left-over
    of some other publisher, shown only while nothing live is known."""
    clocks = Clocks()
    fleet = hub(clocks)
    fleet.handle("wasihost/a/dht22/state", state(1_699_999_400_000, 19.0), retained=True)
    held = node(fleet, "a")["plugins"]["dht22"]
    assert held["measurements"][0]["value"] == 19.0
    assert held["age_seconds"] == 600.0  # by the stamps: its arrival says nothing
    fleet.handle("wasihost/a/dht22/state", state(5_000, 21.0))  # live, clock behind
    fleet.handle("wasihost/a/dht22/state", state(1_700_000_000_000, 99.0), retained=True)
    assert node(fleet, "a")["plugins"]["dht22"]["measurements"][0]["value"] == 21.0


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
