"""Hostile messages for the fleet hub: whoever the broker lets write ``wasihost/#``
(a compromised node, under the documented ACL) publishes states, versions and
rollout reports, retained or not. The hub must neither stop its cycle on them
(``Fleet.to_json`` runs in ``Host.after_cycle``; a retained message comes back
after every restart) nor publish invalid JSON, nor keep unbounded data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wasihost.config import parse_config
from wasihost.deploy import protocol
from wasihost.host import Host
from wasihost.telemetry import fleet as fleet_module
from wasihost.telemetry.fleet import Fleet

HUGE = int("9" * 400)  # a valid JSON integer; / 1000 raises OverflowError
HASH = "sha256:" + "a" * 64


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 5_000.0


def hub() -> Fleet:
    clocks = Clocks()
    return Fleet(clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)


def valid_json(fleet: Fleet) -> dict[str, Any]:
    """The hub's document, as the dashboard's stream sends it: strict JSON."""
    doc = fleet.to_json()
    json.dumps(doc, allow_nan=False)
    return doc


def plugin(fleet: Fleet, node: str, name: str) -> dict[str, Any]:
    doc = fleet.to_json()
    found: dict[str, Any] = next(n for n in doc["nodes"] if n["node"] == node)["plugins"][name]
    return found


def report(**fields: Any) -> bytes:
    doc = {"plugin": "p", "state": "live", "content_hash": HASH, "version": "1"}
    return json.dumps({**doc, **fields}).encode()


# --- Stamps and counters beyond any real value ----------------------------------------


@pytest.mark.parametrize("retained", [True, False], ids=["retained", "live"])
def test_a_state_with_a_huge_stamp_is_not_taken(retained: bool) -> None:
    fleet = hub()
    payload = json.dumps({"timestamp_ms": HUGE, "t": 1.0}).encode()
    fleet.handle("wasihost/a/p/state", payload, retained=retained)
    assert all(not n["plugins"] for n in valid_json(fleet)["nodes"])
    assert fleet.ignored == 1


@pytest.mark.parametrize("retained", [True, False], ids=["retained", "live"])
@pytest.mark.parametrize("field", ["timestamp_ms", "since_ms", "polls_ok"])
def test_a_reports_huge_stamps_and_counters_read_as_unknown(field: str, retained: bool) -> None:
    fleet = hub()
    fleet.handle("wasihost/a/rollout/p", report(**{field: HUGE}), retained=retained)
    rollout = plugin(fleet, "a", "p")["rollout"]
    assert rollout["state"] == "live" and rollout[field] is None
    valid_json(fleet)
    fleet.handle("wasihost/a/rollout/p", report(**{field: -HUGE}), retained=retained)
    assert plugin(fleet, "a", "p")["rollout"][field] is None


def test_huge_integers_as_values_or_status_are_not_kept() -> None:
    fleet = hub()
    status = {"count": HUGE, "ok": 3}
    payload = json.dumps({"timestamp_ms": 1, "t": HUGE, "u": -HUGE, "status": status})
    fleet.handle("wasihost/a/p/state", payload.encode())
    state = plugin(fleet, "a", "p")
    assert state["measurements"] == [
        {"name": "t", "value": None, "unit": ""},
        {"name": "u", "value": None, "unit": ""},
    ]
    assert state["status"] == {"ok": 3}
    valid_json(fleet)


def test_a_retained_huge_stamp_does_not_stop_the_hubs_cycle(tmp_path: Path) -> None:
    """The host-level path: Host.snapshot (what after_cycle publishes) with the
    retained messages the broker replays at every subscription."""
    config = parse_config(
        {
            "node": {"id": "hub"},
            "fleet": {"role": "hub"},
            "mqtt": {"enabled": True, "outbox_path": str(tmp_path / "outbox.sqlite3")},
            "web": {"enabled": False},
            "history": {"enabled": False},
            "state": {"dir": str(tmp_path / "state")},
            "plugins": {},
        },
        tmp_path / "host.toml",
    )
    host = Host(config)
    host._on_message("wasihost/a/rollout/p", report(timestamp_ms=HUGE), True)
    host._on_message("wasihost/b/p/state", json.dumps({"timestamp_ms": HUGE}).encode(), True)
    json.dumps(host.snapshot(), allow_nan=False)


# --- NaN and Infinity -----------------------------------------------------------------


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
@pytest.mark.parametrize("where", ["value", "status"])
def test_a_state_with_a_number_json_cannot_carry_keeps_the_hubs_json_valid(
    number: bytes, where: str
) -> None:
    fleet = hub()
    inner = b'{"alarm": ' + number + b"}" if where == "status" else number
    key = b"status" if where == "status" else b"t"
    payload = b'{"timestamp_ms": 1000, "' + key + b'": ' + inner + b"}"
    fleet.handle("wasihost/a/p/state", payload)
    valid_json(fleet)


def test_non_finite_status_values_are_dropped_even_if_the_parser_let_them_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """protocol.load_json refuses them; the state's own reading does not rely on it."""
    monkeypatch.setattr(protocol, "load_json", json.loads)
    fleet = hub()
    status = {"nan": float("nan"), "inf": float("inf"), "ok": 1.5, "on": True}
    fleet.handle("wasihost/a/p/state", json.dumps({"timestamp_ms": 1, "status": status}).encode())
    assert plugin(fleet, "a", "p")["status"] == {"ok": 1.5, "on": True}
    valid_json(fleet)


