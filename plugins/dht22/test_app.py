"""Tests for dht22: its climate maths natively, and the plugin natively and as the
built component, on the simulated board."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasihost.boards.sim import Beep, SimBoard
from wasihost.capabilities import Grants
from wasihost.errors import PluginError
from wasihost.testing import Mode, load_module, plugin_under_test

HERE = Path(__file__).resolve().parent
GRANTS = Grants(leds=frozenset({1}), gpio_pins=frozenset({4}), buzzer=True)
SETTINGS = {"gpio_pin": 4, "led": 1}

climate = load_module(HERE, "climate")
Latch, dew_point_c, heat_index_c = climate.Latch, climate.dew_point_c, climate.heat_index_c


def test_latch_does_not_flap_around_its_threshold() -> None:
    hot = Latch(on_at=28.0, off_at=26.5)
    values = [27.9, 28.0, 27.9, 28.1, 27.0, 28.0, 26.6, 26.5, 27.9, 28.0]
    states = []
    for value in values:
        hot.update(value)
        states.append(hot.active)
    assert states == [False, True, True, True, True, True, True, False, False, True]


def test_low_latch_mirrors_high() -> None:
    cold = Latch(on_at=16.0, off_at=17.5)
    assert [cold.update(v) for v in (16.5, 16.0, 15.0, 17.4, 17.5, 16.0)] == [
        False,
        True,
        False,
        False,
        False,
        True,
    ]


def test_climate_formulas_match_reference_values() -> None:
    # Reference values from the NOAA heat index tables and a Magnus dew point table.
    assert dew_point_c(25.0, 60.0) == pytest.approx(16.7, abs=0.1)
    assert dew_point_c(20.0, 50.0) == pytest.approx(9.3, abs=0.1)
    assert heat_index_c(32.2, 70.0) == pytest.approx(40.6, abs=0.7)  # 90 °F, 70 % → 106 °F
    assert heat_index_c(20.0, 50.0) == pytest.approx(19.6, abs=0.5)


def test_alarm_beeps_once_per_latch(mode: Mode, board: SimBoard) -> None:
    plugin = plugin_under_test(HERE, mode, board=board, grants=GRANTS, settings=SETTINGS)
    try:
        alarms = []
        for temperature in (25.0, 28.5, 29.0, 27.0, 26.0, 28.2):
            board.set_dht22(temperature, 40.0)
            alarms.append(plugin.poll()["alarm"])
    finally:
        plugin.close()
    assert alarms == ["none", "high", "high", "high", "none", "high"]
    assert board.beeps == [Beep(3, 100, 100), Beep(3, 100, 100)]
    assert plugin.leds.snapshot()[1] == (255, 0, 0)


def test_reports_the_last_good_value_as_stale(mode: Mode, board: SimBoard) -> None:
    clock = [1_000_000]
    plugin = plugin_under_test(
        HERE, mode, board=board, grants=GRANTS, settings=SETTINGS, clock_ms=lambda: clock[0]
    )
    try:
        board.set_dht22(21.0, 45.0)
        assert plugin.poll()["stale"] is False
        board.fail_next_dht22_reads(1)
        clock[0] += 2_000
        record = plugin.poll()
    finally:
        plugin.close()
    assert record["stale"] is True
    assert record["age_ms"] == 2_000
    assert record["temperature_c"] == pytest.approx(21.0)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"hot_on": 30}, r"unknown setting\(s\) hot_on \(known: gpio_pin, led"),
        ({"hot_on_c": "30"}, "setting hot_on_c must be a number, got '30'"),
        ({"gpio_pin": 4.0}, r"setting gpio_pin must be an integer in 0\.\.255"),
        ({"led": True}, "setting led must be a non-negative integer"),
        ({"hot_on_c": 26.0}, "hot_off_c must be below hot_on_c"),
        ({"cold_off_c": 15.0}, "cold_off_c must be above cold_on_c"),
    ],
)
def test_bad_settings_are_refused(
    mode: Mode, board: SimBoard, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(PluginError, match=message):
        plugin_under_test(HERE, mode, board=board, grants=GRANTS, settings=settings)
