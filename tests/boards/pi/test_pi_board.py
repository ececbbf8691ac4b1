"""The seed plugins end to end on the Pi board's code path, over fakes.

A ``Host`` is built from a config with ``[board] kind = "pi"``; its
``PiBoard`` is the real one with fakes only at the lowest seams (the
SMBus answering through an emulated BME680, the IIO and thermal sysfs
files, /proc, gpiod lines and the SPI device). The bme680 plugin's own
driver talks to the fake chip through ``SmbusI2c`` exactly as it would to
a real one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.pi import PiBoard
from wasihost.boards.pi.fakes import FakePi
from wasihost.config import HostConfig
from wasihost.host import Host

MakeConfig = Callable[..., HostConfig]
SEEDS = {"pi_monitor": {"led": 0}, "dht22": {"led": 1}, "bme680": {"led": 2}}


@pytest.fixture
def pi(tmp_path: Path) -> FakePi:
    fake = FakePi(tmp_path / "pi")
    fake.bme680.set_environment(23.0, 41.0, 1002.5, 120_000.0)
    fake.set_dht(21.5, 45.2)
    return fake


@pytest.fixture
def pi_host(pi: FakePi, make_config: MakeConfig) -> Iterator[Callable[..., Host]]:
    hosts: list[Host] = []

    def make(**board: Any) -> Host:
        config = make_config(SEEDS, board={"kind": "pi", "pi": {**pi.config_section(), **board}})
        assert config.board.kind == "pi"
        host = Host(config, board=PiBoard.from_config(config, **pi.seams()))
        hosts.append(host)
        host.load_plugins()
        return host

    yield make
    for host in hosts:
        host.close()


def values(host: Host, plugin: str) -> dict[str, Any]:
    """A plugin's latest measurements and status by name, and its error."""
    view = host.state.to_json()["readings"][plugin]
    measured = {m["name"]: m["value"] for m in view["measurements"]}
    return measured | view["status"] | {"error": view["error"]}


async def test_seed_plugins_read_real_values_through_the_pi_board(
    pi: FakePi, pi_host: Callable[..., Host]
) -> None:
    host = pi_host(led_brightness=1.0)
    for _ in range(3):
        await host.cycle.run_once()
        pi.advance(2.0)  # the poll interval, on the DHT22's clock
    bme680 = values(host, "bme680")
    assert bme680["error"] is None
    assert bme680["temperature"] == pytest.approx(23.0, abs=0.1)
    assert bme680["humidity"] == pytest.approx(41.0, abs=0.5)
    assert bme680["pressure"] == pytest.approx(1002.5, abs=0.2)
    assert bme680["gas_resistance"] == pytest.approx(120_000, rel=0.05)
    assert bme680["poll_count"] == 3
    dht22 = values(host, "dht22")
    assert (dht22["temperature"], dht22["humidity"], dht22["stale"]) == (21.5, 45.2, False)
    monitor = values(host, "pi-monitor")
    assert monitor["cpu_temperature"] == pytest.approx(48.2, abs=0.01)
    assert monitor["cpu_load"] == pytest.approx(13.0, abs=0.01)
    assert monitor["uptime"] == 12345
    assert monitor["fan_on"] is False
    # Every BME680 access was a combined transaction or a register write.
    shapes = {tuple(kind for kind, _, _ in t) for t in pi.bus.transactions}
    assert shapes <= {("w", "r"), ("w",)}
    # The LED buffer went out once per cycle and the strip shows the plugins' colours.
    assert len(pi.spi.frames) == 3
    shown = pi.spi.shown()
    assert shown[0] == (0, 200, 0)  # pi-monitor: CPU cool
    assert shown[1] == (0, 200, 0)  # dht22: comfortable
    assert shown[3:] == [(0, 0, 0)] * 8


async def test_brightness_from_the_config_scales_the_strip(
    pi: FakePi, pi_host: Callable[..., Host]
) -> None:
    host = pi_host(led_brightness=0.5)
    await host.cycle.run_once()
    assert pi.spi.shown()[0] == (0, 100, 0)


async def test_the_fan_follows_pi_monitor_and_is_read_back(
    pi: FakePi, pi_host: Callable[..., Host]
) -> None:
    host = pi_host()
    (pi.sys / "class/thermal/thermal_zone0/temp").write_text("71000\n")
    await host.cycle.run_once()
    chip = str(pi.dev / "gpiochip0")
    assert pi.gpiod.levels[(chip, 27)] is False  # active-low relay: on
    assert values(host, "pi-monitor")["fan_on"] is True  # pi-monitor read it back


async def test_missing_i2c_costs_only_the_plugins_that_use_it(
    pi: FakePi, pi_host: Callable[..., Host]
) -> None:
    pi.remove("dev/i2c-1")
    host = pi_host()
    await host.cycle.run_once()
    error = values(host, "bme680")["error"]
    assert error is not None and "I2C missing" in error and "dtparam=i2c_arm=on" in error
    assert values(host, "dht22")["error"] is None
    assert values(host, "pi-monitor")["error"] is None
    assert len(pi.spi.frames) == 1  # the strip still updates
    assert isinstance(host.board, PiBoard)
    assert [p.device for p in host.board.problems()] == ["i2c"]
    assert host.board.problems()[0].to_json()["fix"].startswith("sudo raspi-config")


async def test_a_failing_dht22_is_an_error_for_its_plugin_not_a_zero(
    pi: FakePi, pi_host: Callable[..., Host]
) -> None:
    import errno

    host = pi_host()
    pi.fail_dht(errno.ETIMEDOUT, 3)
    await host.cycle.run_once()
    error = values(host, "dht22")["error"]
    assert error is not None and "ETIMEDOUT" in error


def test_closing_the_board_leaves_actuators_safe(pi: FakePi) -> None:
    board = pi.board()
    board.set_fan(True)
    board.beep(1, 5000, 0)
    board.write_leds([(255, 255, 255)] * 11)
    board.close()
    chip = str(pi.dev / "gpiochip0")
    assert pi.gpiod.levels[(chip, 27)] is True and pi.gpiod.levels[(chip, 17)] is True
    assert not pi.gpiod.held
    assert pi.spi.shown() == [(0, 0, 0)] * 11
    assert pi.bus.closed
