"""A test plugin for the generic sensor-plugin world: counts polls, reads the CPU
temperature, and (with ``bad = true``) adds entries the host must drop."""

from __future__ import annotations

import json
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.sensor import Measurement, MeasurementSpec, PluginInfo
from wit_world.imports import gpio_provider, i2c

SETTINGS: dict = {}
POLLS = 0


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        SETTINGS.update(json.loads(settings_json))


class Sensor(exports.Sensor):
    def describe(self) -> PluginInfo:
        if SETTINGS.get("describe_mode") == "sleep":  # a WASI clock wait
            time.sleep(SETTINGS.get("seconds", 60))
        if SETTINGS.get("describe_mode") == "trap":
            raise RuntimeError("trap in describe (on purpose)")
        return PluginInfo(
            "Generic test sensor",
            "0.1.0",
            [
                MeasurementSpec("polls", "", "none"),
                MeasurementSpec("cpu_temperature", "°C", "temperature"),
            ],
        )

    def poll(self) -> list[Measurement]:
        global POLLS
        POLLS += 1
        if "probe" in SETTINGS:
            try:
                for _ in range(SETTINGS.get("transfers", 1)):  # a loop for the round-trip bench
                    i2c.transfer(SETTINGS["probe"], b"\xd0", 1)
            except Err as refused:
                raise Err(f"refused: {refused.value}") from None
        values = [
            Measurement("polls", float(POLLS), "", "none", None),
            Measurement(
                "cpu_temperature",
                gpio_provider.read_cpu_temperature(),
                "°C",
                "temperature",
                "simulated" if POLLS == 1 else None,
            ),
        ]
        if SETTINGS.get("bad"):
            values += [
                Measurement("Bad Name!", 1.0, "", "none", None),
                Measurement("polls", 2.0, "", "none", None),  # a repeated name
                Measurement("nan_value", float("nan"), "", "none", None),
                Measurement("long_unit", 1.0, "u" * 100, "none", None),
            ]
        return values
