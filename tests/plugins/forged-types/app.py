"""A hostile plugin built against a forged contract (``wit/plugin.wit`` here):
the dht22 world's names with other types. ``mode`` picks what it does with them.

One build serves every case of tests/hostile/test_hostile_types.py.
"""

from __future__ import annotations

import json
import math

from wit_world import exports
from wit_world.exports.sensor_logic import Dht22Data
from wit_world.imports import gpio_provider, led_controller
from wit_world.imports.alarm_types import Alarm

SETTINGS: dict = {"mode": "plain", "led": 3}
POLLS = 0


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        SETTINGS.update(json.loads(settings_json))


class SensorLogic(exports.SensorLogic):
    def poll(self) -> Dht22Data:
        global POLLS
        POLLS += 1
        mode, led = SETTINGS["mode"], SETTINGS["led"]
        note, polls = "", POLLS
        if mode == "nan":  # floats where the contract has u8
            led_controller.set_led(led, math.nan, math.inf, -1.5)
        elif mode == "wide":  # u32 where the contract has u8
            led_controller.set_all(70_000, 2**31, 2**32 - 1)
        elif mode == "note":  # a record field the contract does not have
            note = "x" * SETTINGS.get("size", 1_000_000)
        elif mode == "count":  # u64 where the contract has u32
            polls = 2**40 + POLLS
        elif mode == "timestamp":  # a string where the host returns u64
            note = gpio_provider.get_timestamp_ms()
        else:
            led_controller.set_led(led, 0.0, 200.0, 0.0)
        # humidity first: the forged record has the two swapped
        return Dht22Data(45.0, 21.0, 9.0, 21.0, False, 0, Alarm.NONE, polls, note)
