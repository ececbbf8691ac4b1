"""The deployer's rollout state machine (``wasihost.deploy.deployer.Rollout``),
fed scripted availability and reports and a fake clock: no broker."""

from __future__ import annotations

import json

from wasihost.deploy.deployer import (
    EXIT_HEALTHY,
    EXIT_STOPPED,
    EXIT_TIMEOUT,
    Publish,
    Report,
    Rollout,
    Target,
    parse_report,
)
from wasihost.deploy.protocol import all_topic, label_topic, node_topic

HASH = "sha256:" + "ab" * 32
OLD = "sha256:" + "cd" * 32
BUNDLE = b"bundle-bytes"


def rollout(
    target: Target,
    canary: Target | None = None,
    timeout: float = 60.0,
    labels: dict[str, tuple[str, ...]] | None = None,
    unknown: tuple[str, ...] = (),
    plugins: dict[str, tuple[str, ...]] | None = None,
    **nodes: bool,
) -> tuple[Rollout, list[str]]:
    """A rollout that has read the broker: each node's availability and, unless
    it is ``unknown`` (no versions message), its versions message with ``labels``
    and ``plugins`` (by default it runs sht31, the plugin deployed)."""
    lines: list[str] = []
    r = Rollout("sht31", "1.1.0", HASH, BUNDLE, target, canary, timeout, lines.append)
    r.settle_seconds = 5.0
    for node, online in nodes.items():
        r.availability(node, online, 0.0)
        if node not in unknown:
            runs = (plugins or {}).get(node, ("sht31",))
            r.versions(node, (labels or {}).get(node, ()), 0.0, plugins=runs)
    return r, lines


def report(node: str, state: str, content: str = HASH, reason: str = "") -> Report:
    return Report(node, "sht31", "1.1.0", content, state, reason, polls_ok=3, source="node")


def test_a_healthy_canary_is_promoted_to_the_targets_and_then_cleared() -> None:
    r, lines = rollout(Target("all"), Target("node", ("pi1",)), pi1=True, pi2=True, pi3=False)
    assert r.start(0.0) == [Publish(node_topic("pi1", "sht31"), BUNDLE)]
    assert r.stage == "canary"
    assert r.report(report("pi1", "received"), 1.0) == []
    assert r.report(report("pi1", "live"), 2.0) == []
    assert r.report(report("pi2", "healthy", OLD), 2.0) == []  # another version: not counted
    # Promoted: the all delivery, and the canary's own one cleared at once (it
    # would outrank the next all delivery; the all one carries the same bytes).
    assert r.report(report("pi1", "healthy"), 3.0) == [
        Publish(all_topic("sht31"), BUNDLE),
        Publish(node_topic("pi1", "sht31"), b""),
    ]
    assert r.stage == "target"
    assert r.tick(4.0) == []  # pi2 is online and has not reported this version
    # pi3 is offline: it does not hold the rollout up; the retained delivery waits for it.
    assert r.report(report("pi2", "healthy"), 5.0) == []
    assert r.outcome == "healthy" and r.exit_code == EXIT_HEALTHY
    assert (
        "  pi1: healthy (3 polls)" in lines and "canaries healthy: promoting to all nodes" in lines
    )
    assert r.summary()[-1] == "summary: 2 healthy (pi1, pi2); 1 offline (pi3)"


def test_a_rolled_back_canary_stops_the_rollout_and_clears_its_delivery() -> None:
    r, _ = rollout(Target("all"), Target("node", ("pi1", "pi2")), pi1=True, pi2=True, pi3=True)
    assert len(r.start(0.0)) == 2
    r.report(report("pi1", "healthy"), 1.0)
    out = r.report(report("pi2", "rolled-back", reason="trapped in poll"), 2.0)
    assert sorted(p.topic for p in out) == [node_topic("pi1", "sht31"), node_topic("pi2", "sht31")]
    assert all(p.payload == b"" for p in out)
    assert r.outcome == "stopped" and r.exit_code == EXIT_STOPPED
    assert "trapped in poll" in r.why
    assert all(p.topic != all_topic("sht31") for p in out)  # never promoted
    assert r.tick(100.0) == []  # done is done
    summary = r.summary()[-1]
    assert "1 healthy (pi1)" in summary and "1 rolled back (pi2)" in summary


def test_a_refused_or_held_canary_stops_too() -> None:
    for state in ("refused", "needs-grants", "failed"):
        r, _ = rollout(Target("all"), Target("node", ("pi1",)), pi1=True)
        r.start(0.0)
        out = r.report(report("pi1", state, reason="why"), 1.0)
        assert out == [Publish(node_topic("pi1", "sht31"), b"")], state
        assert r.exit_code == EXIT_STOPPED


