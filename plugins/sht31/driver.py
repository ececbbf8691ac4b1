"""Sensirion SHT3x-DIS (SHT30/31/35) driver: single-shot measurements, no host code.

Plain Python around a transfer function ``(address, write, read_len) -> bytes``, so it
runs under the host (``i2c.transfer``) and in tests (any fake) alike.

Protocol, from the SHT3x-DIS datasheet:

- Single-shot measurement, clock stretching *disabled* (commands 0x24xx): the chip
  acknowledges the command and measures on its own; a read header sent before the
  measurement is finished is NACKed. The driver never waits: the caller starts a
  measurement, lets at least `measurement_ms` pass and then reads it.
- The result is 6 bytes: temperature MSB, LSB, CRC, humidity MSB, LSB, CRC.
- CRC-8: polynomial 0x31 (x^8 + x^5 + x^4 + 1), initialisation 0xFF, no reflection,
  no final XOR; CRC(0xBEEF) = 0x92.
- T = -45 + 175 * S_T / 65535 [°C], RH = 100 * S_RH / 65535 [%].
"""

from __future__ import annotations

import math
from collections.abc import Callable

Transfer = Callable[[int, bytes, int], bytes]  # (address, write, read_len) -> bytes

DEFAULT_ADDRESS = 0x44  # ADDR pin low; 0x45 with ADDR high
ADDRESSES = (0x44, 0x45)

# Single shot, clock stretching disabled: repeatability -> (command, max. duration in ms).
# The durations are the datasheet's maxima (15, 6, 4 ms) plus 1 ms of margin.
SINGLE_SHOT: dict[str, tuple[bytes, int]] = {
    "high": (b"\x24\x00", 16),
    "medium": (b"\x24\x0b", 7),
    "low": (b"\x24\x16", 5),
}
RESULT_LENGTH = 6


class DriverError(Exception):
    """The chip answered, but not with a usable measurement (CRC, length)."""


class CrcError(DriverError):
    """A data word failed its CRC-8 check."""


def crc8(data: bytes) -> int:
    """Sensirion CRC-8 (poly 0x31, init 0xFF) over `data`."""
    crc = 0xFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def temperature_c(raw: int) -> float:
    return -45.0 + 175.0 * raw / 65535.0


def humidity_percent(raw: int) -> float:
    return 100.0 * raw / 65535.0


def dew_point_c(temperature: float, humidity: float) -> float | None:
    """Dew point by the Magnus formula (Sensirion's constants over water, -45..60 °C).

    None when it is undefined (0 % relative humidity).
    """
    if humidity <= 0.0:
        return None
    b, c = 17.62, 243.12
    gamma = math.log(min(humidity, 100.0) / 100.0) + b * temperature / (c + temperature)
    return c * gamma / (b - gamma)


def decode(data: bytes) -> tuple[float, float]:
    """(°C, %RH) from the 6 result bytes; raises DriverError / CrcError."""
    if len(data) != RESULT_LENGTH:
        raise DriverError(f"expected {RESULT_LENGTH} bytes, got {len(data)}")
    words = []
    for offset, what in ((0, "temperature"), (3, "humidity")):
        word, crc = data[offset : offset + 2], data[offset + 2]
        expected = crc8(word)
        if crc != expected:
            raise CrcError(
                f"CRC error in the {what} word {word.hex()}: got 0x{crc:02x}, "
                f"expected 0x{expected:02x}"
            )
        words.append(int.from_bytes(word, "big"))
    return temperature_c(words[0]), humidity_percent(words[1])


class Chip:
    """One SHT3x on the bus. Bus errors propagate from `transfer` unchanged."""

    def __init__(self, transfer: Transfer, address: int, repeatability: str = "high") -> None:
        if repeatability not in SINGLE_SHOT:
            raise ValueError(f"repeatability must be one of {', '.join(SINGLE_SHOT)}")
        self.transfer = transfer
        self.address = address
        self.command, self.measurement_ms = SINGLE_SHOT[repeatability]

    def start_measurement(self) -> None:
        """Send the single-shot command; the result is ready `measurement_ms` later."""
        self.transfer(self.address, self.command, 0)

    def read_measurement(self) -> tuple[float, float]:
        """Read the finished measurement: (temperature °C, relative humidity %)."""
        return decode(bytes(self.transfer(self.address, b"", RESULT_LENGTH)))
