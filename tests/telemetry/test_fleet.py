"""The hub's fleet view, driven with MQTT messages and a fake clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wasihost.deploy.protocol import MAX_LABELS
from wasihost.model import Measurement, Reading
from wasihost.telemetry.discovery import state_payload
from wasihost.telemetry.fleet import (
    MAX_NODES,
    MAX_PLUGINS_PER_NODE,
    MAX_REASON,
    MAX_ROLLOUTS,
    Fleet,
)


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
    assert fleet.subscriptions == (
        "wasihost/+/availability",
        "wasihost/+/+/state",
        "wasihost/+/versions",
        "wasihost/+/rollout/+",
    )
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
    # Unknown: its arrival says nothing about when it was sent, and the node's stamp
    # is never compared with the hub's clock.
    assert held["age_seconds"] is None and held["timestamp_ms"] == 1_699_999_400_000
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


# --- Versions and rollouts (issue 19) ---------------------------------------------------
# Nodes publish, retained, wasihost/<node>/versions (their labels and what each plugin
# runs) and wasihost/<node>/rollout/<plugin> (deploy.report.Rollout.to_json).

HASH_1 = "sha256:" + "1" * 64
HASH_2 = "sha256:" + "2" * 64


def versions(labels: Any, plugins: Any) -> bytes:
    return json.dumps({"labels": labels, "plugins": plugins}).encode()


def report(plugin: str, state: str, content_hash: str | None = HASH_2, **fields: Any) -> bytes:
    doc: dict[str, Any] = {
        "plugin": plugin,
        "version": "1.2.0",
        "content_hash": content_hash,
        "state": state,
        "reason": None,
        "previous": {"version": None, "content_hash": HASH_1},
        "polls_ok": 0,
        "since_ms": 1_700_000_000_000,
        "timestamp_ms": 1_700_000_004_000,
        "source": "label",
    }
    doc.update(fields)
    return json.dumps(doc).encode()


def test_versions_give_labels_and_each_plugins_version() -> None:
    clocks = Clocks()
    fleet = hub(clocks)
    fleet.handle("wasihost/a/availability", b"online")
    fleet.handle("wasihost/a/dht22/state", state(1000, 21.0))
    fleet.handle(
        "wasihost/a/versions",
        versions(
            ["greenhouse", "north"],
            {
                "dht22": {"version": "1.2.0", "content_hash": HASH_2},
                "bme680": {"version": None, "content_hash": HASH_1},
            },
        ),
    )
    a = node(fleet, "a")
    assert a["labels"] == ["greenhouse", "north"]
    dht22 = a["plugins"]["dht22"]
    assert (dht22["version"], dht22["content_hash"], dht22["rollout"]) == ("1.2.0", HASH_2, None)
    assert dht22["measurements"][0]["value"] == 21.0  # the state is kept alongside
    # A plugin the node runs but has not published a state for yet is listed too.
    bme680 = a["plugins"]["bme680"]
    assert (bme680["version"], bme680["content_hash"]) == (None, HASH_1)
    assert (bme680["timestamp_ms"], bme680["age_seconds"], bme680["measurements"]) == (
        None,
        None,
        [],
    )
    # A new versions document is the node's whole list: a plugin it no longer runs goes.
    fleet.handle("wasihost/a/versions", versions([], {"dht22": {"version": "1.3.0"}}))
    a = node(fleet, "a")
    assert a["labels"] == [] and "bme680" not in a["plugins"]
    assert (a["plugins"]["dht22"]["version"], a["plugins"]["dht22"]["content_hash"]) == (
        "1.3.0",
        None,
    )


def test_a_node_heard_only_through_retained_versions_is_not_online() -> None:
    """Retained versions and reports are the node's last word (taken), not a sign of life."""
    fleet = hub(Clocks())
    fleet.handle("wasihost/a/versions", versions(["x"], {"p": {"version": "1"}}), retained=True)
    fleet.handle("wasihost/a/rollout/p", report("p", "healthy"), retained=True)
    a = node(fleet, "a")
    assert not a["online"] and a["last_seen_ms"] is None
    assert a["labels"] == ["x"] and a["plugins"]["p"]["rollout"]["state"] == "healthy"
    fleet.handle("wasihost/a/rollout/p", report("p", "live"))  # live: a sign of life
    assert node(fleet, "a")["online"]


