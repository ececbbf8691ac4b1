"""The node side of deploying plugins over MQTT, against a real Mosquitto and
real hosts in-process (docs/MQTT.md, "Deploying plugins").

Hostile cases first: an unknown key, a tampered bundle, a version that traps
on every poll, an empty retained payload. Then the good path, offline
catch-up, labels, "all" and precedence. No test sleeps for a fixed time:
every wait is for a condition, bounded by a deadline; cycles are driven by
hand as ``Host.run`` would drive them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.conftest import SteppedClock
from tests.deploy_fleet import counter
from tests.mosquitto import Broker
from tests.telemetry.test_mqtt import Subscriber
from wasihost.boards.sim import SimBoard
from wasihost.bundle.create import create_bundle, hash_plugin
from wasihost.bundle.keys import SigningKey, generate_key
from wasihost.deploy import disk
from wasihost.deploy import node as node_module
from wasihost.host import Host
from wasihost.runtime.contract import load_contract
from wasihost.runtime.plugin import PluginState
from wasihost.specs import plugin_specs

DEADLINE = 30.0


def bundle(tmp_path: Path, key: SigningKey, version: str, trap: bool = False) -> bytes:
    folder = counter(tmp_path / "bundles" / version / "counter", version, trap)
    return create_bundle(folder, key, version=version)


async def until(condition: Callable[[], bool], what: str, hosts: tuple[Host, ...] = ()) -> None:
    """Wait for ``condition``, running a poll cycle on ``hosts`` each turn."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        for host in hosts:
            await host.after_cycle(await host.cycle.run_once())
        await asyncio.sleep(0.01)