def test_a_canary_that_never_reports_times_out_and_is_cleared() -> None:
    r, _ = rollout(Target("all"), Target("node", ("pi1",)), timeout=30.0, pi1=True)
    r.start(0.0)
    r.report(report("pi1", "staging"), 1.0)
    assert r.tick(29.0) == []
    assert r.tick(30.0) == [Publish(node_topic("pi1", "sht31"), b"")]
    assert r.outcome == "timeout" and r.exit_code == EXIT_TIMEOUT
    assert r.summary()[0].startswith("timed out after 30 s")


def test_without_canaries_the_targets_are_followed_to_the_end() -> None:
    r, _ = rollout(Target("node", ("pi1", "pi2", "pi9")), pi1=True, pi2=True, pi9=False)
    out = r.start(0.0)
    assert [p.topic for p in out] == [node_topic(n, "sht31") for n in ("pi1", "pi2", "pi9")]
    r.report(report("pi1", "healthy"), 1.0)
    assert r.stage == "target"
    r.report(report("pi2", "healthy"), 2.0)
    assert r.exit_code == EXIT_HEALTHY
    assert r.summary()[-1] == "summary: 2 healthy (pi1, pi2); 1 offline (pi9)"


def test_a_target_that_rolls_back_has_its_own_delivery_cleared() -> None:
    r, _ = rollout(Target("node", ("pi1", "pi2")), pi1=True, pi2=True)
    r.start(0.0)
    assert r.report(report("pi1", "rolled-back"), 1.0) == [Publish(node_topic("pi1", "sht31"), b"")]
    assert r.stage == "target"  # pi2 is still followed
    assert r.report(report("pi2", "healthy"), 2.0) == []
    assert r.outcome == "stopped" and r.exit_code == EXIT_STOPPED


def test_a_shared_delivery_is_cleared_when_a_node_rolls_back_not_when_one_refuses() -> None:
    r, _ = rollout(Target("all"), pi1=True, pi2=True)
    r.start(0.0)
    assert r.report(report("pi1", "needs-grants", reason="I2C 0x45"), 1.0) == []
    assert r.report(report("pi2", "rolled-back"), 2.0) == [Publish(all_topic("sht31"), b"")]
    assert r.exit_code == EXIT_STOPPED


def test_a_node_already_on_this_version_counts_at_once() -> None:
    r, lines = rollout(Target("node", ("pi1",)), pi1=True)
    r.report(report("pi1", "healthy"), 0.0)  # retained, before the start
    r.start(0.0)
    assert r.exit_code == EXIT_HEALTHY and "  pi1: already healthy on 1.1.0" in lines


def test_a_target_going_offline_stops_holding_the_rollout_up() -> None:
    r, lines = rollout(Target("all"), pi1=True, pi2=True)
    r.start(0.0)
    r.report(report("pi1", "healthy"), 1.0)
    assert r.stage == "target"
    r.availability("pi2", False, 2.0)
    assert r.exit_code == EXIT_HEALTHY and "  pi2: offline" in lines
    assert r.summary()[-1] == "summary: 1 healthy (pi1); 1 offline (pi2)"


def test_a_target_that_goes_offline_before_it_is_final_holds_the_rollout() -> None:
    """Gone while on probation is how a crash looks: the version is not proven."""
    r, _ = rollout(Target("all"), timeout=30.0, pi1=True, pi2=True)
    r.start(0.0)
    r.report(report("pi1", "healthy"), 1.0)
    r.report(report("pi2", "live"), 1.5)
    r.availability("pi2", False, 2.0)
    assert r.stage == "target"
    r.tick(31.0)
    assert r.exit_code == EXIT_TIMEOUT
    assert "pi2" in r.why and "offline" in r.why
    assert r.summary()[-1] == "summary: 1 healthy (pi1); 1 offline (pi2)"


def test_a_target_back_after_going_offline_while_live_ends_the_rollout() -> None:
    r, _ = rollout(Target("all"), pi1=True, pi2=True)
    r.start(0.0)
    r.report(report("pi1", "healthy"), 1.0)
    r.report(report("pi2", "live"), 1.5)
    r.availability("pi2", False, 2.0)
    r.availability("pi2", True, 5.0)
    r.report(report("pi2", "rolled-back", reason="trapped"), 6.0)
    assert r.exit_code == EXIT_STOPPED


def test_nodes_that_do_not_run_the_plugin_are_not_targets() -> None:
    r, _ = rollout(Target("all"), plugins={"hub": ("dashboard",)}, pi1=True, pi2=True, hub=True)
    r.start(0.0)
    assert r.waited_for() == ["pi1", "pi2"]
    r.report(report("pi1", "healthy"), 1.0)
    r.report(report("pi2", "healthy"), 2.0)
    assert r.exit_code == EXIT_HEALTHY
    assert r.summary()[-1] == "summary: 2 healthy (pi1, pi2)"


