"""A hostile plugin for the bme680 world (it imports ``i2c``, GPIO and LEDs).

``settings.mode`` picks the attack, so one build serves the whole I2C part of
the hostile-plugin suite: probing addresses outside the grant, oversized
transfers, garbage for the granted chip, hogging the bus, writing LEDs and
reading GPIO pins that are not its own, absurd records, markup in error
strings and oversized state snapshots. Modes that end in an error report
what they achieved in the error string, which the host shows as
``last_error``.
"""

from __future__ import annotations

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.bme680_logic import Bme680Data
from wit_world.imports import gpio_provider, i2c, led_controller
from wit_world.imports.alarm_types import Alarm

SETTINGS: dict = {"mode": "counter", "granted": 0x77}
POLLS = 0
F32_MAX = 3.4028234663852886e38


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        SETTINGS.update(json.loads(settings_json))


class State(exports.State):
    def snapshot(self) -> bytes:
        size = SETTINGS.get("snapshot_size")
        if size:  # changes every poll, so the host cannot skip it as unchanged
            return POLLS.to_bytes(4, "little") * (size // 4)
        return json.dumps({"polls": POLLS}).encode()

    def restore(self, data: bytes) -> None:
        global POLLS
        if SETTINGS.get("snapshot_size"):
            POLLS = int.from_bytes(bytes(data[:4]), "little")
            return
        POLLS = json.loads(bytes(data))["polls"]


def _record(value: float) -> Bme680Data:
    return Bme680Data(value, 40.0, 1000.0, 100_000.0, 25.0, 400.0, 0.5, 0, Alarm.NONE, POLLS)


def _try(address: int, data: bytes, read_len: int) -> str | None:
    """None when the transfer went through, else the host's reason."""
    try:
        i2c.transfer(address, data, read_len)
    except Err as refused:
        return str(refused.value)
    return None


def _probe(addresses: list[int]) -> None:
    reasons = [_try(address, b"\xd0", 1) for address in addresses]
    answered = [f"0x{a:02x}" for a, r in zip(addresses, reasons, strict=True) if r is None]
    refused = [r for r in reasons if r is not None]
    first = refused[0] if refused else "-"
    raise Err(f"probed {len(addresses)}: answered {answered}, refused {len(refused)} ({first})")


class Bme680Logic(exports.Bme680Logic):
    def poll(self) -> Bme680Data:
        global POLLS
        POLLS += 1
        mode = SETTINGS["mode"]
        granted = SETTINGS["granted"]
        if mode == "counter":
            return _record(float(POLLS))
        if mode == "probe":
            _probe(SETTINGS["addresses"])
        if mode == "scan":
            _probe(list(range(0x80)))
        if mode == "huge_read":
            reasons = [_try(granted, b"\xd0", n) for n in SETTINGS["read_lens"]]
            raise Err(f"huge reads: {reasons}")
        if mode == "huge_write":
            reason = _try(granted, bytes(SETTINGS["size"]), 0)
            raise Err(f"wrote {SETTINGS['size']} bytes: {reason or 'accepted'}")
        if mode == "garbage":
            # Register/value pairs no driver would send, then a soft reset.
            pairs = bytes(b for reg in range(0x40, 0x80) for b in (reg, 0xFF))
            reasons = [
                _try(granted, pairs, 0),
                _try(granted, b"\x74\xff\x74", 7),  # odd burst
                _try(granted, b"", 3),  # no register address
                _try(granted, b"\xe0\xb6", 0),  # soft reset
            ]
            raise Err(f"garbage: {reasons}")
        if mode == "hammer":  # the same transfer, over and over, whatever the answer
            calls = SETTINGS["calls"]
            reasons = [_try(granted, b"\xd0", 1) for _ in range(calls)]
            refused = [r for r in reasons if r is not None]
            raise Err(f"{calls} calls, {len(refused)} refused ({refused[-1] if refused else '-'})")
        if mode == "bus_hog":
            while True:
                i2c.transfer(granted, b"\x00", 4096)
        if mode == "gpio":
            refused = []
            for pin in range(28):
                try:
                    gpio_provider.read_dht22(pin)
                except Err as exc:
                    refused.append(str(exc.value))
            raise Err(f"read 28 pins: {28 - len(refused)} answered ({refused[0]})")
        if mode == "leds":
            own, other = SETTINGS["led"], SETTINGS["other_led"]
            attempts = [
                lambda: led_controller.set_led(other, 255, 0, 0),
                lambda: led_controller.set_led(0xFFFF_FFFF, 255, 0, 0),
                lambda: led_controller.set_two(own, 1, 2, 3, other, 255, 0, 0),
                lambda: led_controller.set_two(other, 255, 0, 0, own, 1, 2, 3),
            ]
            refused = 0
            for attempt in attempts:
                try:
                    attempt()
                except Err:
                    refused += 1
            led_controller.set_all(255, 255, 255)  # only its own LED
            raise Err(f"LED writes: {refused} of {len(attempts)} refused")
        if mode == "absurd":
            return Bme680Data(
                F32_MAX, -F32_MAX, float("nan"), float("inf"), 1e30, -F32_MAX, F32_MAX,
                255, Alarm.HIGH, 2**32 - 1,
            )  # fmt: skip
        if mode == "markup_error":
            raise Err(SETTINGS["markup"])
        if mode == "snapshot":
            return _record(float(POLLS))
        raise Err(f"unknown mode {mode!r}")