class Fleet:
    """Real hosts on one broker, each with the counter plugin and a dht22."""

    def __init__(self, server: Broker, make_config: Callable[..., Any], tmp_path: Path) -> None:
        self.broker = server
        self.make_config = make_config
        self.tmp_path = tmp_path
        self.key = generate_key()
        self.hosts: dict[str, Host] = {}
        self.stops: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def host(
        self,
        node: str,
        labels: tuple[str, ...] = (),
        trust: bool = True,
        gate_polls: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> Host:
        folder = counter(self.tmp_path / node / "plugins" / "counter", "1.0.0")
        plugins = {"counter": {"source": str(folder), "world": "sensor-plugin"}}
        config = self.config(node, {**plugins, "dht22": {"led": 1}}, labels, trust, gate_polls)
        host = Host(config, board=SimBoard(seed=len(node)), monotonic=monotonic)
        host.load_plugins()
        assert host.deploy is not None
        host.deploy.settle_seconds = 0.05
        self.hosts[node] = host
        return host

    def config(
        self,
        node: str,
        plugins: dict[str, Any],
        labels: tuple[str, ...] = (),
        trust: bool = True,
        gate_polls: int = 3,
    ) -> Any:
        """A node's config: these plugins, MQTT on the test broker, deploying on,
        trusting this fleet's key (or another one), everything under tmp_path/node."""
        where = self.tmp_path / node
        return self.make_config(
            plugins,
            node={"id": node, "labels": list(labels)},
            mqtt={
                "enabled": True,
                "host": "127.0.0.1",
                "port": self.broker.port,
                "keepalive_seconds": 5,
                "discovery": False,
                "outbox_path": str(where / "outbox.sqlite3"),
            },
            history={"enabled": False},
            state={"dir": str(where / "state")},
            reload={"enabled": False},
            trust={"keys": [self.key.public.text if trust else generate_key().public.text]},
            deploy={"enabled": True, "dir": str(where / "deploy"), "gate_polls": gate_polls},
            runtime={"plugins_dir": str(where / "plugins")},
        )

    async def start(self, node: str) -> None:
        host = self.hosts[node]
        assert host.deploy is not None and host.mqtt is not None
        await host.deploy.start()
        self.stops[node] = asyncio.Event()
        self.tasks[node] = asyncio.create_task(host.mqtt.run(self.stops[node]))
        await until(lambda: host.mqtt is not None and host.mqtt.connected, f"{node} connected")

    async def deliver(self, what: bytes | str, node: str = "n1") -> bytes:
        """Publish a bundle (or a new one of version ``what``, signed with this fleet's
        key) to ``node``'s counter, as ``wasihost deploy --node`` does; returns it."""
        payload = bundle(self.tmp_path, self.key, what) if isinstance(what, str) else what
        await self.publish(f"wasihost/deploy/node/{node}/counter", payload)
        return payload

    async def publish(self, topic: str, payload: bytes) -> None:
        async with aiomqtt.Client("127.0.0.1", self.broker.port, identifier="deployer") as c:
            await c.publish(topic, payload, qos=1, retain=True)

    async def close(self) -> None:
        for event in self.stops.values():
            event.set()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        for host in self.hosts.values():
            if host.deploy is not None:
                await host.deploy.wait_idle()
            host.close()


def states(sub: Subscriber, node: str, plugin: str = "counter") -> list[str]:
    return [r["state"] for r in sub.json_on(f"wasihost/{node}/rollout/{plugin}")]


def last(sub: Subscriber, node: str, plugin: str = "counter") -> dict[str, Any]:
    return sub.json_on(f"wasihost/{node}/rollout/{plugin}")[-1]


def polls(host: Host, plugin: str = "counter") -> float | None:
    reading = host.state.to_json()["readings"].get(plugin) or {}
    values = {m["name"]: m["value"] for m in reading.get("measurements") or []}
    return values.get("polls")


def version(host: Host) -> str | None:
    info = host.plugins["counter"].info
    return info["version"] if info else None


# -- hostile ---------------------------------------------------------------------
@pytest.mark.parametrize("case", ["unknown-key", "tampered"])
async def test_an_untrusted_or_tampered_bundle_is_refused_and_nothing_changes(
    fleet: Fleet, tmp_path: Path, case: str
) -> None:
    host = fleet.host("n1")
    await fleet.start("n1")
    await until(lambda: polls(host) == 2.0, "two polls", (host,))
    key = generate_key() if case == "unknown-key" else fleet.key
    data = bundle(tmp_path, key, "2.0.0")
    if case == "tampered":
        data = data.replace(b'"2.0.0"', b'"6.6.6"')  # the signed manifest, edited
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.deliver(data)
        await until(lambda: bool(states(sub, "n1")), "a report", (host,))
        report = last(sub, "n1")
    assert report["state"] == "refused"
    expected = "not trusted here" if case == "unknown-key" else "does not match"
    assert expected in report["reason"]
    assert version(host) == "1.0.0" and host.plugins["counter"].stats.reloads == 0
    assert not (tmp_path / "n1" / "deploy" / "counter" / "current").exists()
    before = polls(host)
    await until(lambda: polls(host) == (before or 0) + 2, "polls go on", (host,))


async def test_a_version_that_traps_is_rolled_back_by_the_node_and_others_miss_no_poll(
    fleet: Fleet, tmp_path: Path
) -> None:
    host = fleet.host("n1")
    await fleet.start("n1")
    await until(lambda: polls(host) == 3.0, "three polls", (host,))
    dht_before = host.plugins["dht22"].stats.polls
    cycles_before = host.state.cycle
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.publish(
            "wasihost/deploy/node/n1/counter", bundle(tmp_path, fleet.key, "2.0.0", trap=True)
        )
        await until(lambda: "rolled-back" in states(sub, "n1"), "rolled back", (host,))
        report = last(sub, "n1")
    seen = states(sub, "n1")
    assert seen[:4] == ["received", "staging", "live", "rolled-back"], seen
    assert report["reason"].startswith("trapped"), report
    assert report["version"] == "2.0.0"
    assert report["previous"] == {"version": None, "content_hash": hash_plugin(
        tmp_path / "n1" / "plugins" / "counter")}  # fmt: skip
    await until(
        lambda: host.plugins["counter"].state is PluginState.RUNNING and version(host) == "1.0.0",
        "the previous version running",
        (host,),
    )
    before = polls(host) or 0.0
    await until(lambda: (polls(host) or 0) >= before + 2, "the previous version polls", (host,))
    # The dht22 polled in every cycle, rollout or not.
    assert host.plugins["dht22"].stats.polls - dht_before == host.state.cycle - cycles_before
    assert host.plugins["dht22"].stats.traps == 0


async def test_a_bundle_needing_grants_the_node_does_not_give_is_held_naming_them(
    fleet: Fleet, tmp_path: Path
) -> None:
    host = fleet.host("n1")
    await fleet.start("n1")
    await until(lambda: polls(host) == 2.0, "two polls", (host,))
    folder = counter(tmp_path / "bundles" / "2.0.0" / "counter", "2.0.0")
    needs = {"i2c_addresses": [0x45], "leds": [4]}  # the config grants counter neither
    data = create_bundle(folder, fleet.key, version="2.0.0", grants=needs)
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.deliver(data)
        await until(lambda: bool(states(sub, "n1")), "a report", (host,))
        assert host.deploy is not None
        await host.deploy.wait_idle()
        assert states(sub, "n1") == ["needs-grants"]
        report = last(sub, "n1")
    assert report["version"] == "2.0.0"
    assert "LEDs 4" in report["reason"] and "I2C 0x45" in report["reason"], report
    assert "plugins.counter.grants" in report["reason"], report
    assert version(host) == "1.0.0" and host.plugins["counter"].stats.reloads == 0
    assert not (tmp_path / "n1" / "deploy" / "counter" / "current").exists()
    before = polls(host) or 0.0
    await until(lambda: (polls(host) or 0) >= before + 2, "polls go on", (host,))


async def test_a_version_short_of_gate_polls_when_the_gate_times_out_is_rolled_back(
    fleet: Fleet, tmp_path: Path, monotonic: SteppedClock
) -> None:
    """2.0.0 polls fine but needs 1000 good polls; the host's monotonic clock
    is stepped past gate_seconds, so the node rolls it back by itself (the gate
    counts on the host's clock, which the host hands the deploy side)."""
    host = fleet.host("n1", gate_polls=1000, monotonic=monotonic)
    assert host.deploy is not None
    await fleet.start("n1")
    await until(lambda: polls(host) == 2.0, "two polls", (host,))
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.deliver("2.0.0")
        await until(lambda: version(host) == "2.0.0", "the new version", (host,))
        await until(lambda: "live" in states(sub, "n1"), "live", (host,))
        await until(lambda: last(sub, "n1")["polls_ok"] >= 2, "good polls counted", (host,))
        assert "rolled-back" not in states(sub, "n1")
        monotonic.advance(host.config.deploy.gate_seconds + 1)
        await until(lambda: "rolled-back" in states(sub, "n1"), "rolled back", (host,))
        report = last(sub, "n1")
    seen = states(sub, "n1")
    assert seen[:3] == ["received", "staging", "live"] and seen[-1] == "rolled-back", seen
    assert "healthy" not in seen
    assert report["version"] == "2.0.0"
    assert report["reason"].startswith("only "), report
    assert "of 1000 polls succeeded within 120 s" in report["reason"], report
    await until(
        lambda: host.plugins["counter"].state is PluginState.RUNNING and version(host) == "1.0.0",
        "the previous version running",
        (host,),
    )
    assert not (tmp_path / "n1" / "deploy" / "counter" / "current").exists()
    before = polls(host) or 0.0
    await until(lambda: (polls(host) or 0) >= before + 2, "the previous version polls", (host,))


async def test_an_empty_retained_payload_changes_nothing(fleet: Fleet, tmp_path: Path) -> None:
    host = fleet.host("n1")
    await fleet.start("n1")
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.publish("wasihost/deploy/node/n1/counter", b"")
        await fleet.publish("wasihost/deploy/all/counter", b"")
        await until(lambda: (polls(host) or 0) >= 3, "polls", (host,))
        assert host.deploy is not None
        await host.deploy.wait_idle()
        assert states(sub, "n1") == []
    assert version(host) == "1.0.0" and host.plugins["counter"].stats.reloads == 0


async def test_a_plugin_not_configured_here_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    host = fleet.host("n1")
    await fleet.start("n1")
    folder = counter(tmp_path / "other" / "stranger", "1.0.0")
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.publish(
            "wasihost/deploy/node/n1/stranger", create_bundle(folder, fleet.key, version="1")
        )
        await until(lambda: bool(states(sub, "n1", "stranger")), "a report", (host,))
        report = last(sub, "n1", "stranger")
    assert report["state"] == "refused" and report["reason"] == "not configured on this node"


async def test_a_shared_delivery_of_a_plugin_not_configured_here_is_ignored(
    fleet: Fleet, tmp_path: Path
) -> None:
    """A fleet where only some nodes run a plugin still deploys it with --all or a
    label: the others are not its targets, and a red "refused" from each of them
    would stop every such rollout and show as a failure on the hub."""
    host = fleet.host("n1")
    await fleet.start("n1")
    folder = counter(tmp_path / "other" / "stranger", "1.0.0")
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.publish(
            "wasihost/deploy/all/stranger", create_bundle(folder, fleet.key, version="1")
        )
        await until(lambda: (polls(host) or 0) >= 3, "polls", (host,))
        assert host.deploy is not None
        await host.deploy.wait_idle()
        assert states(sub, "n1", "stranger") == []


# -- the good path -----------------------------------------------------------------
async def test_a_good_bundle_goes_live_then_healthy_with_its_state_carried(
    fleet: Fleet, tmp_path: Path
) -> None:
    host = fleet.host("n1")
    await fleet.start("n1")
    await until(lambda: polls(host) == 3.0, "three polls", (host,))
    data = bundle(tmp_path, fleet.key, "2.0.0")
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+", "wasihost/+/versions") as sub:
        await fleet.deliver(data)
        await until(lambda: "healthy" in states(sub, "n1"), "healthy", (host,))
        report = last(sub, "n1")
        await until(
            lambda: any(
                v["plugins"].get("counter", {}).get("version") == "2.0.0"
                for v in sub.json_on("wasihost/n1/versions")
            ),
            "versions published",
        )
    seen = states(sub, "n1")
    assert seen[:3] == ["received", "staging", "live"] and seen[-1] == "healthy", seen
    assert report["version"] == "2.0.0" and report["source"] == "node"
    assert report["polls_ok"] >= 3 and report["reason"] is None
    assert version(host) == "2.0.0"
    assert host.plugins["counter"].stats.last_reload["state"] == "carried"  # type: ignore[index]
    # The count went on across the versions: 3 before, then 4, 5, ...
    assert (polls(host) or 0) > 3.0 + report["polls_ok"] - 1
    deployed = tmp_path / "n1" / "deploy" / "counter"
    assert (
        hash_plugin(deployed / "current")
        == json.loads((deployed / "deployed.json").read_text())["current"]["content_hash"]
    )

    # Reconnecting re-delivers the retained bundle: reported again, not reinstalled.
    reloads = host.plugins["counter"].stats.reloads
    assert host.deploy is not None
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        host.deploy.handle("wasihost/deploy/node/n1/counter", data, True)

        # The retained report comes on subscribing; the one published again is not retained.
        def again() -> list[bytes]:
            topic = "wasihost/n1/rollout/counter"
            return [p for t, p, retained in sub.messages if t == topic and not retained]

        await until(lambda: bool(again()), "reported again", (host,))
        assert [json.loads(p)["state"] for p in again()] == ["healthy"]
        assert set(states(sub, "n1")) == {"healthy"}
    assert host.plugins["counter"].stats.reloads == reloads

    # A restarted node runs the deployed version, not its configured source.
    host2 = Host(host.config, board=SimBoard(seed=3))
    try:
        host2.load_plugins()
        assert host2.plugins["counter"].info is not None
        assert host2.plugins["counter"].info["version"] == "2.0.0"
    finally:
        host2.close()


async def test_the_versions_message_names_the_labels_and_every_plugin(fleet: Fleet) -> None:
    """The retained versions message says which labels the node carries, so the
    deployer knows a label's targets instead of guessing from who reports."""
    host = fleet.host("n1", labels=("canary", "attic"))
    async with Subscriber(fleet.broker.port, "wasihost/+/versions") as sub:
        await fleet.start("n1")
        await until(lambda: bool(sub.json_on("wasihost/n1/versions")), "versions", (host,))
        versions = sub.json_on("wasihost/n1/versions")[-1]
    assert set(versions) == {"labels", "plugins"}
    assert versions["labels"] == ["canary", "attic"]
    assert set(versions["plugins"]) == {"counter", "dht22"}
    counter_hash = hash_plugin(fleet.tmp_path / "n1" / "plugins" / "counter")
    assert versions["plugins"]["counter"] == {"version": None, "content_hash": counter_hash}


async def test_an_offline_node_gets_the_retained_delivery_when_it_connects(
    fleet: Fleet, tmp_path: Path
) -> None:
    await fleet.deliver("2.0.0")
    host = fleet.host("n1")
    await fleet.start("n1")
    await until(lambda: version(host) == "2.0.0", "the new version", (host,))


async def test_labels_all_and_precedence(fleet: Fleet, tmp_path: Path) -> None:
    """n1 is a canary, n2 is not: "all" reaches both, a label only n1, and a
    node's own delivery wins over its label's and "all"."""
    n1, n2 = fleet.host("n1", labels=("canary",)), fleet.host("n2")
    await fleet.start("n1")
    await fleet.start("n2")
    hosts = (n1, n2)
    await fleet.publish(
        "wasihost/deploy/label/canary/counter", bundle(tmp_path, fleet.key, "2.0.0")
    )
    await until(lambda: version(n1) == "2.0.0", "the canary on 2.0.0", hosts)
    assert version(n2) == "1.0.0"
    await fleet.publish("wasihost/deploy/all/counter", bundle(tmp_path, fleet.key, "3.0.0"))
    await until(lambda: version(n2) == "3.0.0", "n2 on all's 3.0.0", hosts)
    assert version(n1) == "2.0.0"  # its label's delivery is more specific than all's
    await fleet.deliver("4.0.0")
    await until(lambda: version(n1) == "4.0.0", "n1 on its own 4.0.0", hosts)
    assert version(n2) == "3.0.0"


async def test_a_cleared_delivery_hands_the_plugin_to_the_one_now_in_force(
    fleet: Fleet, tmp_path: Path
) -> None:
    """What the broker holds is what runs, now rather than at the next restart
    (when the retained deliveries are replayed and the node would act on them)."""
    n1 = fleet.host("n1")
    await fleet.start("n1")
    await fleet.publish("wasihost/deploy/all/counter", bundle(tmp_path, fleet.key, "2.0.0"))
    await until(lambda: version(n1) == "2.0.0", "n1 on all's 2.0.0", (n1,))
    await fleet.deliver("3.0.0")
    await until(lambda: version(n1) == "3.0.0", "n1 on its own 3.0.0", (n1,))
    await fleet.publish("wasihost/deploy/node/n1/counter", b"")  # the deployer clears it
    await until(lambda: version(n1) == "2.0.0", "n1 back on all's 2.0.0", (n1,))


async def test_clearing_the_only_delivery_leaves_the_plugin_as_it_is(
    fleet: Fleet, tmp_path: Path
) -> None:
    n1 = fleet.host("n1")
    await fleet.start("n1")
    await fleet.deliver("2.0.0")
    await until(lambda: version(n1) == "2.0.0", "n1 on 2.0.0", (n1,))
    await fleet.publish("wasihost/deploy/node/n1/counter", b"")
    before = polls(n1) or 0
    await until(lambda: (polls(n1) or 0) >= before + 2, "two polls", (n1,))
    assert n1.deploy is not None
    await n1.deploy.wait_idle()
    assert version(n1) == "2.0.0"


# -- a delivery during a health gate, and installs that fail halfway ----------------
def held_in(monkeypatch: pytest.MonkeyPatch, method: str, when: Callable[..., bool]) -> Any:
    """Make ``DeployNode.<method>`` (run on a worker thread) wait, for the calls
    ``when`` picks, until the returned event is set: an install or a verify in
    progress, for as long as the test needs, without sleeping."""
    release = threading.Event()
    original = getattr(node_module.DeployNode, method)

    def waiting(self: Any, *args: Any) -> Any:
        if when(*args):
            release.wait(DEADLINE)
        return original(self, *args)

    monkeypatch.setattr(node_module.DeployNode, method, waiting)
    return release


def reports(sub: Subscriber, node: str = "n1") -> list[tuple[str, str]]:
    return [(r["version"], r["state"]) for r in sub.json_on(f"wasihost/{node}/rollout/counter")]


def deployed(tmp_path: Path, node: str = "n1") -> dict[str, Any]:
    record: dict[str, Any] = json.loads(
        (tmp_path / node / "deploy" / "counter" / "deployed.json").read_text()
    )
    return record


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("verdict", ["healthy", "rolled-back"])
async def test_a_delivery_during_a_health_gate_ends_it_and_never_gets_its_verdict(
    fleet: Fleet,
    tmp_path: Path,
    monotonic: SteppedClock,
    monkeypatch: pytest.MonkeyPatch,
    verdict: str,
) -> None:
    """2.0.0 is on probation when 3.0.0 arrives. While 3.0.0 is being installed,
    2.0.0's gate would pass (enough polls) or run out (its window): that verdict
    is 2.0.0's, and 2.0.0 is being replaced, so it is not given. Before, the
    gate went on judging 2.0.0's counters under 3.0.0's report: 3.0.0 was
    reported healthy before it was even staged, or rolled back with 2.0.0's
    reason (and 2.0.0's bundle recorded as rejected)."""
    # Run out on time, the gate is long: 3.0.0's own gate must not pass either
    # in the cycles the test runs while waiting for it to go live.
    host = fleet.host("n1", gate_polls=3 if verdict == "healthy" else 50, monotonic=monotonic)
    await fleet.start("n1")
    staging = held_in(
        monkeypatch,
        "_stage_files",
        lambda folder, verdict, manifest, *_: manifest.version == "3.0.0",
    )
    three = bundle(tmp_path, fleet.key, "3.0.0")
    try:
        async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
            await fleet.deliver("2.0.0")
            await until(lambda: ("2.0.0", "live") in reports(sub), "2.0.0 live")
            await fleet.deliver(three)
            await until(lambda: ("3.0.0", "received") in reports(sub), "3.0.0 received")
            if verdict == "rolled-back":
                monotonic.advance(host.config.deploy.gate_seconds + 1)
            for _ in range(5):  # 2.0.0's gate passes after 3 (or runs out at once)
                await host.after_cycle(await host.cycle.run_once())
            staging.set()
            await until(lambda: ("3.0.0", "live") in reports(sub), "3.0.0 live", (host,))
            if verdict == "healthy":
                await until(lambda: ("3.0.0", "healthy") in reports(sub), "healthy", (host,))
            assert host.deploy is not None
            await host.deploy.wait_idle()
            seen = [state for v, state in reports(sub) if v == "3.0.0"]
    finally:
        staging.set()
    assert seen[:3] == ["received", "staging", "live"], seen
    assert "rolled-back" not in seen, seen
    assert version(host) == "3.0.0"
    record = deployed(tmp_path)
    assert record["current"]["version"] == "3.0.0" and "rejected" not in record, record
    if verdict == "healthy":
        assert seen[-1] == "healthy" and seen.count("healthy") == 1, seen
        assert "probation" not in record, record
    else:  # 3.0.0's own gate runs, from when it went live
        assert "healthy" not in seen, seen
        assert record["probation"]["bundle_sha256"] == digest(three), record


@pytest.mark.parametrize("verdict", ["healthy", "rolled-back"])
async def test_a_verdict_on_a_version_that_is_replaced_meanwhile_leaves_the_new_one_alone(
    fleet: Fleet,
    tmp_path: Path,
    monotonic: SteppedClock,
    monkeypatch: pytest.MonkeyPatch,
    verdict: str,
) -> None:
    """2.0.0's gate gives its verdict while 3.0.0's delivery waits for the node
    (a refused bundle is being verified): the verdict's work (dropping 2.0.0's
    probation, or rolling 2.0.0 back) runs only after 3.0.0 is installed, and
    must not touch it. Before, 3.0.0's probation was dropped from deployed.json
    (a restart would not judge it), or 3.0.0 was rolled back with 2.0.0's reason."""
    host = fleet.host("n1", gate_polls=3, monotonic=monotonic)
    await fleet.start("n1")
    refused = bundle(tmp_path, generate_key(), "2.5.0")  # an unknown key
    verifying = held_in(monkeypatch, "_verify_into", lambda payload, *_: payload == refused)
    three = bundle(tmp_path, fleet.key, "3.0.0")
    assert host.deploy is not None
    held = host.deploy._held["counter"]
    try:
        async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
            await fleet.deliver("2.0.0")
            await until(lambda: ("2.0.0", "live") in reports(sub), "2.0.0 live")
            await fleet.deliver(refused)
            await until(
                lambda: held.deliveries.get(("node", "n1")) == refused and held.timer is None,
                "the refused one acted on",
            )
            await fleet.deliver(three)
            await until(
                lambda: held.deliveries.get(("node", "n1")) == three and held.timer is None,
                "3.0.0 waiting for the node",
            )
            await asyncio.sleep(0)  # its task starts, and waits for the refused one
            if verdict == "rolled-back":
                monotonic.advance(host.config.deploy.gate_seconds + 1)
            # 2.0.0 healthy after 3 polls, or out of time at once
            await until(lambda: held.gate is None, "2.0.0's verdict", (host,))
            verifying.set()
            await until(lambda: ("3.0.0", "live") in reports(sub), "3.0.0 live")
            await host.deploy.wait_idle()
            seen = reports(sub)
    finally:
        verifying.set()
    if verdict == "healthy":
        assert ("2.0.0", "healthy") in seen, seen
    else:  # nothing to roll back any more: 2.0.0 is not running
        assert [s for s in seen if s[1] == "rolled-back"] == [], seen
    assert version(host) == "3.0.0"
    record = deployed(tmp_path)
    assert record["current"]["version"] == "3.0.0", record
    assert record["probation"]["bundle_sha256"] == digest(three), record
    assert held.gate is not None and held.gate.bundle == digest(three)


async def test_a_full_disk_while_installing_leaves_the_running_version_in_place(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deployed.json cannot be written (ENOSPC on an SD card) after current/
    was swapped: the node reports failed and puts the files back, so a restart
    runs the version the record names. Before, current/ held 3.0.0 under 2.0.0's
    record: after a restart 3.0.0 ran, with no gate, reported as 2.0.0."""
    host = fleet.host("n1")
    await fleet.start("n1")
    folder = tmp_path / "n1" / "deploy" / "counter"
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.deliver("2.0.0")
        await until(lambda: ("2.0.0", "healthy") in reports(sub), "2.0.0 healthy", (host,))
        await fleet.deliver("3.0.0")
        await until(lambda: ("3.0.0", "healthy") in reports(sub), "3.0.0 healthy", (host,))
        assert host.deploy is not None
        await host.deploy.wait_idle()
        before = deployed(tmp_path)
        write = disk.write_record

        def full(path: Path, record: dict[str, Any]) -> None:
            if "probation" in record:
                raise OSError(28, "No space left on device")
            write(path, record)

        monkeypatch.setattr(disk, "write_record", full)
        await fleet.deliver("4.0.0")
        await until(lambda: ("4.0.0", "failed") in reports(sub), "4.0.0 failed", (host,))
        await host.deploy.wait_idle()
        report = last(sub, "n1")
    assert "No space left on device" in report["reason"], report
    assert deployed(tmp_path) == before
    assert hash_plugin(folder / "current") == before["current"]["content_hash"]
    assert hash_plugin(folder / "previous") == before["previous"]["content_hash"]
    assert not (folder / "incoming").exists()
    assert version(host) == "3.0.0"
    restarted = Host(host.config, board=SimBoard(seed=3))
    try:
        restarted.load_plugins()
        assert version(restarted) == "3.0.0"
    finally:
        restarted.close()


async def test_a_damaged_record_does_not_stop_the_host_from_starting(
    make_config: Callable[..., Any], tmp_path: Path
) -> None:
    """deployed.json that cannot be read (a torn SD card write, an edit) is
    read as no record, as everywhere else; before, DeployNode.start raised on it,
    so the host failed at every start."""
    configured = counter(tmp_path / "plugins" / "counter", "1.0.0")
    folder = tmp_path / "deploy" / "counter"
    counter(folder / "current", "2.0.0")
    config = make_config(
        {"counter": {"source": str(configured), "world": "sensor-plugin"}},
        mqtt={"enabled": True, "outbox_path": str(tmp_path / "outbox.sqlite3")},
        trust={"keys": [generate_key().public.text]},
        deploy={"enabled": True, "dir": str(tmp_path / "deploy")},
    )
    for damaged in ('{"current": ', '{"current": null}', "[1]"):
        (folder / "deployed.json").write_text(damaged)
        host = Host(config, board=SimBoard(seed=1))
        try:
            host.load_plugins()
            assert host.deploy is not None
            await host.deploy.start()
            assert version(host) == "2.0.0"
            assert host.deploy.versions["counter"] == {
                "version": None,
                "content_hash": hash_plugin(folder / "current"),
            }, damaged
        finally:
            host.close()


def test_a_rollback_on_disk_cut_short_finishes_when_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between moving previous/ back to current/ and writing the record:
    run again (at the next start), it keeps the version it moved back. Before,
    it deleted it, and the node ran its configured code."""
    folder = tmp_path / "counter"
    counter(folder / "current", "3.0.0")
    counter(folder / "previous", "2.0.0")
    two = {"version": "2.0.0", "content_hash": hash_plugin(folder / "previous")}
    three = {"version": "3.0.0", "content_hash": hash_plugin(folder / "current")}
    probation = {"restarts": 2, "since_ms": 1, "source": "node", "previous": two}
    disk.write_record(
        folder / "deployed.json", {"current": three, "previous": two, "probation": probation}
    )
    write = disk.write_record

    def crash(path: Path, record: dict[str, Any]) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(disk, "write_record", crash)
    with pytest.raises(OSError):
        disk.restore_files(folder, {"bundle_sha256": "sha256:3", "report": {}})
    monkeypatch.setattr(disk, "write_record", write)
    disk.restore_files(folder, {"bundle_sha256": "sha256:3", "report": {}})
    record = json.loads((folder / "deployed.json").read_text())
    assert record["current"] == two and record["previous"] is None, record
    assert record["rejected"]["bundle_sha256"] == "sha256:3"
    assert hash_plugin(folder / "current") == two["content_hash"]
    assert not (folder / "previous").exists()


def test_a_rollback_cut_short_by_a_restart_is_finished_at_start(
    make_config: Callable[..., Any], tmp_path: Path
) -> None:
    """The host stopped during a rollback of 3.0.0, after 2.0.0 was moved back to
    current/ and before the record said so: at start the rollback is finished
    (record, rejected bundle) before anything loads. Before, the record still
    named 3.0.0 on probation, so 2.0.0 ran reported as 3.0.0 and its gate
    judged it as 3.0.0 (a pass would have made "3.0.0" healthy)."""
    configured = counter(tmp_path / "plugins" / "counter", "1.0.0")
    folder = tmp_path / "deploy" / "counter"
    two = {"version": "2.0.0", "content_hash": hash_plugin(counter(folder / "current", "2.0.0"))}
    three = {"version": "3.0.0", "content_hash": "sha256:3"}
    probation = {"restarts": 0, "since_ms": 1, "source": "all", "previous": two}
    probation["bundle_sha256"] = "sha256:b3"
    disk.write_record(
        folder / "deployed.json", {"current": three, "previous": two, "probation": probation}
    )
    config = make_config(
        {"counter": {"source": str(configured), "world": "sensor-plugin"}},
        mqtt={"enabled": True, "outbox_path": str(tmp_path / "outbox.sqlite3")},
        trust={"keys": [generate_key().public.text]},
        deploy={"enabled": True, "dir": str(tmp_path / "deploy")},
    )
    [spec] = plugin_specs(config, load_contract())
    assert disk.deployed_spec(config, spec).source == folder / "current"
    record = json.loads((folder / "deployed.json").read_text())
    assert record["current"] == two and "probation" not in record, record
    assert record["rejected"]["bundle_sha256"] == "sha256:b3"
    report = record["rejected"]["report"]
    assert report["state"] == "rolled-back" and report["version"] == "3.0.0", report
    assert report["source"] == "all" and "cut short" in report["reason"], report