def test_a_label_targets_the_nodes_whose_versions_list_it() -> None:
    kitchen = {"pi1": ("kitchen",), "pi2": ("attic", "kitchen"), "pi4": ("kitchen",)}
    r, _ = rollout(
        Target("label", label="kitchen"), labels=kitchen, pi1=True, pi2=True, pi3=True, pi4=False
    )
    assert r.start(0.0) == [Publish(label_topic("kitchen", "sht31"), BUNDLE)]
    assert r.waited_for() == ["pi1", "pi2", "pi4"]
    r.report(report("pi1", "healthy"), 1.0)
    assert r.tick(39.0) == [] and r.stage == "target"  # pi2 has not answered yet
    r.report(report("pi2", "healthy"), 40.0)  # done at once: no settling, every target is known
    assert r.exit_code == EXIT_HEALTHY
    # pi3 does not carry the label; pi4 does and is offline: it gets it when it connects.
    assert r.summary()[-1] == "summary: 2 healthy (pi1, pi2); 1 offline (pi4)"


def test_a_label_target_that_rolls_back_stops_the_label_rollout() -> None:
    r, _ = rollout(
        Target("label", label="kitchen"), labels={"pi1": ("kitchen",), "pi2": ("kitchen",)},
        pi1=True, pi2=True,
    )  # fmt: skip
    r.start(0.0)
    assert r.report(report("pi1", "rolled-back"), 1.0) == [
        Publish(label_topic("kitchen", "sht31"), b"")
    ]
    r.report(report("pi2", "healthy"), 2.0)
    assert r.exit_code == EXIT_STOPPED


def test_all_targets_every_node_with_a_versions_message() -> None:
    """A node without one (deploy disabled, or not yet published) is unknown:
    it does not hold the rollout up, but the stage settles in case it reports."""
    r, _ = rollout(Target("all"), unknown=("hub",), pi1=True, pi2=True, hub=True)
    r.start(0.0)
    assert r.waited_for() == ["pi1", "pi2"]
    r.report(report("pi1", "healthy"), 1.0)
    r.report(report("pi2", "healthy"), 2.0)
    assert r.stage == "target"  # the hub might be a target: settle for 5 s after the last report
    r.tick(7.0)
    assert r.exit_code == EXIT_HEALTHY
    assert r.summary()[-1] == "summary: 2 healthy (pi1, pi2)"


def test_all_with_every_node_known_ends_with_the_last_target() -> None:
    r, _ = rollout(Target("all"), pi1=True, pi2=True)
    r.start(0.0)
    r.report(report("pi1", "healthy"), 1.0)
    r.report(report("pi2", "healthy"), 1.5)
    assert r.exit_code == EXIT_HEALTHY


def test_a_canary_label_with_no_healthy_carrier_does_not_promote() -> None:
    r, _ = rollout(
        Target("all"), Target("label", label="canary"), timeout=10.0,
        labels={"pi1": ("canary",)}, pi1=False, pi2=True,
    )  # fmt: skip
    r.start(0.0)
    assert r.tick(5.0) == [] and r.stage == "canary"  # its only carrier is offline
    assert r.tick(10.0) == [Publish(label_topic("canary", "sht31"), b"")]
    assert r.exit_code == EXIT_TIMEOUT


def test_a_label_stage_settles_on_unknown_nodes_that_report() -> None:
    """Nodes that never said which labels they carry: the stage counts the
    ones that report this version and settles."""
    r, _ = rollout(Target("label", label="kitchen"), unknown=("pi1", "pi2"), pi1=True, pi2=True)
    assert r.start(0.0) == [Publish(label_topic("kitchen", "sht31"), BUNDLE)]
    r.report(report("pi1", "received"), 0.5)
    r.report(report("pi1", "healthy"), 3.0)
    assert r.tick(4.0) == [] and r.stage == "target"  # pi1 reported at 0.5: settles at 5.5
    assert r.tick(5.5) == [] and r.exit_code == EXIT_HEALTHY
    assert r.summary()[-1] == "summary: 1 healthy (pi1)"  # pi2 is not in the label


def test_a_label_nobody_reports_on_times_out_while_an_unknown_node_might_carry_it() -> None:
    r, _ = rollout(Target("label", label="nobody"), timeout=10.0, unknown=("pi1",), pi1=True)
    r.start(0.0)
    r.tick(9.0)
    assert r.stage == "target"
    r.tick(10.0)
    assert r.exit_code == EXIT_TIMEOUT and r.summary()[-1] == "summary: no node reported"


