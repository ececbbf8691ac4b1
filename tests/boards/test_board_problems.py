"""Board problems reach the plugins that use the device; LED failures log once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wasihost.boards.base import BoardProblem, Color
from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig, parse_config
from wasihost.errors import BoardError
from wasihost.host import Host
from wasihost.runtime.contract import load_contract
from wasihost.specs import plugin_specs
from wasihost.web.server import create_app

I2C_OFF = BoardProblem("i2c", "I2C bus 1", "/dev/i2c-1 (the interface is off)",
                       "dtparam=i2c_arm=on in /boot/firmware/config.txt")  # fmt: skip


class BrokenBoard(SimBoard):
    """A simulated board with the I2C interface off and a failing LED strip."""

    def problems(self) -> list[BoardProblem]:
        return [I2C_OFF]

    def write_leds(self, colors: Sequence[Color]) -> None:
        raise BoardError("LED strip missing: /dev/spidev0.0 (fix: dtparam=spi=on)")


async def test_problems_show_on_the_plugins_that_use_the_device(
    make_config: Callable[..., HostConfig], caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config({"bme680": {"led": 2}, "dht22": {"led": 1}})
    host = Host(config, board=BrokenBoard(seed=1))
    host.load_plugins()
    try:
        statuses = host.statuses()
        assert statuses["bme680"]["board_problems"] == [I2C_OFF.to_json()]
        assert statuses["dht22"]["board_problems"] == []
        async with TestClient(TestServer(create_app(host))) as client:
            health = await (await client.get("/healthz")).json()
        assert health["board"]["problems"] == [I2C_OFF.to_json()]

        caplog.set_level(logging.ERROR, logger="wasihost.cycle")
        for _ in range(3):
            await host.cycle.run_once()
        led_errors = [m for m in caplog.messages if m.startswith("LED write failed")]
        assert len(led_errors) == 1  # once when it starts, not every cycle
    finally:
        host.close()


def test_pi_plugins_with_a_gpio_pin_get_a_longer_default_deadline() -> None:
    base = {"board": {"kind": "pi"}, "plugins": {"dht22": {"led": 1}, "pi_monitor": {"led": 0}}}
    specs = {s.name: s for s in plugin_specs(parse_config(base), load_contract())}
    assert specs["dht22"].timeout_ms == 1800  # the kernel driver may take its 1 s timeout
    assert specs["pi-monitor"].timeout_ms == 1000
    explicit = {**base, "plugins": {"dht22": {"led": 1, "timeout_ms": 900}}}
    assert plugin_specs(parse_config(explicit), load_contract())[0].timeout_ms == 900
    short = {**base, "polling": {"interval_seconds": 1}}
    assert {s.name: s for s in plugin_specs(parse_config(short), load_contract())}[
        "dht22"
    ].timeout_ms == 1000  # never longer than the interval