# --- What one state may hold ----------------------------------------------------------


def test_a_state_holds_a_bounded_number_of_measurements_and_status_entries() -> None:
    """100 retained 64 KiB states cost the hub +52 MiB and 0.6 s of to_json per cycle
    while a state's measurements, units and status were not capped."""
    fleet = hub()
    doc: dict[str, Any] = {"timestamp_ms": 1}
    doc.update({f"m{i}": float(i) for i in range(1000)})
    doc["units"] = {f"u{i}": "°C" for i in range(1000)} | {"m0": "°C"}
    doc["status"] = {
        "text": "x" * 10_000,
        "k" * (fleet_module.MAX_NAME + 1): 1,
        **{f"s{i}": i for i in range(1000)},
    }
    payload = json.dumps(doc).encode()
    assert len(payload) <= fleet_module.MAX_PAYLOAD_BYTES
    fleet.handle("wasihost/a/p/state", payload)
    state = plugin(fleet, "a", "p")
    assert len(state["measurements"]) == fleet_module.MAX_MEASUREMENTS
    assert state["measurements"][0] == {"name": "m0", "value": 0.0, "unit": "°C"}
    assert len(state["status"]) == fleet_module.MAX_STATUS
    text = state["status"]["text"]
    assert len(text) == fleet_module.MAX_STATUS_TEXT and text.endswith("…")
    assert "k" * (fleet_module.MAX_NAME + 1) not in state["status"]
    held = fleet._nodes["a"].plugins["p"]
    assert set(held.units) <= set(held.values)  # units only for the measurements kept
    valid_json(fleet)


# --- Which topics make a node ---------------------------------------------------------


def test_no_node_is_made_up_from_a_deliverys_topic_or_a_payload_that_does_not_parse() -> None:
    """wasihost/+/+/state matches wasihost/deploy/all/state, the retained delivery of a
    plugin named "state": "deploy" is a reserved node id (config.RESERVED_NODE_IDS),
    never a node. A message that is not what its topic says makes no node either."""
    fleet = hub()
    looks_like_a_state = json.dumps({"timestamp_ms": 1, "t": 1.0}).encode()
    fleet.handle("wasihost/deploy/all/state", looks_like_a_state, retained=True)
    fleet.handle("wasihost/deploy/availability", b"online")
    fleet.handle("wasihost/deploy/versions", json.dumps({"labels": [], "plugins": {}}).encode())
    fleet.handle("wasihost/deploy/rollout/p", report())
    for name in ("ghost", "ghost2", "ghost3"):
        fleet.handle(f"wasihost/{name}/p/state", b"not json")
    fleet.handle("wasihost/ghost4/p/state", json.dumps({"timestamp_ms": HUGE}).encode())
    fleet.handle("wasihost/ghost5/rollout/p", report(state="exploded"))
    assert valid_json(fleet)["nodes"] == []
    assert fleet.ignored == 9


