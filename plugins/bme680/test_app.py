"""Tests for bme680, natively and as the built component, on the simulated board.

The driver, the IAQ estimator and the state export are tested in depth
against the chip emulator and fake bindings in tests/guest/test_bme680_driver.py.
"""

from __future__ import annotations

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
    ],
)
def test_bad_settings_are_refused(
    mode: Mode, board: SimBoard, settings: dict[str, object], message: str
) -> None:
    with pytest.raises(PluginError, match=message):
        plugin_under_test(HERE, mode, board=board, grants=GRANTS, settings=settings)
