"""A test plugin for the dht22 world whose behaviour its settings choose.

One build serves many tests: ``mode`` picks how ``poll`` behaves, so the
suite does not pay a componentize-py build per misbehaviour.
"""

from __future__ import annotations

import json
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.sensor_logic import Dht22Data
from wit_world.imports import buzzer_controller, gpio_provider, led_controller
from wit_world.imports.alarm_types import Alarm

SETTINGS: dict = {"mode": "counter"}
POLLS = 0


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        SETTINGS.update(json.loads(settings_json))
        if SETTINGS.get("configure_mode") == "sleep":  # a WASI clock wait: epochs cannot stop it
            time.sleep(SETTINGS.get("seconds", 60))
        if SETTINGS.get("configure_mode") == "trap":
            raise RuntimeError("trap in configure (on purpose)")
        if SETTINGS.get("refuse_settings"):
            raise Err("refusing these settings on purpose")


def _data(value: float) -> Dht22Data:
    return Dht22Data(value, 50.0, 10.0, value, False, 0, Alarm.NONE, POLLS)


class State(exports.State):
    """Carries the poll counter across reloads; ``restore_mode`` misbehaves on purpose."""

    def snapshot(self) -> bytes:
        mode = SETTINGS.get("snapshot_mode")
        if mode == "sleep":
            time.sleep(SETTINGS.get("seconds", 60))
        if mode == "spin":
            while True:
                pass
        if mode == "trap":
            raise RuntimeError("trap in snapshot (on purpose)")
        return json.dumps({"polls": POLLS}).encode()

    def restore(self, data: bytes) -> None:
        global POLLS
        mode = SETTINGS.get("restore_mode")
        if mode == "trap":
            raise RuntimeError("trap in restore (on purpose)")
        if mode == "sleep":
            time.sleep(SETTINGS.get("seconds", 60))
        if mode == "refuse":
            raise Err("refusing this snapshot (on purpose)")
        POLLS = json.loads(data)["polls"]


class SensorLogic(exports.SensorLogic):
    def poll(self) -> Dht22Data:
        global POLLS
        POLLS += 1
        mode = SETTINGS["mode"]
        if "say" in SETTINGS:
            print(SETTINGS["say"], POLLS)
        if "led" in SETTINGS:
            led_controller.set_led(SETTINGS["led"], 10 * POLLS % 256, 20, 30)
        if mode == "counter":
            return _data(float(POLLS))
        if mode == "error":
            raise Err("sensor unplugged (on purpose)")
        if mode == "panic":
            raise RuntimeError("unhandled guest exception (on purpose)")
        if mode == "trap_on_poll" and SETTINGS["poll"] == POLLS:
            raise RuntimeError(f"trap on poll {POLLS} (on purpose)")
        if mode == "trap_on_poll":
            return _data(float(POLLS))
        if mode == "loop":
            while True:
                pass
        if mode == "sleep":  # blocked in a WASI call, out of the epoch deadline's reach
            time.sleep(SETTINGS.get("seconds", 60))
            return _data(float(POLLS))
        if mode == "flaky":  # traps on every n-th poll, succeeds otherwise
            if POLLS % SETTINGS.get("every", 10) == 0:
                raise RuntimeError(f"occasional fault on poll {POLLS} (on purpose)")
            return _data(float(POLLS))
        if mode == "open_file":
            try:
                with open(SETTINGS.get("path", "/etc/passwd")) as handle:
                    raise Err("opened: " + handle.read(20))
            except OSError as exc:
                raise Err(f"open failed: {type(exc).__name__}") from None
        if mode == "environment":
            import os
            import sys

            raise Err(f"env={dict(os.environ)} argv={sys.argv[1:]}")
        if mode == "socket":
            try:
                import socket
            except ImportError:
                raise Err("connect failed: no socket module") from None
            try:
                socket.create_connection(("127.0.0.1", SETTINGS["port"]), timeout=1)
            except OSError as exc:
                raise Err(f"connect failed: {type(exc).__name__}") from None
            raise Err("connected")
        if mode == "list_root":
            import os

            try:
                raise Err(f"listed: {os.listdir('/')}")
            except OSError as exc:
                raise Err(f"listdir failed: {type(exc).__name__}") from None
        if mode == "beep":
            try:
                buzzer_controller.beep(1, 10, 10)
            except Err as refused:
                raise Err(f"refused: {refused.value}") from None
            return _data(float(POLLS))
        if mode == "flood":
            line = "x" * SETTINGS.get("width", 80)
            for _ in range(SETTINGS.get("lines", 1000)):
                print(line)
            return _data(float(POLLS))
        if mode == "huge_error":
            raise Err("e" * SETTINGS.get("size", 10_000_000))
        if mode == "nan":
            return Dht22Data(float("nan"), float("inf"), 0.0, 0.0, False, 0, Alarm.NONE, POLLS)
        if mode == "recurse":
            import sys

            sys.setrecursionlimit(10_000_000)  # past CPython's guard, down to the wasm stack

            def deeper(n: int) -> int:
                return deeper(n + 1) + 1

            return _data(float(deeper(0)))
        if mode == "allocate":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if mode == "led_outside":
            try:
                led_controller.set_led(SETTINGS["index"], 255, 0, 0)
            except Err as refused:
                raise Err(f"refused: {refused.value}") from None
            raise Err("LED write was accepted")
        if mode == "read_pin":
            reading = gpio_provider.read_dht22(SETTINGS["pin"])
            return _data(reading.temperature_c)
        raise Err(f"unknown mode {mode!r}")
