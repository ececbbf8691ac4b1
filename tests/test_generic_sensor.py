"""The generic sensor-plugin world: shows up everywhere with no host change."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp.test_utils import TestClient, TestServer

from wasihost.config import HostConfig
from wasihost.host import Host
from wasihost.web.server import create_app
from wasihost.web.shell import FRAME_URL

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]


def generic(**plugin: object) -> dict[str, object]:
    return {"built": "generic", "world": "sensor-plugin", **plugin}


async def test_generic_plugin_reaches_state_history_api_and_dashboard(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    host = make_host(make_config({"probe": generic(), "dashboard": {}}))
    for _ in range(2):
        await host.after_cycle(await host.cycle.run_once())
    reading = host.state.to_json()["readings"]["probe"]
    values = {m["name"]: m for m in reading["measurements"]}
    assert values["polls"]["value"] == 2.0
    assert values["cpu_temperature"]["unit"] == "°C"
    assert values["cpu_temperature"]["device_class"] == "temperature"
    assert host.statuses()["probe"]["info"] == {
        "name": "Generic test sensor",
        "version": "0.1.0",
        "measurements": [
            {"name": "polls", "unit": "", "device_class": "none"},
            {"name": "cpu_temperature", "unit": "°C", "device_class": "temperature"},
        ],
    }
    assert host.history is not None
    series = host.history.query("probe", "polls", 0, 2**53)
    assert [v for _, v in series.points] == [1.0, 2.0]
    async with TestClient(TestServer(create_app(host))) as client:
        page = await (await client.get(FRAME_URL)).text()
        readings = await (await client.get("/api/readings")).json()
    assert 'data-plugin="probe"' in page
    assert 'data-measure="cpu_temperature"' in page
    assert readings["readings"]["probe"]["measurements"] == reading["measurements"]


async def test_invalid_measurements_are_dropped_and_counted(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    host = make_host(make_config({"probe": generic(settings={"bad": True})}))
    await host.cycle.run_once()
    reading = host.state.to_json()["readings"]["probe"]
    assert [m["name"] for m in reading["measurements"]] == ["polls", "cpu_temperature"]
    assert reading["status"]["invalid_measurements"] == 4


async def test_status_text_rides_along(make_config: MakeConfig, make_host: MakeHost) -> None:
    host = make_host(make_config({"probe": generic()}))
    await host.cycle.run_once()
    assert host.state.to_json()["readings"]["probe"]["status"] == {
        "cpu_temperature_status": "simulated"
    }
