"""The HTTP surface, through a real aiohttp server on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host
from wasihost.web import shell
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
    response = await client.get(shell.FRAME_URL)
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == shell.PAGE_CSP
    assert response.headers["X-DNS-Prefetch-Control"] == "off"
    page = await response.text()
    assert "<!doctype html>" in page.lower()
    assert "24.5" in page
    assert seed_host.plugins["dashboard"].stats.polls == 1


async def test_the_shell_frames_the_plugin_page_in_a_sandbox(
    client: TestClient, seed_host: Host
) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == shell.SHELL_CSP
    assert response.headers["X-DNS-Prefetch-Control"] == "off"
    page = await response.text()
    assert f'<iframe id="dashboard" src="{shell.FRAME_URL}" sandbox="allow-scripts"' in page
    assert seed_host.plugins["dashboard"].stats.polls == 0  # the shell is not rendered
    for directive in ("frame-src 'self'", "frame-ancestors 'none'", "default-src 'none'"):
        assert directive in shell.SHELL_CSP
    for directive in ("sandbox allow-scripts;", "connect-src 'none'", "form-action 'none'"):
        assert directive in shell.PAGE_CSP
    assert "allow-same-origin" not in shell.PAGE_CSP + shell.SHELL


async def test_a_browser_opening_the_frame_page_itself_is_sent_to_the_shell(
    client: TestClient,
) -> None:
    response = await client.get(
        "/dashboard", headers={"Sec-Fetch-Dest": "document"}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/"


async def test_a_browser_that_does_not_say_where_the_page_goes_needs_the_frames_key(
    client: TestClient,
) -> None:
    """Plain HTTP to a LAN address: no Sec-Fetch-Dest. Without the key only the
    shell's frame has, the plugin's page would run as a top-level document."""
    for target in (shell.FRAME_PATH, f"{shell.FRAME_PATH}?key=guessed"):
        response = await client.get(target, allow_redirects=False)
        assert response.status == 303, target
        assert response.headers["Location"] == "/"
    assert (await client.get(shell.FRAME_URL, allow_redirects=False)).status == 200


async def test_dashboard_falls_back_to_raw_readings(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
) -> None:
    host = make_host(make_config({"dht22": {"led": 1}}))  # no dashboard plugin
    board.set_dht22(20.5, 40.0)
    await host.cycle.run_once()
    async with TestClient(TestServer(create_app(host))) as client:
        response = await client.get(shell.FRAME_URL)
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == shell.PAGE_CSP
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


async def test_healthz_and_the_plugin_table_agree_on_a_plugin_that_never_worked(
    make_config: Callable[..., HostConfig], make_host: Callable[[HostConfig], Host]
) -> None:
    """An SHT31 configured at an address where no chip answers is running, yet has
    never produced a reading: /healthz is degraded and says why, and the status the
    dashboard renders its health row from says failing, by the same rule."""
    sht31 = {
        "world": "sensor-plugin",
        "grants": {"i2c_addresses": ["0x45"]},
        "settings": {"i2c_address": 0x45},
    }
    host = make_host(make_config({"dht22": {"led": 1}, "sht31": sht31}))
    for _ in range(3):  # fewer failed polls are a sensor's odd miss, not yet failing
        await host.cycle.run_once()
    async with TestClient(TestServer(create_app(host))) as client:
        body = await (await client.get("/healthz")).json()
        statuses = await (await client.get("/api/plugins")).json()
    assert statuses["sht31"]["state"] == "running"
    assert statuses["sht31"]["health"] == "failing"
    reason = statuses["sht31"]["health_reason"]
    assert reason.startswith("has not produced a reading: SHT31 at 0x45"), reason
    assert (statuses["dht22"]["health"], statuses["dht22"]["health_reason"]) == ("ok", None)
    assert body["status"] == "degraded"
    assert body["reasons"] == [f"plugin sht31 {statuses['sht31']['health_reason']}"]
    assert "no device answered" in body["reasons"][0]


async def test_history_endpoint_returns_the_series(
    client: TestClient, seed_host: Host, board: SimBoard
) -> None:
    board.set_dht22(18.5, 50.0)
    await seed_host.after_cycle(await seed_host.cycle.run_once())
    response = await client.get("/api/history", params={"plugin": "dht22", "field": "temperature"})
    assert response.status == 200
    body = await response.json()
    assert body["unit"] == "°C"
    assert [v for _, v in body["points"]] == [18.5]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "plugin and field are required"),
        ({"plugin": "dht22", "field": "temperature", "since": "yesterday"}, 400, "since:"),
        ({"plugin": "dht22", "field": "temperature", "points": "1"}, 400, "points:"),
        ({"plugin": "dht22", "field": "temperature", "since": "10", "until": "5"}, 400, "after"),
        ({"plugin": "dht22", "field": "temperature", "resolution": "1d"}, 400, "resolution must"),
        (
            {
                "plugin": "dht22",
                "field": "temperature",
                "since": "0",
                "until": str(49 * 3_600_000),
                "resolution": "raw",
            },
            400,
            "raw samples are served for ranges up to 48 h",
        ),
    ],
)
async def test_history_endpoint_rejects_bad_queries(
    client: TestClient, params: dict[str, str], status: int, message: str
) -> None:
    response = await client.get("/api/history", params=params)
    assert response.status == status
    assert message in (await response.json())["error"]


async def test_history_endpoint_serves_statistics(
    client: TestClient, seed_host: Host, board: SimBoard
) -> None:
    """An hourly row is ``[bucket start, mean, min, max]``; a range of a day holding
    only seconds of samples is answered from them, ``[t, value]``."""
    assert seed_host.history is not None
    for value in (18.0, 19.0, 23.0):
        board.set_dht22(value, 50.0)
        await seed_host.after_cycle(await seed_host.cycle.run_once())
    now = max(t for t, _ in seed_host.history.query("dht22", "temperature", 0, 2**52).points)
    params = {"plugin": "dht22", "field": "temperature", "until": str(now)}
    year = {**params, "since": str(now - 365 * 86_400_000), "resolution": "1h"}
    body = await (await client.get("/api/history", params=year)).json()
    assert body["resolution"] == "1h"
    [[start, mean, low, high]] = body["points"]
    assert start % 3_600_000 == 0 and start <= now < start + 3_600_000
    assert (mean, low, high) == (20.0, 18.0, 23.0)
    day = {**params, "since": str(now - 86_400_000)}
    body = await (await client.get("/api/history", params=day)).json()
    assert body["resolution"] == "raw"
    assert [v for _, v in body["points"]] == [18.0, 19.0, 23.0]


async def test_history_of_an_unknown_series_is_empty(client: TestClient) -> None:
    response = await client.get("/api/history", params={"plugin": "nope", "field": "x"})
    assert response.status == 200
    assert (await response.json())["points"] == []


async def test_stream_sends_current_state_then_each_cycle(
    client: TestClient, seed_host: Host
) -> None:
    await seed_host.after_cycle(await seed_host.cycle.run_once())
    response = await client.get("/api/stream")
    assert response.headers["Content-Type"] == "text/event-stream"

    async def next_event() -> dict[str, object]:
        lines = []
        while (line := await response.content.readline()) != b"\n":
            lines.append(line.decode())
        assert lines[0] == "event: state\n"
        return json.loads(lines[1].removeprefix("data: "))

    assert (await next_event())["cycle"] == 1
    await seed_host.after_cycle(await seed_host.cycle.run_once())
    event = await next_event()
    assert event["cycle"] == 2
    assert "dht22" in event["readings"] and "dashboard" in event["plugins"]
    seed_host.stream.close()
    response.close()
