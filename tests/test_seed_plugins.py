"""The seed plugins' behaviour, run as real components on the simulated board."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from wasihost.boards.sim import Beep, SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins" / "dht22"))
from climate import Latch, dew_point_c, heat_index_c


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


async def test_dht22_alarm_beeps_once_per_latch(seed_host: Host, board: SimBoard) -> None:
    plugin = seed_host.plugins["dht22"]
    alarms = []
    for temperature in (25.0, 28.5, 29.0, 27.0, 26.0, 28.2):
        board.set_dht22(temperature, 40.0)
        alarms.append(plugin.call()["alarm"])
    assert alarms == ["none", "high", "high", "high", "none", "high"]
    assert board.beeps == [Beep(3, 100, 100), Beep(3, 100, 100)]
    assert seed_host.leds.snapshot()[1] == (255, 0, 0)


async def test_pi_monitor_fan_hysteresis_reads_state_back(seed_host: Host, board: SimBoard) -> None:
    plugin = seed_host.plugins["pi-monitor"]
    fan = []
    for temperature in (50.0, 66.0, 60.0, 56.0, 54.0, 60.0):
        board.set_cpu_temperature(temperature)
        fan.append(plugin.call()["fan_on"])
    assert fan == [False, True, True, True, False, False]
    assert board.fan_changes == 2


def test_bme680_calibrates_and_keeps_its_baseline_between_polls(
    make_config: Callable[..., HostConfig], board: SimBoard
) -> None:
    clock = [1_700_000_000_000]
    config = make_config({"bme680": {"led": 2, "settings": {"burn_in_s": 60}}})
    host = Host(config, board=board, clock_ms=lambda: clock[0])
    host.load_plugins()
    try:
        plugin = host.plugins["bme680"]
        first = plugin.call()
        assert first["iaq_accuracy"] == 0  # burning in
        assert host.leds.snapshot()[2] == (48, 0, 192)  # the calibrating colour
        assert 900 < first["pressure_hpa"] < 1100
        accuracy = []
        for _ in range(12):
            clock[0] += 30_000  # 30 s between polls
            accuracy.append(plugin.call()["iaq_accuracy"])
        # Burn-in ends after 60 s; accuracy then only rises while the air is steady.
        assert accuracy[0] == 0
        assert accuracy[-1] >= 2
        assert accuracy == sorted(accuracy)
        assert host.leds.snapshot()[2] != (48, 0, 192)
    finally:
        host.close()
