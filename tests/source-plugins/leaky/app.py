"""A sensor whose guest memory only grows: it keeps every byte list it sends
to ``i2c.transfer`` (``hold``), as a driver with a cache that never forgets
would, and as componentize-py 0.25's runtime did for every driver until the
build mended it (docs/GUEST-MEMORY.md). With ``hold`` off it only sends, so
its memory shows whether the runtime gives sent lists back. It counts its
polls and keeps the count in its state."""

from __future__ import annotations

import contextlib
import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.sensor import Measurement, MeasurementSpec, PluginInfo
from wit_world.imports import i2c

POLLS = 0
HELD: list[bytes] = []
# An address it is not granted: the host refuses the call at once, after the
# guest has sent (and leaked) the list.
SETTINGS: dict[str, int | bool] = {"writes": 24, "size": 4000, "address": 0x10, "hold": True}


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        SETTINGS.update(json.loads(settings_json))


class Sensor(exports.Sensor):
    def describe(self) -> PluginInfo:
        return PluginInfo("Leaky", "1.0.0", [MeasurementSpec("polls", "", "none")])

    def poll(self) -> list[Measurement]:
        global POLLS
        POLLS += 1
        if POLLS == 1:  # use up the free heap a new instance has, so a leak grows the memory
            HELD.extend(bytes(1024) for _ in range(int(SETTINGS.get("prime_kb", 0))))
        for _ in range(int(SETTINGS["writes"])):
            payload = bytes(int(SETTINGS["size"]))
            if SETTINGS["hold"]:
                HELD.append(payload)
            with contextlib.suppress(Err):
                i2c.transfer(int(SETTINGS["address"]), payload, 0)
        if SETTINGS.get("fail"):
            raise Err(f"poll {POLLS} failed (on purpose)")
        if SETTINGS.get("empty"):  # an empty list<measurement>: no byte list involved
            return []
        return [Measurement("polls", float(POLLS), "", "none", None)]


class State(exports.State):
    def snapshot(self) -> bytes:
        padding = b" " * int(SETTINGS.get("snapshot_padding", 0))  # restore() ignores it
        return str(POLLS).encode() + padding

    def restore(self, data: bytes) -> None:
        global POLLS
        if SETTINGS.get("refuse_restore"):
            raise Err("this instance refuses every state (on purpose)")
        POLLS = int(data.decode())
