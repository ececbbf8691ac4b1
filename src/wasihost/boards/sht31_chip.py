"""An emulated Sensirion SHT31 temperature/humidity sensor on the virtual I2C bus.

Enough of the datasheet (SHT3x-DIS, sections 4 and 5) for a driver to be
written against it: 16-bit commands written MSB first, single-shot
measurements with or without clock stretching, soft reset, the status
register, and 6-byte results (temperature and humidity words, each followed
by its CRC-8: polynomial 0x31, initial value 0xFF). Reading with no
measurement pending is a NACK, as on the real chip.
"""

from __future__ import annotations

import random

SINGLE_SHOT = {0x2400, 0x240B, 0x2416, 0x2C06, 0x2C0D, 0x2C10}  # repeatability x stretching
SOFT_RESET = 0x30A2
READ_STATUS = 0xF32D
CLEAR_STATUS = 0x3041


def crc8(data: bytes) -> int:
    """Sensirion's CRC-8 (datasheet 4.12): poly 0x31, init 0xFF; crc8(b"\\xbe\\xef") == 0x92."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _word(value: int) -> bytes:
    raw = value.to_bytes(2, "big")
    return raw + bytes([crc8(raw)])


class Sht31Chip:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random(0x31)
        self.temperature_c = 21.0
        self.humidity_percent = 45.0
        self._pending: bytes | None = None

    def set_environment(self, temperature_c: float, humidity_percent: float) -> None:
        self.temperature_c = temperature_c
        self.humidity_percent = humidity_percent

    def _measure(self) -> bytes:
        t = self.temperature_c + self._rng.gauss(0, 0.02)
        rh = self.humidity_percent + self._rng.gauss(0, 0.05)
        # Datasheet 4.13: T = -45 + 175 * S_T / 65535; RH = 100 * S_RH / 65535.
        s_t = round((t + 45) * 65535 / 175)
        s_rh = round(rh * 65535 / 100)
        return _word(min(65535, max(0, s_t))) + _word(min(65535, max(0, s_rh)))

    def transfer(self, data: bytes, read_len: int) -> bytes:
        """One I2C transaction: an optional 2-byte command, then ``read_len`` bytes."""
        if data:
            if len(data) != 2:
                raise ValueError(f"SHT31 commands are 2 bytes, got {len(data)}")
            command = int.from_bytes(data, "big")
            if command in SINGLE_SHOT:
                self._pending = self._measure()
            elif command == SOFT_RESET:
                self._pending = None
            elif command == READ_STATUS:
                self._pending = _word(0x0000)
            elif command != CLEAR_STATUS:
                raise ValueError(f"SHT31 does not know command 0x{command:04x} (NACK)")
        if read_len == 0:
            return b""
        if self._pending is None:
            raise ValueError("SHT31 has no measurement to read (NACK)")
        result, self._pending = self._pending[:read_len], None
        return result + bytes(max(0, read_len - len(result)))
