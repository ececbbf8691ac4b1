"""Tests for bme680, natively and as the built component, on the simulated board.

The driver, the IAQ estimator and the state export are tested in depth
against the chip emulator and fake bindings in tests/guest/test_bme680_driver.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.capabilities import Grants
from wasihost.errors import PluginError
from wasihost.testing import Mode, plugin_under_test

HERE = Path(__file__).resolve().parent
GRANTS = Grants(leds=frozenset({2}), i2c_addresses=frozenset({0x77}))


def test_calibrates_and_keeps_its_baseline_between_polls(mode: Mode, board: SimBoard) -> None:
    clock = [1_700_000_000_000]
    plugin = plugin_under_test(
        HERE,
        mode,
        board=board,
        grants=GRANTS,
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


def test_wall_clock_jumps_neither_end_nor_stall_the_burn_in(mode: Mode, board: SimBoard) -> None:
    """The host clock is the wall clock: a Pi without a real-time clock boots in 1970
    and NTP steps it to the present (here, and then back an hour)."""
    clock = [5_000]
    plugin = plugin_under_test(
        HERE,
        mode,
        board=board,
        grants=GRANTS,
        clock_ms=lambda: clock[0],
        settings={"burn_in_s": 60},
    )
    try:

        def poll_every_3_s(polls: int) -> list[int]:
            accuracy = []
            for _ in range(polls):
                accuracy.append(plugin.poll()["iaq_accuracy"])
                clock[0] += 3000
            return accuracy

        assert poll_every_3_s(4) == [0] * 4  # 9 s of burn-in in 1970
        clock[0] = 1_700_000_000_000  # NTP: fifty-three years on
        # The step counts as 4 typical gaps (12 s), not as decades: still burning in.
        assert poll_every_3_s(10) == [0] * 10  # 12 s + 27 s: 48 s of the 60
        clock[0] -= 3_600_000  # and back an hour: no time, but no stall either
        assert poll_every_3_s(8) == [0] * 4 + [1] * 4  # 60 s reached on the fifth poll
    finally:
        plugin.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alarm_on_iqa": 100}, r"unknown setting\(s\) alarm_on_iqa \(known: i2c_address"),
        ({"i2c_address": "0x77"}, r"setting i2c_address must be an integer in 8\.\.119"),
        ({"burn_in_s": 0}, r"setting burn_in_s must be in \(0, 86400\] seconds"),
        ({"humidity_slope": 0.5}, r"setting humidity_slope must be in 0\.\.0\.2 per g/m3"),
    ],
)
def test_bad_settings_are_refused(
    mode: Mode, board: SimBoard, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(PluginError, match=message):
        plugin_under_test(HERE, mode, board=board, grants=GRANTS, settings=settings)


def _absolute_humidity(temperature_c: float, humidity: float) -> float:
    """g/m3 of water vapour (Magnus), as the plugin computes it."""
    saturation_pa = 611.2 * math.exp(17.62 * temperature_c / (243.12 + temperature_c))
    return humidity / 100.0 * saturation_pa / (461.52 * (temperature_c + 273.15)) * 1000.0


@pytest.mark.parametrize("slope", [0.03, 0.0], ids=["compensated", "off"])
def test_damp_air_is_not_read_as_pollution(mode: Mode, board: SimBoard, slope: float) -> None:
    """40 -> 80 %RH at 21 degC in unchanged air: the sensor's resistance falls to
    80 % (ln R falls 0.03 per g/m3 of water vapour). Compensated, the IAQ rises
    only by the humidity comfort term (83); with compensation off, the same air
    reads ~157 and raises the alarm."""
    clock = [1_700_000_000_000]
    plugin = plugin_under_test(
        HERE,
        mode,
        board=board,
        grants=GRANTS,
        clock_ms=lambda: clock[0],
        settings={"burn_in_s": 30, "humidity_slope": slope},
    )
    try:
        board.set_bme680(21.0, 40.0, 1005.0, 150_000.0)
        for _ in range(30):
            clock[0] += 3000
            dry = plugin.poll()
        assert dry["iaq_accuracy"] >= 1 and dry["iaq"] < 10.0
        drop = math.exp(-0.03 * (_absolute_humidity(21.0, 80.0) - _absolute_humidity(21.0, 40.0)))
        board.set_bme680(21.0, 80.0, 1005.0, 150_000.0 * drop)
        for _ in range(3):
            clock[0] += 3000
            damp = plugin.poll()
        if slope:
            assert damp["iaq"] == pytest.approx(83.3, abs=8.0)
            assert damp["alarm"] == "none"
        else:
            assert damp["iaq"] > 150.0 and damp["alarm"] == "high"
    finally:
        plugin.close()


def test_co2_and_breath_voc_estimates_follow_the_gas_signal(mode: Mode, board: SimBoard) -> None:
    """In the poll record: 400 ppm CO2eq and 0.5 ppm bVOC in clean air, both rising
    when the gas resistance falls (docs/IAQ.md: estimates, not measurements)."""
    clock = [1_700_000_000_000]
    plugin = plugin_under_test(
        HERE, mode, board=board, grants=GRANTS, clock_ms=lambda: clock[0],
        settings={"burn_in_s": 30},
    )  # fmt: skip
    try:
        board.set_bme680(21.0, 40.0, 1005.0, 150_000.0)
        for _ in range(30):
            clock[0] += 3000
            clean = plugin.poll()
        assert clean["co2_equivalent_ppm"] == pytest.approx(400.0, abs=5.0)
        assert clean["breath_voc_ppm"] == pytest.approx(0.5, abs=0.01)
        board.set_bme680(21.0, 40.0, 1005.0, 50_000.0)  # a third of the resistance: VOCs
        for _ in range(3):
            clock[0] += 3000
            smelly = plugin.poll()
        assert smelly["co2_equivalent_ppm"] > 1000.0
        assert smelly["breath_voc_ppm"] > clean["breath_voc_ppm"]
    finally:
        plugin.close()


# What the plugin saved before humidity compensation (snapshot version 1).
V1_SNAPSHOT = {
    "v": 1,
    "iaq": {
        "start_ms": 1_700_000_030_000,
        "clock_ms": 1_700_000_600_000,
        "baseline_ohm": 150_000.0,
        "burned_in": True,
        "window": [[1_700_000_570_000, 150_002.0], [1_700_000_600_000, 150_000.0]],
        "stable_since_ms": 1_700_000_090_000,
    },
    "alarm": True,
    "polls": 20,
    "last_iaq": [160.5, 3],
}


def test_a_snapshot_from_before_humidity_compensation_restores(mode: Mode, board: SimBoard) -> None:
    """Kept, but learnt on raw ohms: restored like a stale snapshot (baseline
    kept, accuracy from 1 without a new burn-in, alarm and last IAQ dropped)."""
    if mode != "native":
        # The harness restores a sandboxed plugin only through a reload or a restart;
        # tests/guest/test_bme680_driver.py covers the same restore through the app.
        pytest.skip("the component harness cannot restore a snapshot directly")
    clock = [1_700_000_603_000]
    plugin = plugin_under_test(
        HERE,
        mode,
        board=board,
        grants=GRANTS,
        clock_ms=lambda: clock[0],
        settings={"burn_in_s": 30},
    )
    try:
        plugin.restore(json.dumps(V1_SNAPSHOT).encode())
        board.set_bme680(21.0, 40.0, 1005.0, 150_000.0)
        first = plugin.poll()
        assert first["poll_count"] == 21 and first["iaq_accuracy"] == 1
        assert first["iaq"] < 10.0 and first["alarm"] == "none"
        saved = plugin.snapshot()
        assert saved is not None
        document = json.loads(saved)
        assert document["v"] == 2 and document["iaq"]["baseline_ohm"] > 140_000.0
        assert document["iaq"]["humidity_slope"] == 0.03
    finally:
        plugin.close()
