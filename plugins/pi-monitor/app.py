"""pi-monitor: CPU temperature, load, memory and uptime on LED 0; drives the fan.

The fan switches on above ``fan_on_c`` and off below ``fan_off_c``
(hysteresis), and its state is read back from the host rather than
assumed, so a relay that did not switch shows up as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from componentize_py_types import Err
from wasihost_guest import settings
from wit_world import exports
from wit_world.exports.pi_monitor_logic import PiMonitorData
from wit_world.imports import fan_controller, gpio_provider, led_controller, system_info
from wit_world.imports.alarm_types import Alarm


@dataclass(frozen=True)
class Config:
    """Validated settings; the defaults apply until `configure` is called."""

    led: int = 0
    warm_c: float = 60.0
    hot_c: float = 70.0
    hot_release_c: float = 65.0
    fan_on_c: float = 65.0
    fan_off_c: float = 55.0


_config = Config()
POLLS = 0
HOT_ALARM = False


def parse_settings(settings_json: str) -> Config:
    """Validate the host's settings JSON; raises SettingsError naming the bad setting."""
    given = settings.parse(settings_json, Config)
    config = Config(
        led=settings.led(given, Config.led),
        warm_c=settings.number(given, "warm_c", Config.warm_c),
        hot_c=settings.number(given, "hot_c", Config.hot_c),
        hot_release_c=settings.number(given, "hot_release_c", Config.hot_release_c),
        fan_on_c=settings.number(given, "fan_on_c", Config.fan_on_c),
        fan_off_c=settings.number(given, "fan_off_c", Config.fan_off_c),
    )
    if config.fan_off_c >= config.fan_on_c:
        raise settings.SettingsError("fan_off_c must be below fan_on_c")
    return config


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        global _config
        try:
            _config = parse_settings(settings_json)
        except settings.SettingsError as exc:
            raise Err(str(exc)) from None


def band_color(temperature_c: float) -> tuple[int, int, int]:
    if temperature_c >= _config.hot_c:
        return (255, 0, 0)
    if temperature_c >= _config.warm_c:
        return (255, 160, 0)
    return (0, 200, 0)


class PiMonitorLogic(exports.PiMonitorLogic):
    def poll(self) -> PiMonitorData:
        global POLLS, HOT_ALARM
        POLLS += 1
        temperature = gpio_provider.read_cpu_temperature()
        load = system_info.get_cpu_load()
        memory = system_info.get_memory()
        uptime = system_info.get_uptime_seconds()
        fan = fan_controller.get_fan_state()
        if temperature >= _config.fan_on_c and not fan:
            fan_controller.set_fan(True)
        elif temperature <= _config.fan_off_c and fan:
            fan_controller.set_fan(False)
        if temperature >= _config.hot_c:
            HOT_ALARM = True
        elif temperature <= _config.hot_release_c:
            HOT_ALARM = False
        r, g, b = band_color(temperature)
        led_controller.set_led(_config.led, r, g, b)
        used = 0.0
        if memory.total_kb:
            used = 100.0 * (memory.total_kb - memory.available_kb) / memory.total_kb
        return PiMonitorData(
            cpu_temperature_c=temperature,
            cpu_load_percent=load,
            memory_used_percent=used,
            uptime_seconds=uptime,
            fan_on=fan_controller.get_fan_state(),
            alarm=Alarm.HIGH if HOT_ALARM else Alarm.NONE,
            poll_count=POLLS,
        )