# --- Room for real nodes --------------------------------------------------------------


def state_payload(t_ms: int = 1000) -> bytes:
    return json.dumps({"timestamp_ms": t_ms, "t": 21.5}).encode()


@pytest.mark.parametrize(
    ("payload", "retained"),
    [(b"junk", False), (b"offline", False), (b"online", True)],
    ids=["junk", "offline", "retained-online"],
)
def test_junk_availability_topics_do_not_keep_a_real_node_off_the_hub(
    payload: bytes, retained: bool
) -> None:
    """Anyone who may write wasihost/<x>/availability made a node of every <x>, kept
    for ever: 1,000 of them filled the table and the next real node was never shown.
    A node never seen live (no live "online", no state) now makes room, oldest first."""
    fleet = hub()
    for i in range(fleet_module.MAX_NODES):
        fleet.handle(f"wasihost/junk{i}/availability", payload, retained=retained)
    fleet.handle("wasihost/attic/dht22/state", state_payload())
    nodes = {n["node"]: n for n in valid_json(fleet)["nodes"]}
    assert len(nodes) == fleet_module.MAX_NODES
    assert nodes["attic"]["online"] and nodes["attic"]["plugins"]["dht22"]["timestamp_ms"] == 1000
    assert "junk0" not in nodes and "junk1" in nodes  # the oldest went


def test_more_junk_never_evicts_a_node_seen_live() -> None:
    fleet = hub()
    fleet.handle("wasihost/attic/availability", b"online")
    fleet.handle("wasihost/shed/p/state", state_payload())
    for i in range(2 * fleet_module.MAX_NODES):
        fleet.handle(f"wasihost/junk{i}/availability", b"junk")
    names = {n["node"] for n in valid_json(fleet)["nodes"]}
    assert {"attic", "shed"} <= names and len(names) == fleet_module.MAX_NODES


def test_a_full_table_of_live_nodes_turns_a_new_one_away() -> None:
    fleet = hub()
    for i in range(fleet_module.MAX_NODES):
        fleet.handle(f"wasihost/n{i}/availability", b"online")
    fleet.handle("wasihost/late/p/state", state_payload())
    names = {n["node"] for n in valid_json(fleet)["nodes"]}
    assert "late" not in names and len(names) == fleet_module.MAX_NODES
    assert fleet.ignored == 1


class SteppedClocks:
    def __init__(self) -> None:
        self.wall = 1_700_000_000.0
        self.mono = 5_000.0


def test_a_node_offline_and_silent_for_longer_than_the_bound_is_forgotten() -> None:
    """A node that left for good (or a junk one) stays listed FORGET_AFTER_SECONDS after
    it was last heard, on the monotonic clock (the wall clock stepping a year changes
    nothing), then goes, and comes back when it speaks again."""
    clocks = SteppedClocks()
    fleet = Fleet(clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    fleet.handle("wasihost/gone/p/state", state_payload())
    fleet.handle("wasihost/gone/availability", b"offline")
    fleet.handle("wasihost/kept/availability", b"online", retained=True)
    clocks.wall += 365 * 86_400
    clocks.mono += fleet_module.FORGET_AFTER_SECONDS - 1
    assert {n["node"] for n in valid_json(fleet)["nodes"]} == {"gone", "kept"}
    fleet.handle("wasihost/kept/p/state", state_payload())  # speaks, live
    clocks.mono += 2
    assert {n["node"] for n in valid_json(fleet)["nodes"]} == {"kept"}
    fleet.handle("wasihost/gone/availability", b"online")
    assert {n["node"] for n in valid_json(fleet)["nodes"]} == {"gone", "kept"}


def test_a_node_silent_but_online_by_its_availability_is_forgotten_too() -> None:
    """Silence decides, as for "online": a node whose last will never reached the hub
    (it shows offline after offline_after_seconds) is still forgotten after the bound."""
    clocks = SteppedClocks()
    fleet = Fleet(clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    fleet.handle("wasihost/a/availability", b"online")
    clocks.mono += fleet_module.FORGET_AFTER_SECONDS + 1
    assert valid_json(fleet)["nodes"] == []