def test_timeout_after_promotion_leaves_the_delivery_for_slow_and_offline_nodes() -> None:
    r, _ = rollout(Target("all"), Target("node", ("pi1",)), timeout=10.0, pi1=True, pi2=True)
    r.start(0.0)
    r.report(report("pi1", "healthy"), 1.0)
    r.report(report("pi2", "staging"), 2.0)
    assert r.tick(10.0) == []
    # Only the canary's own delivery went, at the promotion: the all one stays.
    assert r.exit_code == EXIT_TIMEOUT and r.cleared == {node_topic("pi1", "sht31")}
    assert "1 in progress (pi2)" in r.summary()[-1]


def test_reports_are_parsed_strictly() -> None:
    good = {
        "plugin": "sht31",
        "version": "1.1.0",
        "content_hash": HASH,
        "state": "healthy",
        "reason": "",
        "previous": {"version": "1.0.0", "content_hash": OLD},
        "polls_ok": 10,
        "since_ms": 5,
        "timestamp_ms": 6,
        "source": "all",
    }
    parsed = parse_report("pi1", json.dumps(good).encode())
    assert parsed is not None and parsed.state == "healthy" and parsed.polls_ok == 10
    assert parsed.previous == {"version": "1.0.0", "content_hash": OLD}
    assert parse_report("pi1", b"") is None  # cleared
    assert parse_report("pi1", b"{not json") is None
    assert parse_report("pi1", json.dumps({**good, "state": "great"}).encode()) is None
    assert parse_report("pi1", b"[1]") is None


def test_a_stopped_canary_stage_sums_up_the_canaries_not_the_targets() -> None:
    """The targets were never offered the version: not 'not reporting'."""
    r, _ = rollout(Target("all"), canary=Target("node", ("pi1",)), pi1=True, pi2=True)
    r.start(0.0)
    r.report(report("pi1", "rolled-back", reason="trapped"), 1.0)
    assert r.exit_code == EXIT_STOPPED
    assert r.summary()[-1] == "summary: 1 rolled back (pi1)"


def test_a_named_target_never_seen_does_not_hold_the_rollout_up() -> None:
    """Its retained delivery reaches it when it first connects (BUNDLES.md)."""
    r, _ = rollout(Target("node", ("pi1", "ghost")), pi1=True)
    r.start(0.0)
    r.report(report("pi1", "healthy"), 1.0)
    assert r.exit_code == EXIT_HEALTHY
    assert r.summary()[-1] == "summary: 1 healthy (pi1); 1 offline (ghost)"


def test_a_canary_s_delivery_is_cleared_even_when_the_targets_then_fail() -> None:
    """Left behind, it would pin the canary to this version: the next --all
    rollout would never reach it (a node delivery outranks all)."""
    r, _ = rollout(Target("all"), Target("node", ("pi1",)), timeout=30.0, pi1=True, pi2=True)
    r.start(0.0)
    promoted = r.report(report("pi1", "healthy"), 1.0)
    assert Publish(node_topic("pi1", "sht31"), b"") in promoted
    r.report(report("pi2", "rolled-back"), 2.0)
    assert r.exit_code == EXIT_STOPPED
    assert node_topic("pi1", "sht31") in r.cleared


def test_only_a_healthy_report_from_before_the_start_counts() -> None:
    """A needs-grants, rolled-back or live report retained from an earlier attempt
    says nothing about this one (the grants may be fixed, the bundle signed anew)."""
    for earlier in ("needs-grants", "rolled-back", "failed", "live"):
        r, _ = rollout(Target("node", ("pi1",)), pi1=True)
        r.report(report("pi1", earlier), 0.0)  # retained, read before the start
        r.start(0.0)
        assert r.stage == "target", earlier  # waits for this attempt's report
        r.report(report("pi1", "received"), 1.0)
        r.report(report("pi1", "healthy"), 2.0)
        assert r.exit_code == EXIT_HEALTHY, earlier


def test_a_live_report_retained_from_a_node_now_offline_does_not_hold_the_rollout() -> None:
    r, _ = rollout(Target("all"), pi1=True, pi2=False)
    r.report(report("pi2", "live"), 0.0)  # it died during an earlier gate, long ago
    r.start(0.0)
    r.report(report("pi1", "healthy"), 1.0)
    assert r.exit_code == EXIT_HEALTHY


def test_the_deliveries_in_force_are_what_was_published_and_not_cleared() -> None:
    """What a deployer re-publishes after the broker lost its retained messages."""
    r, _ = rollout(Target("all"), Target("node", ("pi1",)), pi1=True, pi2=True)
    r.start(0.0)
    assert r.deliveries() == [Publish(node_topic("pi1", "sht31"), BUNDLE)]
    r.report(report("pi1", "healthy"), 1.0)
    assert r.deliveries() == [Publish(all_topic("sht31"), BUNDLE)]
