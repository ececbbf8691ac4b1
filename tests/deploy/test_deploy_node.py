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
import json
import time
from collections.abc import AsyncIterator, Callable
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
from wasihost.host import Host
from wasihost.runtime.plugin import PluginState

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
        where = self.tmp_path / node
        config = self.make_config(
            {"counter": {"source": str(folder), "world": "sensor-plugin"}, "dht22": {"led": 1}},
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
        host = Host(config, board=SimBoard(seed=len(node)), monotonic=monotonic)
        host.load_plugins()
        assert host.deploy is not None
        host.deploy.settle_seconds = 0.05
        self.hosts[node] = host
        return host

    async def start(self, node: str) -> None:
        host = self.hosts[node]
        assert host.deploy is not None and host.mqtt is not None
        await host.deploy.start()
        self.stops[node] = asyncio.Event()
        self.tasks[node] = asyncio.create_task(host.mqtt.run(self.stops[node]))
        await until(lambda: host.mqtt is not None and host.mqtt.connected, f"{node} connected")

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


@pytest.fixture
async def fleet(
    broker: Broker,
    make_config: Callable[..., Any],
    tmp_path: Path,
) -> AsyncIterator[Fleet]:
    made = Fleet(broker, make_config, tmp_path)
    yield made
    await made.close()


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
        await fleet.publish("wasihost/deploy/node/n1/counter", data)
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
        await fleet.publish("wasihost/deploy/node/n1/counter", data)
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
        await fleet.publish("wasihost/deploy/node/n1/counter", bundle(tmp_path, fleet.key, "2.0.0"))
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
        await fleet.publish("wasihost/deploy/node/n1/counter", data)
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
    await fleet.publish("wasihost/deploy/node/n1/counter", bundle(tmp_path, fleet.key, "2.0.0"))
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
    await fleet.publish("wasihost/deploy/node/n1/counter", bundle(tmp_path, fleet.key, "4.0.0"))
    await until(lambda: version(n1) == "4.0.0", "n1 on its own 4.0.0", hosts)
    assert version(n2) == "3.0.0"
