"""Operator endpoints: bearer token, validated bodies, reset and reload."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host
from wasihost.web.server import create_app

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def host(
    make_config: Callable[..., HostConfig], make_host: Callable[[HostConfig], Host]
) -> Host:
    config = make_config(
        {"dht22": {"led": 1}, "counter": {"built": "chaos", "world": "dht22-plugin"}},
        web={"enabled": False, "token": TOKEN},
    )
    return make_host(config)


@pytest.fixture
async def client(host: Host, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    monkeypatch.delenv("WASIHOST_TOKEN", raising=False)
    async with TestClient(TestServer(create_app(host))) as test_client:
        yield test_client


async def test_state_changing_endpoints_need_the_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.post("/api/test/fan", json={"on": True}, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = await client.post("/api/test/fan", json={"on": True}, headers=AUTH)
    assert response.status == 200
    assert await response.json() == {"fan_on": True}


async def test_without_a_token_they_are_disabled(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WASIHOST_TOKEN", raising=False)
    host = make_host(make_config({"dht22": {"led": 1}}))
    async with TestClient(TestServer(create_app(host))) as client:
        response = await client.post("/api/test/buzzer", headers=AUTH)
        assert response.status == 403
        assert "disabled" in (await response.json())["error"]
        monkeypatch.setenv("WASIHOST_TOKEN", TOKEN)  # the environment variable enables them
        assert (await client.post("/api/test/buzzer", headers=AUTH)).status == 200


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/api/test/fan", {}, "on: Field required"),
        ("/api/test/fan", {"on": "yes"}, "on: Input should be a valid boolean"),
        ("/api/test/buzzer", {"count": 99}, "count: Input should be less than or equal to 5"),
        ("/api/test/buzzer", {"volume": 11}, "volume: Extra inputs are not permitted"),
    ],
)
async def test_bodies_are_validated(
    client: TestClient, path: str, body: dict[str, object], reason: str
) -> None:
    response = await client.post(path, json=body, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["error"] == reason


async def test_malformed_and_oversized_bodies(client: TestClient, board: SimBoard) -> None:
    response = await client.post("/api/test/fan", data=b"{not json", headers=AUTH)
    assert response.status == 400
    response = await client.post("/api/test/buzzer", data=b"x" * 100_000, headers=AUTH)
    assert response.status == 413
    assert board.beeps == []


async def test_unknown_plugin(client: TestClient) -> None:
    response = await client.post("/api/plugins/nope/reset", headers=AUTH)
    assert response.status == 404
    assert (await response.json())["error"] == "no plugin named 'nope'"


async def test_reset_and_reload(client: TestClient, host: Host) -> None:
    host.plugins["counter"].call()
    response = await client.post("/api/plugins/counter/reset", headers=AUTH)
    assert response.status == 200
    assert (await response.json())["state"] == "running"
    response = await client.post("/api/plugins/counter/reload", headers=AUTH)
    assert response.status == 200
    assert (await response.json())["reloaded"] is False  # the file has not changed


async def test_api_errors_are_json(client: TestClient) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status == 404
    assert (await response.json())["error"] == "Not Found"
    response = await client.get("/api/test/fan")
    assert response.status == 405
    assert "error" in await response.json()
    response = await client.post("/api/test/buzzer", data=b"x" * 100_000, headers=AUTH)
    assert (await response.json())["error"] == "request body over 16384 bytes"