def test_a_rollout_report_is_shown_with_its_age_on_the_hubs_clock() -> None:
    clocks = Clocks()
    fleet = hub(clocks)
    fleet.handle("wasihost/a/availability", b"online")
    # The node's clock is in 1970 (no NTP yet): its stamps are shown, never used.
    fleet.handle(
        "wasihost/a/rollout/dht22",
        report("dht22", "live", polls_ok=3, since_ms=5_000, timestamp_ms=9_000),
    )
    clocks.advance(12)
    rollout = node(fleet, "a")["plugins"]["dht22"]["rollout"]
    assert rollout == {
        "state": "live",
        "reason": None,
        "version": "1.2.0",
        "content_hash": HASH_2,
        "source": "label",
        "polls_ok": 3,
        "since_ms": 5_000,
        "timestamp_ms": 9_000,
        "age_seconds": 12.0,
    }
    fleet.handle(
        "wasihost/a/rollout/dht22",
        report("dht22", "rolled-back", reason="trapped: unreachable", timestamp_ms=1),
    )
    rollout = node(fleet, "a")["plugins"]["dht22"]["rollout"]
    # The last to arrive wins, whatever its stamp says (the node's clock stepped back).
    assert (rollout["state"], rollout["reason"], rollout["age_seconds"]) == (
        "rolled-back",
        "trapped: unreachable",
        0.0,
    )


@pytest.mark.parametrize("stamp_ms", [1_699_999_400_000, 5_000, 1_800_000_000_000])
def test_a_retained_messages_age_is_unknown_whatever_its_stamp(stamp_ms: int) -> None:
    """A retained state or report says nothing about the present: the hub's wall clock
    minus the node's stamp (behind, in 1970, or ahead) would be a guess shown as an age."""
    clocks = Clocks()
    fleet = hub(clocks)
    fleet.handle("wasihost/a/dht22/state", state(stamp_ms, 19.0), retained=True)
    fleet.handle("wasihost/a/rollout/dht22", report("dht22", "healthy", timestamp_ms=stamp_ms),
                 retained=True)  # fmt: skip
    clocks.advance(30)
    dht22 = node(fleet, "a")["plugins"]["dht22"]
    assert dht22["age_seconds"] is None and dht22["timestamp_ms"] == stamp_ms
    assert dht22["rollout"]["age_seconds"] is None
    assert dht22["rollout"]["timestamp_ms"] == stamp_ms


def test_a_rollout_topic_of_a_plugin_named_rollout_is_still_its_state() -> None:
    """wasihost/<node>/rollout/state is both a report on plugin "state" and the state of
    plugin "rollout": the payload tells them apart."""
    fleet = hub(Clocks())
    fleet.handle("wasihost/a/rollout/state", state(1000, 21.0))
    fleet.handle("wasihost/a/rollout/state", report("state", "healthy"))
    plugins = node(fleet, "a")["plugins"]
    assert plugins["rollout"]["measurements"][0]["value"] == 21.0
    assert plugins["state"]["rollout"]["state"] == "healthy"
    assert fleet.ignored == 0


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        json.dumps({"labels": "x", "plugins": {}}).encode()[:-3],
        report("p", "exploded"),  # not a state of the protocol
        report("p", "healthy").replace(b'"plugin": "p"', b'"plugin": "q"'),  # another plugin
        json.dumps({"plugin": "p"}).encode(),
        b"x" * 70_000,
        b"[" * 60_000,  # json raises RecursionError, not ValueError
        b"\xff\xfe",
    ],
)
def test_malformed_rollout_reports_are_ignored(payload: bytes) -> None:
    fleet = hub(Clocks())
    fleet.handle("wasihost/a/rollout/p", payload)
    assert fleet.ignored == 1
    assert fleet.to_json()["nodes"] == []  # nothing valid: no node made up from it


def test_hostile_rollout_and_versions_fields_are_bounded_and_typed() -> None:
    fleet = hub(Clocks())
    fleet.handle(
        "wasihost/a/rollout/p",
        report(
            "p",
            "refused",
            content_hash="<script>" * 100,
            version=["1"],
            reason="r" * 10_000,
            source="everyone",
            polls_ok=-4,
            since_ms=True,
            timestamp_ms=1.5,
        ),
    )
    rollout = node(fleet, "a")["plugins"]["p"]["rollout"]
    assert rollout["state"] == "refused"
    assert rollout["content_hash"] is None and rollout["version"] is None
    assert rollout["source"] is None and rollout["polls_ok"] is None
    assert rollout["since_ms"] is None and rollout["timestamp_ms"] is None
    assert len(rollout["reason"]) == MAX_REASON and rollout["reason"].endswith("…")

    fleet.handle(
        "wasihost/a/versions",
        versions(
            ["ok", 3, None, "x" * 100, *[f"l{i}" for i in range(100)]],
            {
                "p": {"version": "v" * 1000, "content_hash": "sha256:zz"},
                "q": "1.0",
                "r": None,
                "s" * 100: {"version": "1"},
                **{f"n{i}": {"version": "1"} for i in range(200)},
            },
        ),
    )
    a = node(fleet, "a")
    assert a["labels"][0] == "ok" and len(a["labels"]) == MAX_LABELS
    assert all(isinstance(label, str) and len(label) <= 64 for label in a["labels"])
    p = a["plugins"]["p"]
    assert (p["version"], p["content_hash"]) == (None, None)
    assert (a["plugins"]["q"]["version"], a["plugins"]["r"]["version"]) == (None, None)
    assert "s" * 100 not in a["plugins"]
    assert len(a["plugins"]) == MAX_PLUGINS_PER_NODE  # states, versions and reports together


