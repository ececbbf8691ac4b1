"""Tests for pi-monitor, natively and as the built component, on the simulated board."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.capabilities import Grants
from wasihost.errors import PluginError
from wasihost.testing import Mode, plugin_under_test

HERE = Path(__file__).resolve().parent
GRANTS = Grants(leds=frozenset({0}), fan=True)


def test_fan_hysteresis_reads_state_back(mode: Mode, board: SimBoard) -> None:
    plugin = plugin_under_test(HERE, mode, board=board, grants=GRANTS, settings={"led": 0})
    fan = []
    try:
        for temperature in (50.0, 66.0, 60.0, 56.0, 54.0, 60.0):
            board.set_cpu_temperature(temperature)
            fan.append(plugin.poll()["fan_on"])
    finally:
        plugin.close()
    assert fan == [False, True, True, True, False, False]
    assert board.fan_changes == 2


def test_the_led_shows_the_temperature_band(mode: Mode, board: SimBoard) -> None:
    plugin = plugin_under_test(HERE, mode, board=board, grants=GRANTS, settings={"warm_c": 50})
    colours = []
    try:
        for temperature in (45.0, 55.0, 75.0):
            board.set_cpu_temperature(temperature)
            plugin.poll()
            colours.append(plugin.leds.snapshot()[0])
    finally:
        plugin.close()
    assert colours == [(0, 200, 0), (255, 160, 0), (255, 0, 0)]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fan_on": 60}, r"unknown setting\(s\) fan_on \(known: led, warm_c"),
        ({"hot_c": None}, "setting hot_c must be a number, got None"),
        ({"fan_off_c": 70}, "fan_off_c must be below fan_on_c"),
    ],
)
def test_bad_settings_are_refused(
    mode: Mode, board: SimBoard, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(PluginError, match=message):
        plugin_under_test(HERE, mode, board=board, grants=GRANTS, settings=settings)
