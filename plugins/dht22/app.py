"""dht22: room temperature and humidity on LED 1, with hot/cold alarms.

State kept in module globals between polls: the poll counter, the last good
reading (reported as stale when a read fails, never as 0 °C) and the alarm
latches.
"""

from __future__ import annotations

from dataclasses import dataclass

from climate import Latch, dew_point_c, heat_index_c
from componentize_py_types import Err
from wasihost_guest import settings
from wit_world import exports
from wit_world.exports.sensor_logic import Dht22Data
from wit_world.imports import buzzer_controller, gpio_provider, led_controller
from wit_world.imports.alarm_types import Alarm


@dataclass(frozen=True)
class Config:
    """Validated settings; the defaults apply until `configure` is called."""

    gpio_pin: int = 4
    led: int = 1
    hot_on_c: float = 28.0
    hot_off_c: float = 26.5
    cold_on_c: float = 16.0
    cold_off_c: float = 17.5


_config = Config()
POLLS = 0
LAST_GOOD: tuple[float, float, int] | None = None  # (temperature, humidity, timestamp ms)
HOT = Latch(_config.hot_on_c, _config.hot_off_c)
COLD = Latch(_config.cold_on_c, _config.cold_off_c)


def parse_settings(settings_json: str) -> Config:
    """Validate the host's settings JSON; raises SettingsError naming the bad setting."""
    given = settings.parse(settings_json, Config)
    config = Config(
        gpio_pin=settings.integer(given, "gpio_pin", Config.gpio_pin, 0, 255),
        led=settings.led(given, Config.led),
        hot_on_c=settings.number(given, "hot_on_c", Config.hot_on_c),
        hot_off_c=settings.number(given, "hot_off_c", Config.hot_off_c),
        cold_on_c=settings.number(given, "cold_on_c", Config.cold_on_c),
        cold_off_c=settings.number(given, "cold_off_c", Config.cold_off_c),
    )
    if config.hot_off_c >= config.hot_on_c:
        raise settings.SettingsError("hot_off_c must be below hot_on_c")
    if config.cold_off_c <= config.cold_on_c:
        raise settings.SettingsError("cold_off_c must be above cold_on_c")
    return config


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        global _config, HOT, COLD
        try:
            _config = parse_settings(settings_json)
        except settings.SettingsError as exc:
            raise Err(str(exc)) from None
        HOT = Latch(_config.hot_on_c, _config.hot_off_c)
        COLD = Latch(_config.cold_on_c, _config.cold_off_c)


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
            reading = gpio_provider.read_dht22(_config.gpio_pin)
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
        led_controller.set_led(_config.led, r, g, b)
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