def test_a_versions_document_of_another_shape_is_ignored() -> None:
    fleet = hub(Clocks())
    for payload in (
        json.dumps({"dht22": {"version": "1"}}).encode(),  # the shape before issue 19
        json.dumps({"labels": [], "plugins": []}).encode(),
        b"null",
    ):
        fleet.handle("wasihost/a/versions", payload)
    assert fleet.ignored == 3 and fleet.to_json()["nodes"] == []


def test_rollouts_summary_counts_nodes_in_each_state_and_offline_apart() -> None:
    """3/5 healthy, 1 rolled back, 1 offline: a node offline counts as offline whatever
    it said last (its own entry keeps that), so the counts add up to the nodes."""
    clocks = Clocks()
    fleet = hub(clocks, offline_after_seconds=60)
    for name in ("e",):  # offline: silent for longer than the timeout
        fleet.handle(f"wasihost/{name}/availability", b"online")
        fleet.handle(f"wasihost/{name}/rollout/dht22", report("dht22", "live"))
    clocks.advance(120)
    for name, said in (("a", "healthy"), ("b", "healthy"), ("c", "healthy"), ("d", "rolled-back")):
        fleet.handle(f"wasihost/{name}/availability", b"online")
        fleet.handle(f"wasihost/{name}/rollout/dht22", report("dht22", said))
    # Another version of the same plugin, and another plugin: rollouts of their own.
    fleet.handle("wasihost/f/availability", b"online")
    fleet.handle("wasihost/f/rollout/dht22", report("dht22", "healthy", HASH_1, version="1.1.0"))
    fleet.handle("wasihost/f/rollout/bme680", report("bme680", "needs-grants", None, version=None))

    doc = fleet.to_json()
    assert doc["rollouts"] == [
        {
            "plugin": "bme680",
            "content_hash": None,
            "version": None,
            "nodes": 1,
            "states": {"needs-grants": 1},
            "offline": 0,
        },
        {
            "plugin": "dht22",
            "content_hash": HASH_1,
            "version": "1.1.0",
            "nodes": 1,
            "states": {"healthy": 1},
            "offline": 0,
        },
        {
            "plugin": "dht22",
            "content_hash": HASH_2,
            "version": "1.2.0",
            "nodes": 5,
            "states": {"healthy": 3, "rolled-back": 1},
            "offline": 1,
        },
    ]
    assert node(fleet, "e")["plugins"]["dht22"]["rollout"]["state"] == "live"
    # The last word of the offline node decides nothing more once it is back.
    fleet.handle("wasihost/e/rollout/dht22", report("dht22", "healthy"))
    summary = fleet.to_json()["rollouts"][2]
    assert (summary["states"], summary["offline"]) == ({"healthy": 4, "rolled-back": 1}, 0)


def test_a_rollouts_version_is_the_one_most_of_its_nodes_report() -> None:
    """Nodes on the same content report the same version; a node that lies is outvoted."""
    fleet = hub(Clocks())
    for name, version in (("a", "1.2.0"), ("b", "1.2.0"), ("c", "<b>9</b>")):
        fleet.handle(f"wasihost/{name}/rollout/p", report("p", "healthy", version=version))
    assert fleet.to_json()["rollouts"][0]["version"] == "1.2.0"


def test_the_rollouts_summary_is_bounded() -> None:
    fleet = hub(Clocks())
    for i in range(MAX_ROLLOUTS + 5):
        content_hash = f"sha256:{i:064x}"
        fleet.handle(f"wasihost/n{i}/rollout/p", report("p", "live", content_hash))
    fleet.handle("wasihost/big/rollout/p", report("p", "live", "sha256:" + "f" * 64))
    fleet.handle("wasihost/big2/rollout/p", report("p", "live", "sha256:" + "f" * 64))
    doc = fleet.to_json()
    assert len(doc["rollouts"]) == MAX_ROLLOUTS and doc["rollouts_omitted"] == 6
    # The largest are kept.
    assert any(r["nodes"] == 2 for r in doc["rollouts"])


