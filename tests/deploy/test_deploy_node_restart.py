"""The node side across restarts, of the broker and of the host itself: what a
node says again when its connection comes back, and what it remembers of a
version on probation when it starts again (docs/MQTT.md, "Deploying plugins").

Real Mosquitto and real hosts in-process, driven as in test_deploy_node.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_deploy_node import Fleet, bundle, states, until, version
from tests.mosquitto import Broker
from tests.telemetry.test_mqtt import Subscriber


@pytest.fixture
async def fleet(
    broker: Broker, make_config: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[Fleet]:
    made = Fleet(broker, make_config, tmp_path)
    yield made
    await made.close()


async def test_a_broker_restarted_without_persistence_learns_versions_and_reports_again(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Mosquitto without persistence forgets every retained message when it
    restarts; the node says its versions and its rollout report again on the
    new connection, so a deployer or hub that starts later still sees them."""
    host = fleet.host("n1", labels=("attic",))
    await fleet.start("n1")
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.publish("wasihost/deploy/node/n1/counter", bundle(tmp_path, fleet.key, "2.0.0"))
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
