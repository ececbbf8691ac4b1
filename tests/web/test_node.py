"""The web's view of the host: the ``Node`` protocol (web/node.py).

The host satisfies it structurally, which mypy checks on this file; the web
then runs against anything that does, such as the small fake here, so the
web's own rules are tested without plugins, a board or a database.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from wasihost.boards.base import BoardProblem
from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig, WebConfig
from wasihost.errors import ConfigError
from wasihost.host import Host
from wasihost.runtime.plugin import Plugin
from wasihost.state import AppState
from wasihost.telemetry.fleet import Fleet
from wasihost.telemetry.history import History
from wasihost.telemetry.metrics import Metrics
from wasihost.telemetry.stream import StateStream
from wasihost.web.node import Node
from wasihost.web.server import create_app, serve

ROOT = Path(__file__).resolve().parents[2]

Client = TestClient[web.Request, web.Application]


class FakeNode:
    """A node with no plugins, a simulated board and no history or fleet."""

    def __init__(self, state: AppState) -> None:
        self.web_config = WebConfig()
        self.state = state
        self.plugins: dict[str, Plugin] = {}
        self.dashboard: Plugin | None = None
        self.board = SimBoard(seed=1)
        self.stream = StateStream()
        self.history: History | None = None
        self.metrics = Metrics("fake")
        self.fleet: Fleet | None = None
        self.history_unsaved = 3
        self.history_dropped = 7
        self.history_problem: str | None = None
        self.snapshot_problem: str | None = None
        self.outbox_problem: str | None = None
        self.problems = [BoardProblem("dht22", "DHT22", "no answer", "check its wiring")]
        self.plugin_statuses: dict[str, dict[str, Any]] = {}

    def snapshot_json(self) -> str:
        return json.dumps({**self.state.to_json(), "plugins": self.statuses()})

    def statuses(self) -> dict[str, dict[str, Any]]:
        return self.plugin_statuses

    def board_problems(self) -> list[BoardProblem]:
        return self.problems

    def running(self) -> list[str]:
        return []

    async def reload_plugin(self, name: str) -> bool:
        raise AssertionError("the fake has no plugins to reload")


def as_node(node: Host | FakeNode) -> Node:
    """Where mypy checks that both are nodes (see the first test)."""
    return node


def test_the_host_and_the_fake_are_nodes_to_mypy() -> None:
    """mypy --strict with the project's settings on this file, so ``as_node``
    above fails to type-check if the host (or the fake) stops being a Node."""
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", os.devnull, __file__],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_host_and_the_fake_are_nodes_at_run_time(
    make_config: Callable[..., HostConfig], make_host: Callable[[HostConfig], Host]
) -> None:
    host = make_host(make_config({"dht22": {"led": 1}}))
    assert isinstance(host, Node)
    assert isinstance(FakeNode(AppState("fake", "sim", 2.0)), Node)
    assert not isinstance(object(), Node)


def state_at(age_s: float | None, cycle: int = 5, wall_age_s: float | None = None) -> AppState:
    """A state whose last cycle ended ``age_s`` ago (None: no cycle yet); its
    wall-clock stamp says ``wall_age_s`` ago (default: the same, no clock step)."""
    if age_s is None:
        return AppState("fake", "sim", 2.0, cycle=cycle)
    wall_age_s = age_s if wall_age_s is None else wall_age_s
    stamp = int((time.time() - wall_age_s) * 1000)
    ended = time.monotonic() - age_s
    return AppState("fake", "sim", 2.0, cycle=cycle, timestamp_ms=stamp, completed_at=ended)


@pytest.fixture
def node() -> FakeNode:
    return FakeNode(state_at(1.0))


@pytest.fixture
async def client(node: FakeNode) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(node))) as test_client:
        yield test_client


async def test_healthz_reports_what_the_node_says(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert (body["status"], body["reasons"]) == ("ok", [])
    assert (body["cycle"], body["plugins"], body["plugins_running"]) == (5, 0, 0)
    assert (body["history_unsaved"], body["history_dropped"]) == (3, 7)
    assert body["board"]["kind"] == "sim"
    assert [p["device"] for p in body["board"]["problems"]] == ["dht22"]


@pytest.mark.parametrize(
    ("age_s", "cycle", "status", "code"),
    [
        (None, 0, "starting", 200),  # before the first cycle: not a failure
        (3 * 2.0 + 4, 5, "ok", 200),  # three intervals plus five seconds of grace
        (3 * 2.0 + 6, 5, "stale", 503),  # past it: a supervisor may restart the host
    ],
)
async def test_healthz_is_stale_three_intervals_after_the_last_cycle(
    client: Client, node: FakeNode, age_s: float | None, cycle: int, status: str, code: int
) -> None:
    node.state = state_at(age_s, cycle)
    response = await client.get("/healthz")
    assert response.status == code
    assert (await response.json())["status"] == status


async def test_healthz_is_degraded_but_200_while_history_is_not_saved(
    client: Client, node: FakeNode
) -> None:
    """A full disk: the operator must see it and why, but a supervisor must not
    restart the host for it (a restart frees no space and loses what waits)."""
    node.history_problem = "history not saved for 60 s (4 attempts): database or disk is full"
    response = await client.get("/healthz")
    body = await response.json()
    assert (response.status, body["status"]) == (200, "degraded")
    assert body["reasons"] == [node.history_problem]
    node.state = state_at(3 * 2.0 + 6)  # a wedged host with a full disk is stale: 503
    response = await client.get("/healthz")
    body = await response.json()
    assert (response.status, body["status"]) == (503, "stale")
    assert body["reasons"][0].startswith("no poll cycle has completed for 12 s")
    assert body["reasons"][1] == node.history_problem


async def test_healthz_is_degraded_while_state_snapshots_are_not_saved(
    client: Client, node: FakeNode
) -> None:
    node.snapshot_problem = "state snapshots not saved for 600 s (60 failed): No space left"
    response = await client.get("/healthz")
    body = await response.json()
    assert (response.status, body["status"]) == (200, "degraded")
    assert body["reasons"] == [node.snapshot_problem]


async def test_healthz_is_degraded_while_mqtt_messages_are_lost(
    client: Client, node: FakeNode
) -> None:
    node.outbox_problem = "MQTT messages not queued for 60 s (120 lost): database or disk is full"
    response = await client.get("/healthz")
    body = await response.json()
    assert (response.status, body["status"]) == (200, "degraded")
    assert body["reasons"] == [node.outbox_problem]


async def test_healthz_is_degraded_while_a_plugin_is_not_healthy(
    client: Client, node: FakeNode
) -> None:
    """The health the host gives each plugin (Host.statuses, the rule the dashboard's
    table shows): one that never produced a reading, or is not running, is a reason;
    an ok one is not, and a long error message is cut."""
    node.plugin_statuses = {
        "dht22": {"state": "running", "health": "ok", "health_reason": None},
        "sht31": {
            "state": "running",
            "health": "failing",
            "health_reason": "has not produced a reading: I2C address 0x45: no device answered",
        },
        "bme680": {
            "state": "quarantined",
            "health": "unavailable",
            "health_reason": "is quarantined after repeated traps: " + "x" * 1000,
        },
    }
    response = await client.get("/healthz")
    body = await response.json()
    assert (response.status, body["status"]) == (200, "degraded")
    assert body["reasons"][0] == (
        "plugin sht31 has not produced a reading: I2C address 0x45: no device answered"
    )
    assert body["reasons"][1].startswith("plugin bme680 is quarantined after repeated traps: x")
    assert len(body["reasons"]) == 2 and len(body["reasons"][1]) == 300


async def test_healthz_counts_the_age_on_the_monotonic_clock(
    client: Client, node: FakeNode
) -> None:
    """A wedged host whose wall clock stepped back an hour since its last cycle
    (NTP) must still be stale; one whose clock jumped forward is still fine."""
    node.state = state_at(60.0, wall_age_s=60.0 - 3600)
    response = await client.get("/healthz")
    assert (response.status, (await response.json())["status"]) == (503, "stale")
    node.state = state_at(1.0, wall_age_s=1.0 + 3600)
    response = await client.get("/healthz")
    assert (response.status, (await response.json())["status"]) == (200, "ok")


async def test_history_and_fleet_are_404_when_the_node_has_none(client: Client) -> None:
    response = await client.get("/api/history", params={"plugin": "dht22", "field": "t"})
    assert response.status == 404
    assert (await response.json())["error"] == "history is disabled ([history] enabled)"
    response = await client.get("/api/fleet")
    assert response.status == 404
    assert "not a hub" in (await response.json())["error"]


async def test_a_stream_opened_before_any_cycle_starts_with_the_state_now(
    client: Client, node: FakeNode
) -> None:
    response = await client.get("/api/stream")
    assert await response.content.readline() == b"event: state\n"
    data = (await response.content.readline()).decode().removeprefix("data: ")
    assert json.loads(data) == json.loads(node.snapshot_json())
    node.stream.close()
    response.close()


async def test_a_port_that_cannot_be_bound_stops_the_node(node: FakeNode) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        node.web_config = WebConfig(host="127.0.0.1", port=taken.getsockname()[1])
        stop = asyncio.Event()
        with pytest.raises(ConfigError, match=r"web: cannot listen on 127\.0\.0\.1:"):
            await serve(node, stop)
    assert stop.is_set()
