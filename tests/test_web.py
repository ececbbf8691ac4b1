"""The HTTP surface, through a real aiohttp server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host
from wasihost.web.server import create_app


@pytest.fixture
async def client(seed_host: Host) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(seed_host))) as test_client:
        yield test_client


async def test_readings_return_the_values_polled(
    client: TestClient, seed_host: Host, board: SimBoard
) -> None:
    board.set_dht22(19.5, 61.0)
    await seed_host.cycle.run_once()
    response = await client.get("/api/readings")
    assert response.status == 200
    body = await response.json()
    dht = {m["name"]: m["value"] for m in body["readings"]["dht22"]["measurements"]}
    assert dht["temperature"] == 19.5
    assert dht["humidity"] == 61.0
    assert body["cycle"] == 1
    assert len(body["leds"]) == 11


async def test_plugins_report_health(client: TestClient, seed_host: Host) -> None:
    await seed_host.cycle.run_once()
    body = await (await client.get("/api/plugins")).json()
    assert set(body) == {"pi-monitor", "dht22", "bme680", "dashboard"}
    assert body["dht22"]["state"] == "running"
    assert body["dht22"]["polls"] == 1
    assert body["dht22"]["last_poll_ms"] > 0
    assert {"errors", "traps", "last_error"} <= set(body["dht22"])


async def test_dashboard_is_rendered_by_the_plugin(
    client: TestClient, seed_host: Host, board: SimBoard
) -> None:
    board.set_dht22(24.5, 50.0)
    await seed_host.cycle.run_once()
    response = await client.get("/")
    assert response.status == 200
    assert "Content-Security-Policy" in response.headers
    page = await response.text()
    assert "<!doctype html>" in page.lower()
    assert "24.5" in page
    assert seed_host.plugins["dashboard"].stats.polls == 1


async def test_dashboard_falls_back_to_raw_readings(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
) -> None:
    host = make_host(make_config({"dht22": {"led": 1}}))  # no dashboard plugin
    board.set_dht22(20.5, 40.0)
    await host.cycle.run_once()
    async with TestClient(TestServer(create_app(host))) as client:
        response = await client.get("/")
        assert response.status == 200
        page = await response.text()
    assert "Dashboard unavailable: no dashboard plugin is running" in page
    assert "20.5" in page


async def test_healthz(client: TestClient, seed_host: Host) -> None:
    await seed_host.cycle.run_once()
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["plugins_running"] == 4
