"""dht22: room temperature and humidity on LED 1, with hot/cold alarms.

State kept in module globals between polls: the poll counter, the last good
reading (reported as stale when a read fails, never as 0 °C) and the alarm
latches.
"""

from __future__ import annotations

import json

from climate import Latch, dew_point_c, heat_index_c
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.sensor_logic import Dht22Data
from wit_world.imports import buzzer_controller, gpio_provider, led_controller
from wit_world.imports.alarm_types import Alarm

SETTINGS: dict[str, float] = {
    "gpio_pin": 4,
    "led": 1,
    "hot_on_c": 28.0,
    "hot_off_c": 26.5,
    "cold_on_c": 16.0,
    "cold_off_c": 17.5,
}
POLLS = 0
LAST_GOOD: tuple[float, float, int] | None = None  # (temperature, humidity, timestamp ms)
HOT = Latch(SETTINGS["hot_on_c"], SETTINGS["hot_off_c"])
COLD = Latch(SETTINGS["cold_on_c"], SETTINGS["cold_off_c"])


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        global HOT, COLD
        given = json.loads(settings_json)
        for key, value in given.items():
            if key not in SETTINGS:
                raise Err(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise Err(f"setting {key!r} must be a number, got {value!r}")
            SETTINGS[key] = value
        if SETTINGS["hot_off_c"] >= SETTINGS["hot_on_c"]:
            raise Err("hot_off_c must be below hot_on_c")
        if SETTINGS["cold_off_c"] <= SETTINGS["cold_on_c"]:
            raise Err("cold_off_c must be above cold_on_c")
        HOT = Latch(SETTINGS["hot_on_c"], SETTINGS["hot_off_c"])
        COLD = Latch(SETTINGS["cold_on_c"], SETTINGS["cold_off_c"])


def comfort_color(temperature_c: float) -> tuple[int, int, int]:
    if HOT.active:
        return (255, 0, 0)
    if COLD.active:
        return (0, 0, 255)
    if temperature_c < 19:
        return (0, 120, 255)
    if temperature_c <= 24:
        return (0, 200, 0)
    return (255, 140, 0)


class SensorLogic(exports.SensorLogic):
    def poll(self) -> Dht22Data:
        global POLLS, LAST_GOOD
        POLLS += 1
        now = gpio_provider.get_timestamp_ms()
        stale = False
        try:
            reading = gpio_provider.read_dht22(int(SETTINGS["gpio_pin"]))
            LAST_GOOD = (reading.temperature_c, reading.humidity_percent, now)
        except Err as failure:
            if LAST_GOOD is None:
                raise Err(f"no reading yet: {failure.value}") from None
            stale = True
        temperature, humidity, taken = LAST_GOOD
        if not stale and (HOT.update(temperature) or COLD.update(temperature)):
            try:
                buzzer_controller.beep(3, 100, 100)
            except Err as refused:
                print("beep refused:", refused.value)
        alarm = Alarm.HIGH if HOT.active else Alarm.LOW if COLD.active else Alarm.NONE
        r, g, b = comfort_color(temperature)
        led_controller.set_led(int(SETTINGS["led"]), r, g, b)
        return Dht22Data(
            temperature_c=temperature,
            humidity_percent=humidity,
            dew_point_c=dew_point_c(temperature, humidity),
            heat_index_c=heat_index_c(temperature, humidity),
            stale=stale,
            age_ms=now - taken if stale else 0,
            alarm=alarm,
            poll_count=POLLS,
        )
