"""A component bundle (a ``.wasm`` plugin, not a source plugin) over the real
broker into a real host: delivered, installed, live, healthy, its state
carried (docs/MQTT.md, "Deploying plugins").

The new version is the bme680 component the session built, with a custom
section appended: other bytes and another content hash, the same code and
the same state interface, so the carried state can be checked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.deploy.test_deploy_node import Fleet, last, states
from tests.mosquitto import Broker
from tests.telemetry.test_mqtt import Subscriber
from wasihost.boards.sim import SimBoard
from wasihost.bundle.create import create_bundle, hash_plugin
from wasihost.host import Host

# Compiling a 20 MB component that no cache has seen, on a loaded 2-core box.
DEADLINE = 300.0


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def with_custom_section(wasm: bytes, name: bytes, payload: bytes) -> bytes:
    """``wasm`` with a custom section (id 0) appended: valid in a component,
    ignored by the runtime, so the code is the same and the bytes are not."""
    body = leb128(len(name)) + name + payload
    return wasm + b"\x00" + leb128(len(body)) + body


async def until(condition: Callable[[], bool], what: str, host: Host) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await host.after_cycle(await host.cycle.run_once())
        await asyncio.sleep(0.05)


async def test_a_component_bundle_goes_live_and_healthy_with_its_state_carried(
    broker: Broker, make_config: Callable[..., Any], built: dict[str, Path], tmp_path: Path
) -> None:
    fleet = Fleet(broker, make_config, tmp_path)
    config = fleet.config("n1", {"bme680": {"led": 2}})
    host = Host(config, board=SimBoard(seed=7))
    fleet.hosts["n1"] = host
    try:
        host.load_plugins()
        assert host.deploy is not None
        host.deploy.settle_seconds = 0.05
        await fleet.start("n1")
        plugin = host.plugins["bme680"]
        await until(lambda: plugin.stats.polls >= 2, "two polls", host)

        v2 = tmp_path / "bundles" / "bme680.wasm"
        v2.parent.mkdir()
        v2.write_bytes(with_custom_section(built["bme680"].read_bytes(), b"test", b"2.0.0"))
        data = create_bundle(v2, fleet.key, version="2.0.0")
        content = hash_plugin(v2)
        assert content != plugin.loaded_content

        topics = ("wasihost/+/rollout/+", "wasihost/+/versions")
        async with Subscriber(broker.port, *topics) as sub:
            await fleet.publish("wasihost/deploy/node/n1/bme680", data)
            await until(lambda: "healthy" in states(sub, "n1", "bme680"), "healthy", host)
            report = last(sub, "n1", "bme680")
            await until(
                lambda: any(
                    v["plugins"]["bme680"]["version"] == "2.0.0"
                    for v in sub.json_on("wasihost/n1/versions")
                ),
                "versions published",
                host,
            )
        seen = states(sub, "n1", "bme680")
        assert seen[:3] == ["received", "staging", "live"] and seen[-1] == "healthy", seen
        assert report["version"] == "2.0.0" and report["content_hash"] == content
        assert report["polls_ok"] >= 3 and report["reason"] is None
        # The deployed component is what runs, and the state went over with it.
        deployed = tmp_path / "n1" / "deploy" / "bme680" / "current" / "plugin.wasm"
        assert deployed.read_bytes() == v2.read_bytes()
        assert plugin.spec.wasm == deployed
        assert plugin.loaded_content == content
        assert plugin.stats.last_reload is not None
        assert plugin.stats.last_reload["state"] == "carried"
        assert plugin.stats.traps == 0
    finally:
        await fleet.close()
