"""The seed plugins' behaviour on the simulated board.

Logic tests run twice through ``wasihost.testing``: natively (milliseconds)
and as the built component, proving both behave the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wasihost.boards.sim import Beep, SimBoard
from wasihost.capabilities import Grants
from wasihost.testing import ComponentPlugin, NativePlugin, load_module, plugin_under_test

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"
Harness = NativePlugin | ComponentPlugin


climate = load_module(PLUGINS / "dht22", "climate")
Latch, dew_point_c, heat_index_c = climate.Latch, climate.dew_point_c, climate.heat_index_c


@pytest.fixture(params=["native", "component"])
def mode(request: pytest.FixtureRequest, built: dict[str, Path]) -> str:
    return str(request.param)


def seed(name: str, mode: str, board: SimBoard, grants: Grants, **options: object) -> Harness:
    return plugin_under_test(
        PLUGINS / name,
        mode,
        board=board,
        grants=grants,  # type: ignore[arg-type]
        **options,
    )


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


def test_dht22_alarm_beeps_once_per_latch(mode: str, board: SimBoard) -> None:
    grants = Grants(leds=frozenset({1}), gpio_pins=frozenset({4}), buzzer=True)
    plugin = seed("dht22", mode, board, grants, settings={"gpio_pin": 4, "led": 1})
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


def test_dht22_reports_the_last_good_value_as_stale(mode: str, board: SimBoard) -> None:
    grants = Grants(leds=frozenset({1}), gpio_pins=frozenset({4}), buzzer=True)
    clock = [1_000_000]
    plugin = seed(
        "dht22", mode, board, grants, settings={"gpio_pin": 4, "led": 1}, clock_ms=lambda: clock[0]
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


def test_pi_monitor_fan_hysteresis_reads_state_back(mode: str, board: SimBoard) -> None:
    plugin = seed(
        "pi-monitor", mode, board, Grants(leds=frozenset({0}), fan=True), settings={"led": 0}
    )
    fan = []
    try:
        for temperature in (50.0, 66.0, 60.0, 56.0, 54.0, 60.0):
            board.set_cpu_temperature(temperature)
            fan.append(plugin.poll()["fan_on"])
    finally:
        plugin.close()
    assert fan == [False, True, True, True, False, False]
    assert board.fan_changes == 2


def test_bme680_calibrates_and_keeps_its_baseline_between_polls(mode: str, board: SimBoard) -> None:
    clock = [1_700_000_000_000]
    grants = Grants(leds=frozenset({2}), i2c_addresses=frozenset({0x77}))
    plugin = seed(
        "bme680",
        mode,
        board,
        grants,
        clock_ms=lambda: clock[0],
        settings={"i2c_address": 0x77, "led": 2, "burn_in_s": 60},
    )
    try:
        first = plugin.poll()
        assert first["iaq_accuracy"] == 0  # burning in
        assert plugin.leds.snapshot()[2] == (48, 0, 192)  # the calibrating colour
        assert 900 < first["pressure_hpa"] < 1100
        accuracy = []
        for _ in range(12):
            clock[0] += 30_000  # 30 s between polls
            accuracy.append(plugin.poll()["iaq_accuracy"])
        # Burn-in ends after 60 s; accuracy then only rises while the air is steady.
        assert accuracy[0] == 0
        assert accuracy[-1] >= 2
        assert accuracy == sorted(accuracy)
        assert plugin.leds.snapshot()[2] != (48, 0, 192)
    finally:
        plugin.close()
