"""MQTT against a real Mosquitto on loopback: publishing, HA discovery, the last
will, a broker outage, and a hub watching three nodes.

Each test starts its own ``mosquitto`` on a free port (two-line config). Nodes
whose connection must die uncleanly run as real subprocesses and are killed
with SIGKILL, so the broker fires their last will exactly as it would for a
Pi losing power. No test sleeps for a fixed time or asserts on timing: every
wait is for a condition, bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.mosquitto import DEADLINE, MOSQUITTO, Broker, free_port
from tests.telemetry.ha_rules import VERSIONS, validate
from wasihost.boards.sim import SimBoard
from wasihost.config import MqttConfig
from wasihost.host import Host
from wasihost.model import Measurement, Reading
from wasihost.telemetry.fleet import Fleet
from wasihost.telemetry.metrics import Metrics
from wasihost.telemetry.mqtt import MqttPublisher
from wasihost.telemetry.outbox import Outbox
from wasihost.web.server import create_app

pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists(), reason="needs mosquitto (apt-get install mosquitto)"
)


async def until(condition: Callable[[], bool], what: str, seconds: float = DEADLINE) -> None:
    """Wait for ``condition`` (checked every 10 ms), failing after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Subscriber:
    """A test client recording every message on ``topics``."""

    def __init__(self, port: int, *topics: str) -> None:
        self.client = aiomqtt.Client("127.0.0.1", port, identifier=f"test-sub-{id(self)}")
        self.topics = topics
        self.messages: list[tuple[str, bytes, bool]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        await self.client.__aenter__()
        for topic in self.topics:
            await self.client.subscribe(topic, qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # the broker went away
            async for m in self.client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                self.messages.append((m.topic.value, payload, bool(m.retain)))

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):  # the broker may be gone
            await self.client.__aexit__(None, None, None)

    def on(self, topic: str) -> list[bytes]:
        return [payload for t, payload, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(payload) for payload in self.on(topic)]

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        await until(condition, what)


def reading(t_ms: int, temperature: float = 21.5, plugin: str = "dht22") -> Reading:
    measurements = (
        Measurement(plugin, "temperature", temperature, "°C", "temperature", t_ms),
        Measurement(plugin, "humidity", 45.0, "%", "humidity", t_ms),
    )
    return Reading(plugin, "dht22-plugin", t_ms, measurements, {"alarm": False})


def statuses(polls: int, plugin: str = "dht22") -> dict[str, dict[str, Any]]:
    return {
        plugin: {
            "world": "dht22-plugin",
            "state": "running",
            "polls": polls,
            "errors": 0,
            "traps": 0,
            "restarts": 0,
            "reloads": 0,
            "quarantines": 0,
            "last_error": None,
            "last_poll_ms": 1.5,
        }
    }


def settings(port: int, **extra: Any) -> MqttConfig:
    return MqttConfig(enabled=True, host="127.0.0.1", port=port, keepalive_seconds=5, **extra)


@pytest.fixture
async def publisher_factory(tmp_path: Path) -> AsyncIterator[Callable[..., MqttPublisher]]:
    """Publishers running in this event loop; stopped (``offline``) at the end."""
    runs: list[tuple[asyncio.Event, asyncio.Task[None], Outbox]] = []

    def start(
        port: int, node: str = "n1", write_interval_s: float = 0.0, **kwargs: Any
    ) -> MqttPublisher:
        outbox = Outbox(tmp_path / f"{node}-outbox.sqlite3", 1000, write_interval_s)
        options: dict[str, Any] = {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.5}
        options.update(kwargs)
        publisher = MqttPublisher(settings(port), node, 2.0, outbox, **options)
        stop = asyncio.Event()
        runs.append((stop, asyncio.create_task(publisher.run(stop)), outbox))
        return publisher

    yield start
    for stop, task, outbox in runs:
        stop.set()
        await asyncio.wait_for(task, DEADLINE)
        outbox.close()


async def test_publishes_state_health_availability_and_discovery(
    broker: Broker, publisher_factory: Callable[..., MqttPublisher]
) -> None:
    async with Subscriber(broker.port, "wasihost/#", "homeassistant/#") as sub:
        publisher = publisher_factory(broker.port)
        await asyncio.to_thread(publisher.enqueue_cycle, [reading(1000)], statuses(1))
        base = "wasihost/n1"
        temp_config = "homeassistant/sensor/wasihost_n1/dht22_temperature/config"
        traps_config = "homeassistant/sensor/wasihost_n1/dht22_health_traps/config"
        await sub.wait(
            lambda: bool(sub.on(f"{base}/dht22/state") and sub.on(f"{base}/dht22/health")),
            "state and health",
        )
        await sub.wait(lambda: bool(sub.on(temp_config) and sub.on(traps_config)), "discovery")
        assert sub.on(f"{base}/availability") == [b"online"]

        # A fresh publisher (as after a restart) whose first reading lacks two of
        # the world's fields: they are there, null, so HA's templates resolve.
        (state,) = sub.json_on(f"{base}/dht22/state")
        assert state == {
            "timestamp_ms": 1000,
            "temperature": 21.5,
            "humidity": 45.0,
            "dew_point": None,
            "heat_index": None,
            "units": {"temperature": "°C", "humidity": "%"},
            "status": {"alarm": False},
        }
        (health,) = sub.json_on(f"{base}/dht22/health")
        assert health["state"] == "running" and health["polls"] == 1 and health["traps"] == 0

        # Discovery: retained, valid JSON, every key HA needs, templates that resolve.
        configs = {t: p for t, p, _ in sub.messages if t.startswith("homeassistant/")}
        keys = ("temperature", "humidity", "dew_point", "heat_index")
        keys += ("health_state", "health_traps", "health_reloads")
        assert set(configs) == {
            f"homeassistant/sensor/wasihost_n1/dht22_{key}/config" for key in keys
        } | {
            "homeassistant/sensor/wasihost_n1/uptime/config",
            "homeassistant/binary_sensor/wasihost_n1/connectivity/config",
        }
        for topic, payload in configs.items():
            config = json.loads(payload)
            platform = topic.split("/")[1]
            for version in VERSIONS:
                assert validate(platform, config, version) == [], (topic, version)
            for key in ("name", "unique_id", "object_id", "default_entity_id", "state_topic"):
                assert config[key], (topic, key)
            if platform == "sensor":
                assert config["availability_topic"] == f"{base}/availability"
            assert config["device"]["identifiers"] == ["wasihost_n1"]
            assert config["device"]["model"] == "wasihost"
            assert "sw_version" in config["device"]
        temp = json.loads(configs[temp_config])
        assert temp["unique_id"] == "wasihost_n1_dht22_temperature"
        assert temp["state_topic"] == f"{base}/dht22/state"
        assert temp["device_class"] == "temperature"
        assert temp["unit_of_measurement"] == "°C"
        assert temp["state_class"] == "measurement"
        assert temp["expire_after"] == 60
        field = re.fullmatch(
            r"\{\{ value_json\.(\w+) \| default\(None\) \}\}", temp["value_template"]
        )
        assert field is not None and state[field.group(1)] == 21.5
        traps = json.loads(configs[traps_config])
        assert traps["entity_category"] == "diagnostic"
        assert traps["state_topic"] == f"{base}/dht22/health"
        assert traps["value_template"] == "{{ value_json.traps | default(None) }}"
        # The node's uptime, published on connect
        (node,) = sub.json_on(f"{base}/node")
        assert node["uptime_s"] >= 0 and node["version"]

        # Home Assistant restarting announces itself: discovery goes out again.
        before = len(sub.on(temp_config))
        await sub.client.publish("homeassistant/status", b"online")
        await sub.wait(lambda: len(sub.on(temp_config)) > before, "discovery re-published")

    # A retained discovery config and availability reach a late subscriber.
    async with Subscriber(broker.port, "wasihost/n1/availability", temp_config) as late:
        await late.wait(lambda: bool(late.on(temp_config)), "retained discovery")
        assert late.on("wasihost/n1/availability") == [b"online"]


async def test_stop_publishes_offline(
    broker: Broker, publisher_factory: Callable[..., MqttPublisher], tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    publisher = MqttPublisher(settings(broker.port), "n1", 2.0, outbox)
    stop = asyncio.Event()
    async with Subscriber(broker.port, "wasihost/n1/availability") as sub:
        task = asyncio.create_task(publisher.run(stop))
        await sub.wait(lambda: sub.on("wasihost/n1/availability") == [b"online"], "online")
        stop.set()
        await asyncio.wait_for(task, DEADLINE)
        await sub.wait(lambda: sub.on("wasihost/n1/availability")[-1] == b"offline", "offline")
    assert not publisher.connected
    outbox.close()


# A node in its own process, enqueuing a cycle every 0.2 s until killed.
NODE = """
import asyncio, sys
from pathlib import Path
from wasihost.boards.sim import SimBoard
from wasihost.config import MqttConfig
from wasihost.model import Measurement, Reading
from wasihost.telemetry.mqtt import MqttPublisher
from wasihost.telemetry.outbox import Outbox

async def main(port, node, folder):
    settings = MqttConfig(enabled=True, host="127.0.0.1", port=port, keepalive_seconds=5)
    outbox = Outbox(Path(folder) / (node + ".sqlite3"), 1000)
    publisher = MqttPublisher(settings, node, 0.2, outbox, backoff_initial_seconds=0.05)
    task = asyncio.create_task(publisher.run(asyncio.Event()))
    t = 0
    while True:
        t += 200
        m = Measurement("dht22", "temperature", 20.0 + t / 1e4, "°C", "temperature", t)
        reading = Reading("dht22", "dht22-plugin", t, (m,), {})
        status = {"state": "running", "polls": t // 200}
        await asyncio.to_thread(publisher.enqueue_cycle, [reading], {"dht22": status})
        await asyncio.sleep(0.2)

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
"""


@pytest.fixture
def spawn_node(tmp_path: Path) -> Iterator[Callable[[int, str], subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(port: int, node: str) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-c", NODE, str(port), node, str(tmp_path)]
        processes.append(subprocess.Popen(args))
        return processes[-1]

    yield spawn
    for process in processes:
        process.kill()
        process.wait(DEADLINE)


async def test_last_will_marks_a_killed_node_offline(
    broker: Broker, spawn_node: Callable[[int, str], subprocess.Popen[bytes]]
) -> None:
    topic = "wasihost/n1/availability"
    async with Subscriber(broker.port, topic, "wasihost/n1/dht22/state") as sub:
        node = spawn_node(broker.port, "n1")
        await sub.wait(lambda: bool(sub.on("wasihost/n1/dht22/state")), "a state")
        assert sub.on(topic) == [b"online"]
        node.kill()  # no DISCONNECT: the broker sees the socket die and sends the will
        await sub.wait(lambda: sub.on(topic)[-1:] == [b"offline"], "the last will")


@pytest.mark.parametrize("write_interval_s", [0.0, 60.0], ids=["every-put", "a-Pi"])
async def test_outage_loses_nothing_and_never_blocks_the_cycle(
    broker: Broker, publisher_factory: Callable[..., MqttPublisher], write_interval_s: float
) -> None:
    """With the outbox's write interval of a Pi, the same, and a broker that keeps
    up plus an outage shorter than the interval never touch the disk."""
    # Reconnect attempts wait for this gate instead of real time, so the test
    # decides when the publisher may come back: after its subscriber is ready.
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        await gate.wait()

    publisher = publisher_factory(broker.port, sleep=gated_sleep, write_interval_s=write_interval_s)
    state_topic = "wasihost/n1/dht22/state"
    async with Subscriber(broker.port, state_topic) as sub:
        await asyncio.to_thread(publisher.enqueue_cycle, [reading(0)], statuses(0))
        await sub.wait(lambda: len(sub.on(state_topic)) == 1, "the first cycle")
        await until(lambda: publisher.outbox.depth() == 0, "the outbox to drain")

    broker.stop()
    await until(lambda: not publisher.connected, "the publisher to notice")
    for cycle in range(1, 6):  # five cycles during the outage
        enqueue = asyncio.to_thread(
            publisher.enqueue_cycle, [reading(cycle * 1000)], statuses(cycle)
        )
        await asyncio.wait_for(enqueue, DEADLINE)  # returns although no broker is up
    assert not publisher.connected
    assert publisher.outbox.depth() == 10  # 5 states + 5 health, waiting

    broker.start()
    async with Subscriber(broker.port, state_topic, "wasihost/n1/availability") as sub:
        gate.set()
        await until(lambda: publisher.outbox.depth() == 0, "the backlog to drain")
        # A last cycle after the backlog: one connection delivers in order, so
        # once it arrives any duplicate of the backlog would have arrived too.
        await asyncio.to_thread(publisher.enqueue_cycle, [reading(6000)], statuses(6))
        await sub.wait(lambda: len(sub.on(state_topic)) >= 6, "backlog and the new cycle")
        await until(lambda: publisher.outbox.depth() == 0, "the last cycle to drain")
        stamps = [doc["timestamp_ms"] for doc in sub.json_on(state_topic)]
        assert stamps == [1000, 2000, 3000, 4000, 5000, 6000]  # all, in order, none twice
        assert sub.on("wasihost/n1/availability") == [b"online"]
    stats = publisher.stats()
    assert stats.reconnects == 1 and stats.outbox_depth == 0 and stats.outbox_dropped == 0
    assert stats.published == 2 + 10 + 2
    with sqlite3.connect(publisher.outbox.path) as db:
        rows_ever = db.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence").fetchone()[0]
    assert rows_ever == (14 if write_interval_s == 0 else 0)


async def test_hub_sees_three_nodes_and_a_killed_one_goes_offline(
    broker: Broker,
    publisher_factory: Callable[..., MqttPublisher],
    spawn_node: Callable[[int, str], subprocess.Popen[bytes]],
) -> None:
    fleet = Fleet("wasihost", offline_after_seconds=60)
    hub = publisher_factory(
        broker.port, "hub", subscriptions=fleet.subscriptions, on_message=fleet.handle
    )
    nodes = {name: spawn_node(broker.port, name) for name in ("n1", "n2", "n3")}

    def online() -> set[str]:
        return {n["node"] for n in fleet.to_json()["nodes"] if n["online"] and n["plugins"]}

    await until(lambda: online() == {"n1", "n2", "n3"}, "three nodes online with readings")
    assert hub.connected
    doc = fleet.to_json()
    n1 = next(n for n in doc["nodes"] if n["node"] == "n1")
    (temperature,) = n1["plugins"]["dht22"]["measurements"]
    assert temperature["name"] == "temperature" and temperature["unit"] == "°C"
    assert n1["availability"] == "online" and n1["last_seen_ms"] is not None

    nodes["n2"].kill()
    await until(lambda: online() == {"n1", "n3"}, "n2 offline after its last will")
    n2 = next(n for n in fleet.to_json()["nodes"] if n["node"] == "n2")
    assert n2["availability"] == "offline" and not n2["online"]
    assert n2["plugins"]["dht22"]["measurements"]  # last readings kept, shown as offline


async def test_a_real_host_cycle_through_mqtt_and_metrics(
    broker: Broker,
    board: SimBoard,
    seed_host: Host,
    publisher_factory: Callable[..., MqttPublisher],
) -> None:
    """The seed plugins on the simulated board, wired as Host.after_cycle does."""
    board.set_dht22(21.5, 45.0)
    metrics = Metrics("n1")
    async with Subscriber(broker.port, "wasihost/#", "homeassistant/#") as sub:
        publisher = publisher_factory(broker.port)
        readings = await seed_host.cycle.run_once()
        statuses = seed_host.statuses()
        await asyncio.to_thread(publisher.enqueue_cycle, readings, statuses)
        metrics.update(readings, statuses, seed_host.state.last_cycle_ms, mqtt=publisher.stats())
        plugins = {r.plugin for r in readings}
        assert plugins == {"dht22", "bme680", "pi-monitor"}
        await sub.wait(
            lambda: (
                all(sub.on(f"wasihost/n1/{p}/state") for p in plugins)
                and all(sub.on(f"wasihost/n1/{p}/health") for p in statuses)
            ),
            "every plugin's state and health",
        )
        gas = "homeassistant/sensor/wasihost_n1/bme680_gas_resistance/config"
        iaq = "homeassistant/sensor/wasihost_n1/bme680_iaq/config"
        await sub.wait(lambda: bool(sub.on(gas) and sub.on(iaq)), "BME680 discovery")
        assert "device_class" not in json.loads(sub.on(gas)[0])
        assert json.loads(sub.on(iaq)[0])["device_class"] == "aqi"
        (bme680,) = sub.json_on("wasihost/n1/bme680/state")
        expected = {
            m.name: m.value for r in readings if r.plugin == "bme680" for m in r.measurements
        }
        assert {k: bme680[k] for k in expected} == expected
        assert sub.on("wasihost/n1/dashboard/health")  # the renderer's health too
    text = metrics.render().decode()
    assert 'wasihost_measurement{field="pressure",node="n1",plugin="bme680",unit="hPa"}' in text
    assert 'wasihost_poll_duration_seconds_count{node="n1",plugin="dht22"} 1.0' in text


async def test_three_hosts_and_a_hub_through_the_host_wiring(
    broker: Broker, make_config: Callable[..., Any], built: dict[str, Path]
) -> None:
    """Real Hosts, configured as host.toml would configure them: /api/fleet on the hub
    shows the three nodes with their readings; a node that stops goes offline;
    /metrics parses. (The last will on a killed process is tested above.)"""
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": broker.port, "keepalive_seconds": 5}

    def host(node: str, **extra: Any) -> Host:
        config = make_config(
            {"dht22": {"led": 1}},
            node={"id": node},
            mqtt={**mqtt, "outbox_path": str(broker.config.parent / f"{node}.sqlite3")},
            history={"enabled": False},
            state={"dir": str(broker.config.parent / f"{node}-state")},
            **extra,
        )
        board = SimBoard(seed=len(node))
        board.set_dht22(20.0 + len(node), 40.0)
        made = Host(config, board=board)
        made.load_plugins()
        return made

    hub = host("hub", fleet={"role": "hub", "offline_after_seconds": 60})
    nodes = {name: host(name) for name in ("n1", "n2", "n3")}
    stops = {name: asyncio.Event() for name in [*nodes, "hub"]}
    everyone = {**nodes, "hub": hub}
    tasks = {name: asyncio.create_task(h.mqtt.run(stops[name])) for name, h in everyone.items()
             if h.mqtt is not None}  # fmt: skip
    try:

        async def cycle() -> None:
            for h in everyone.values():
                await h.after_cycle(await h.cycle.run_once())

        async with TestClient(TestServer(create_app(hub))) as client:

            async def fleet() -> dict[str, Any]:
                return dict(await (await client.get("/api/fleet")).json())

            seen: dict[str, Any] = {}

            async def refresh() -> None:
                seen.update(await fleet())

            async def online() -> set[str]:
                await refresh()
                return {n["node"] for n in seen["nodes"] if n["online"] and n["plugins"]}

            for _ in range(200):
                await cycle()
                if {"n1", "n2", "n3"} <= await online():
                    break
                await asyncio.sleep(0.05)
            assert {"n1", "n2", "n3"} <= await online()
            n1 = next(n for n in seen["nodes"] if n["node"] == "n1")
            assert n1["plugins"]["dht22"]["measurements"][0]["value"] == 22.0

            stops["n2"].set()  # n2 stops: it says offline on its way out
            await tasks.pop("n2")
            for _ in range(200):
                if "n2" not in await online():
                    break
                await asyncio.sleep(0.05)
            assert "n2" not in await online()
            assert {"n1", "n3"} <= await online()

            response = await client.get("/metrics")
            assert response.status == 200
            families = {f.name for f in text_string_to_metric_families(await response.text())}
            assert {"wasihost_measurement", "wasihost_poll_duration_seconds"} <= families
    finally:
        for event in stops.values():
            event.set()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for h in everyone.values():
            h.close()


async def test_reconnect_backoff_is_capped_and_jittered(tmp_path: Path) -> None:
    """Nothing listens on the port: every attempt fails at once and waits the
    backoff, recorded instead of slept. The defaults: doubling from 0.5 s, capped
    at 10 s (a node is back at most 12 s after its broker), each wait ±20 %."""
    delays: list[float] = []
    stop = asyncio.Event()

    async def record(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 8:
            stop.set()

    outbox = Outbox(tmp_path / "outbox.sqlite3", 10)
    publisher = MqttPublisher(settings(free_port()), "n1", 2.0, outbox, sleep=record)
    await asyncio.wait_for(publisher.run(stop), DEADLINE)
    outbox.close()
    nominal = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert len(delays) == len(nominal)
    for delay, expected in zip(delays, nominal, strict=True):
        assert 0.8 * expected <= delay <= 1.2 * expected