def test_cleared_versions_and_reports_are_forgotten() -> None:
    """An empty retained payload clears a topic (mosquitto_pub -r -n): what it said goes."""
    fleet = hub(Clocks())
    fleet.handle("wasihost/a/versions", versions(["g"], {"p": {"version": "1"}}))
    fleet.handle("wasihost/a/rollout/p", report("p", "healthy"))
    fleet.handle("wasihost/a/rollout/p", b"")
    fleet.handle("wasihost/a/versions", b"", retained=True)
    fleet.handle("wasihost/nobody/versions", b"")
    a = node(fleet, "a")
    assert a["labels"] == [] and a["plugins"] == {} and fleet.to_json()["rollouts"] == []
    assert [n["node"] for n in fleet.to_json()["nodes"]] == ["a"] and fleet.ignored == 0


def test_a_state_nested_too_deep_for_json_is_ignored() -> None:
    fleet = hub(Clocks())
    fleet.handle("wasihost/a/dht22/state", b"[" * 60_000)
    fleet.handle("wasihost/a/versions", b"{" * 60_000)
    assert fleet.ignored == 2


def test_what_a_deploy_node_publishes_is_what_the_hub_reads() -> None:
    """The payloads from the node's own code (deploy.protocol, deploy.report.Rollout), so a
    change of either side's shape fails here rather than on a hub in the field."""
    from wasihost.deploy import protocol
    from wasihost.deploy.report import Rollout

    fleet = hub(Clocks())
    running = {"dht22": {"version": "1.2.0", "content_hash": HASH_2}}
    fleet.handle(protocol.versions_topic("a"), protocol.versions_payload(["greenhouse"], running))
    rollout = Rollout(
        plugin="dht22",
        version="1.2.0",
        content_hash=HASH_2,
        state="rolled-back",
        reason="trapped",
        previous={"version": None, "content_hash": HASH_1},
        polls_ok=2,
        since_ms=1,
        timestamp_ms=2,
        source="all",
    )
    fleet.handle(
        protocol.report_topic("a", "dht22"), json.dumps(rollout.to_json(), sort_keys=True).encode()
    )
    a = node(fleet, "a")
    assert a["labels"] == ["greenhouse"] and a["plugins"]["dht22"]["version"] == "1.2.0"
    assert a["plugins"]["dht22"]["rollout"] == {
        "state": "rolled-back",
        "reason": "trapped",
        "version": "1.2.0",
        "content_hash": HASH_2,
        "source": "all",
        "polls_ok": 2,
        "since_ms": 1,
        "timestamp_ms": 2,
        "age_seconds": 0.0,
    }
    assert fleet.ignored == 0


def test_a_report_on_a_version_the_node_no_longer_runs_is_not_counted_as_in_force() -> None:
    """Nodes never clear their last report: one that runs another version now (set
    back by hand, or the plugin left its config) is not healthy on the old one.
    A rolled-back report names the version it left, and still counts."""
    fleet = hub(Clocks())
    for node in ("a", "b", "c"):
        fleet.handle(f"wasihost/{node}/availability", b"online")
    fleet.handle("wasihost/a/rollout/dht22", report("dht22", "healthy"), retained=True)
    fleet.handle("wasihost/a/versions", versions([], {"dht22": {"content_hash": HASH_1}}))
    fleet.handle("wasihost/b/rollout/dht22", report("dht22", "healthy"), retained=True)
    fleet.handle("wasihost/b/versions", versions([], {"sht31": {}}))  # dht22 gone from b
    fleet.handle("wasihost/c/rollout/dht22", report("dht22", "rolled-back"), retained=True)
    fleet.handle("wasihost/c/versions", versions([], {"dht22": {"content_hash": HASH_1}}))
    fleet.handle("wasihost/d/availability", b"online")
    fleet.handle("wasihost/d/rollout/dht22", report("dht22", "staging"))  # on its way in
    fleet.handle("wasihost/d/versions", versions([], {"dht22": {"content_hash": HASH_1}}))
    (rollout,) = fleet.to_json()["rollouts"]
    assert rollout["content_hash"] == HASH_2
    assert rollout["nodes"] == 2 and rollout["states"] == {"rolled-back": 1, "staging": 1}
