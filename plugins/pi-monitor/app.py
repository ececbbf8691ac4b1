"""pi-monitor: CPU temperature, load, memory and uptime on LED 0; drives the fan.

The fan switches on above ``fan_on_c`` and off below ``fan_off_c``
(hysteresis), and its state is read back from the host rather than
assumed, so a relay that did not switch shows up as such.
"""

from __future__ import annotations

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.pi_monitor_logic import PiMonitorData
from wit_world.imports import fan_controller, gpio_provider, led_controller, system_info
from wit_world.imports.alarm_types import Alarm

SETTINGS: dict[str, float] = {
    "led": 0,
    "warm_c": 60.0,
    "hot_c": 70.0,
    "hot_release_c": 65.0,
    "fan_on_c": 65.0,
    "fan_off_c": 55.0,
}
POLLS = 0
HOT_ALARM = False


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        for key, value in json.loads(settings_json).items():
            if key not in SETTINGS:
                raise Err(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise Err(f"setting {key!r} must be a number, got {value!r}")
            SETTINGS[key] = value
        if SETTINGS["fan_off_c"] >= SETTINGS["fan_on_c"]:
            raise Err("fan_off_c must be below fan_on_c")


def band_color(temperature_c: float) -> tuple[int, int, int]:
    if temperature_c >= SETTINGS["hot_c"]:
        return (255, 0, 0)
    if temperature_c >= SETTINGS["warm_c"]:
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
        if temperature >= SETTINGS["fan_on_c"] and not fan:
            fan_controller.set_fan(True)
        elif temperature <= SETTINGS["fan_off_c"] and fan:
            fan_controller.set_fan(False)
        if temperature >= SETTINGS["hot_c"]:
            HOT_ALARM = True
        elif temperature <= SETTINGS["hot_release_c"]:
            HOT_ALARM = False
        r, g, b = band_color(temperature)
        led_controller.set_led(int(SETTINGS["led"]), r, g, b)
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
