"""The node side across restarts, of the broker and of the host itself: what a
node says again when its connection comes back, and what it remembers of a
version on probation when it starts again (docs/MQTT.md, "Deploying plugins").

Real Mosquitto and real hosts in-process, driven as in test_deploy_node.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SteppedClock
from tests.deploy.test_deploy_node import (
    Fleet,
    bundle,
    last,
    polls,
    states,
    until,
    version,
)
from tests.deploy_fleet import counter
from tests.telemetry.test_mqtt import Subscriber
from wasihost.bundle.create import hash_plugin
from wasihost.bundle.keys import generate_key
from wasihost.deploy import disk
from wasihost.deploy.disk import deployed_spec
from wasihost.host import Host
from wasihost.runtime.contract import load_contract
from wasihost.specs import plugin_specs


async def test_a_broker_restarted_without_persistence_learns_versions_and_reports_again(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Mosquitto without persistence forgets every retained message when it
    restarts; the node says its versions and its rollout report again on the
    new connection, so a deployer or hub that starts later still sees them."""
    host = fleet.host("n1", labels=("attic",))
    await fleet.start("n1")
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.deliver("2.0.0")
        await until(lambda: "healthy" in states(sub, "n1"), "healthy", (host,))
    assert host.mqtt is not None
    connects = host.mqtt.connects

    await asyncio.to_thread(fleet.broker.stop)
    await asyncio.to_thread(fleet.broker.start)  # the same port, nothing retained
    await until(lambda: host.mqtt is not None and host.mqtt.connects > connects, "reconnected")

    async with Subscriber(
        fleet.broker.port, "wasihost/n1/versions", "wasihost/n1/rollout/+"
    ) as sub:
        await until(
            lambda: bool(sub.json_on("wasihost/n1/versions")) and bool(states(sub, "n1")),
            "versions and the report retained again",
            (host,),
        )
        versions = sub.json_on("wasihost/n1/versions")[-1]
        report = sub.json_on("wasihost/n1/rollout/counter")[-1]
    assert versions["labels"] == ["attic"]
    assert versions["plugins"]["counter"]["version"] == "2.0.0"
    assert report["state"] == "healthy" and report["version"] == "2.0.0"
    assert version(host) == "2.0.0"


async def restart(fleet: Fleet, node: str, **options: Any) -> Host:
    """Stop ``node``'s host as a service stop would, then start a new one on
    the same folders (its deploy dir, state and outbox)."""
    fleet.stops.pop(node).set()
    await fleet.tasks.pop(node)
    old = fleet.hosts.pop(node)
    assert old.deploy is not None
    await old.deploy.wait_idle()
    old.close()
    host = fleet.host(node, **options)
    await fleet.start(node)
    return host


def said(sub: Subscriber, node: str = "n1") -> list[str]:
    """The states ``node`` published while ``sub`` listened (not the retained one)."""
    topic = f"wasihost/{node}/rollout/counter"
    return [
        json.loads(p)["state"] for t, p, retained in sub.messages if t == topic and not retained
    ]


def record(tmp_path: Path, node: str, deploy: Path | None = None) -> dict[str, Any]:
    path = (deploy or tmp_path / node / "deploy") / "counter" / "deployed.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


async def test_a_restart_during_probation_resumes_the_health_gate(
    fleet: Fleet, tmp_path: Path, monotonic: SteppedClock
) -> None:
    """A node that restarts while 2.0.0 is on probation still judges it: here
    2.0.0 never reaches its 1000 polls, and the resumed gate's window runs out
    after the restart, so the node rolls it back. Before, the restart forgot
    the probation and 2.0.0 stayed, never proven."""
    host = fleet.host("n1", gate_polls=1000)
    await fleet.start("n1")
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.deliver("2.0.0")
        await until(lambda: "live" in states(sub, "n1"), "live", (host,))
    assert record(tmp_path, "n1")["probation"]["restarts"] == 0

    host = await restart(fleet, "n1", gate_polls=1000, monotonic=monotonic)
    assert version(host) == "2.0.0"
    assert record(tmp_path, "n1")["probation"]["restarts"] == 1
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await until(lambda: (polls(host) or 0) > 0, "polls", (host,))
        monotonic.advance(host.config.deploy.gate_seconds + 1)
        await until(lambda: "rolled-back" in states(sub, "n1"), "rolled back", (host,))
        report = last(sub, "n1")
    assert report["version"] == "2.0.0" and report["reason"].startswith("only "), report
    await until(lambda: version(host) == "1.0.0", "the previous version", (host,))
    assert not (tmp_path / "n1" / "deploy" / "counter" / "current").exists()


async def test_a_version_on_probation_across_two_restarts_is_rolled_back_at_start(
    fleet: Fleet, tmp_path: Path
) -> None:
    """The host keeps stopping under 2.0.0 before its gate ends: the second
    restart on probation rolls it back before loading it, says so, and the
    delivery still retained on the broker does not install it again."""
    host = fleet.host("n1", gate_polls=1000)
    await fleet.start("n1")
    data = bundle(tmp_path, fleet.key, "2.0.0")
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.deliver(data)
        await until(lambda: "live" in states(sub, "n1"), "live", (host,))
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        host = await restart(fleet, "n1", gate_polls=1000)
        assert version(host) == "2.0.0"
        # The resumed gate says so (and the outbox has sent it before the next stop).
        await until(lambda: "live" in said(sub), "live again", (host,))

    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        host = await restart(fleet, "n1", gate_polls=1000)
        assert version(host) == "1.0.0"  # the configured version loaded, never 2.0.0
        await until(lambda: "rolled-back" in states(sub, "n1"), "rolled back", (host,))
        report = last(sub, "n1")
        assert host.deploy is not None
        await until(lambda: (polls(host) or 0) >= 3, "polls", (host,))
        await host.deploy.wait_idle()  # the retained delivery came and was acted on
    assert report["version"] == "2.0.0", report
    assert "on probation across 2 restarts" in report["reason"], report
    assert version(host) == "1.0.0" and host.plugins["counter"].stats.reloads == 0
    # (The last host's outbox may still send its own "live" first: at least once.)
    after = said(sub)[said(sub).index("rolled-back") :]
    assert set(after) == {"rolled-back"}, said(sub)  # never live again
    assert "probation" not in record(tmp_path, "n1")
    assert not (tmp_path / "n1" / "deploy" / "counter" / "current").exists()


def test_a_record_that_cannot_be_written_at_start_does_not_stop_the_host(
    make_config: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting a restart on probation writes deployed.json; on a full disk the
    host still starts, on the deployed version, and says why it did not count."""
    configured = counter(tmp_path / "plugins" / "counter", "1.0.0")
    deployed = tmp_path / "deploy" / "counter"
    counter(deployed / "current", "2.0.0")
    current = {"version": "2.0.0", "content_hash": hash_plugin(deployed / "current")}
    probation = {"restarts": 0, "since_ms": 1, "source": "node", "previous": None}
    (deployed / "deployed.json").write_text(
        json.dumps({"current": current, "previous": None, "probation": probation})
    )
    config = make_config(
        {"counter": {"source": str(configured), "world": "sensor-plugin"}},
        mqtt={"enabled": True, "outbox_path": str(tmp_path / "outbox.sqlite3")},
        trust={"keys": [generate_key().public.text]},
        deploy={"enabled": True, "dir": str(tmp_path / "deploy")},
    )

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(disk, "write_atomically", full)
    [spec] = plugin_specs(config, load_contract())
    assert deployed_spec(config, spec).source == deployed / "current"
    assert "probation" in record(tmp_path, "n1", deployed.parent)
