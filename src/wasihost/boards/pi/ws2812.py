"""The WS2812B strip, driven from the SPI MOSI pin (GPIO 10).

Why SPI: the usual PWM/DMA driver (rpi_ws281x) needs root and does not
run on the Pi 5. An SPI controller, in contrast, clocks out bytes at a
steady rate with DMA and ``/dev/spidev*`` is usable by the ``spi`` group,
on Pi 4 and Pi 5 alike. At 2.4 MHz one SPI bit lasts 417 ns, so three SPI
bits make one WS2812 bit: ``100`` (417 ns high, 833 ns low) is a 0 and
``110`` (833 ns high, 417 ns low) is a 1, both inside the datasheet's
±150 ns windows (the same symbols rpi_ws281x uses in its SPI mode). Each
colour byte becomes exactly three SPI bytes.

A frame is: a reset gap, then per LED green, red, blue (the chip's GRB
order), most significant bit first, then another reset gap. The gaps are
zeros lasting 300 µs: the original WS2812B latches after 50 µs (the
datasheet asks ≥ 80 µs of low in places), the newer V5 parts after 280 µs.
The leading gap makes sure the line has been low long enough before the
first bit whatever the pin did before. The frame is one ``write`` (one
SPI transfer, no gaps the strip could take for a latch), so it must fit
the spidev buffer (``bufsiz``, 4096 bytes by default: about 430 LEDs).

The device is written via ``os.write`` after three ``ioctl`` calls (mode,
word size, speed), so no SPI library is needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from wasihost.boards.base import OFF, BoardProblem, Color
from wasihost.boards.pi.problems import describe, open_failure
from wasihost.boards.pi.thermal import read_text
from wasihost.errors import BoardError

SPI_HZ = 2_400_000
ZERO_BITS = 0b100
ONE_BITS = 0b110
RESET_S = 300e-6
RESET_BYTES = math.ceil(RESET_S * SPI_HZ / 8)  # 90 bytes
BYTES_PER_LED = 9  # 24 colour bits x 3 SPI bits
BUFSIZ_PARAMETER = Path("module/spidev/parameters/bufsiz")

# linux/spi/spidev.h: _IOW(SPI_IOC_MAGIC 'k', nr, __u8 / __u32)
SPI_IOC_WR_MODE = 0x40016B01
SPI_IOC_WR_BITS_PER_WORD = 0x40016B03
SPI_IOC_WR_MAX_SPEED_HZ = 0x40046B04


def _expand(byte: int) -> bytes:
    bits = 0
    for i in range(7, -1, -1):
        bits = (bits << 3) | (ONE_BITS if (byte >> i) & 1 else ZERO_BITS)
    return bits.to_bytes(3, "big")


_PATTERNS = [_expand(value) for value in range(256)]


def scale(value: int, brightness: float) -> int:
    return min(255, max(0, int(value * brightness + 0.5)))


def encode(colors: Sequence[Color], brightness: float = 1.0) -> bytes:
    """The SPI bytes of one frame: reset gap, GRB bit patterns, reset gap."""
    frame = bytearray(RESET_BYTES)
    for red, green, blue in colors:
        for value in (green, red, blue):
            frame += _PATTERNS[scale(value, brightness)]
    frame += bytes(RESET_BYTES)
    return bytes(frame)


def frame_size(led_count: int) -> int:
    return 2 * RESET_BYTES + BYTES_PER_LED * led_count


class SpiPort(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class SpidevFile:
    """A ``/dev/spidevB.C`` set to mode 0, 8-bit words and ``speed_hz``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def open(cls, path: str, speed_hz: int) -> SpidevFile:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, SPI_IOC_WR_MODE, struct.pack("=B", 0))
            fcntl.ioctl(fd, SPI_IOC_WR_BITS_PER_WORD, struct.pack("=B", 8))
            fcntl.ioctl(fd, SPI_IOC_WR_MAX_SPEED_HZ, struct.pack("=I", speed_hz))
        except OSError:
            os.close(fd)
            raise
        return cls(fd)

    def write(self, data: bytes) -> None:
        written = os.write(self._fd, data)
        if written != len(data):  # spidev writes all or fails; be sure
            raise OSError(0, f"short SPI write ({written} of {len(data)} bytes)")

    def close(self) -> None:
        os.close(self._fd)


def enable_fix() -> str:
    return (
        "sudo raspi-config nonint do_spi 0 (or dtparam=spi=on in "
        "/boot/firmware/config.txt), then sudo reboot"
    )


class Ws2812Strip:
    """``led_count`` WS2812B LEDs on the SPI device ``path``; thread-safe.

    ``open_spi`` (path, speed → port) is the seam tests replace.
    """

    def __init__(
        self,
        path: str = "/dev/spidev0.0",
        led_count: int = 11,
        brightness: float = 0.3,
        sys_root: Path = Path("/sys"),
        open_spi: Callable[[str, int], SpiPort] = SpidevFile.open,
        read: Callable[[Path], str] = read_text,
    ) -> None:
        self.path = path
        self.led_count = led_count
        self.brightness = brightness
        self._open_spi = open_spi
        self._lock = threading.Lock()
        self._port: SpiPort | None = None
        self._open_problem: BoardProblem | None = None
        # A frame too big for the buffer needs a reboot to fix: no point retrying.
        self._oversize = self._check_bufsiz(sys_root / BUFSIZ_PARAMETER, read)
        if self._oversize is None:
            self._open()

    def _check_bufsiz(self, parameter: Path, read: Callable[[Path], str]) -> BoardProblem | None:
        try:
            bufsiz = int(read(parameter).strip())
        except (OSError, ValueError):
            return None  # spidev not loaded yet: opening the device says what is wrong
        needed = frame_size(self.led_count)
        if needed <= bufsiz:
            return None
        return BoardProblem(
            "leds",
            "LED strip",
            f"room for a {needed}-byte frame ({self.led_count} LEDs) in spidev's "
            f"{bufsiz}-byte buffer",
            "append spidev.bufsiz=65536 to the line in /boot/firmware/cmdline.txt, "
            "then sudo reboot",
        )

    def _open(self) -> SpiPort | None:
        try:
            self._port = self._open_spi(self.path, SPI_HZ)
        except OSError as exc:
            self._open_problem = open_failure(
                "leds", "LED strip", self.path, exc, enable_fix(), "spi"
            )
            return None
        self._open_problem = None
        return self._port

    def problem(self) -> BoardProblem | None:
        return self._oversize or self._open_problem

    def write(self, colors: Sequence[Color]) -> None:
        """Show ``colors`` (one per LED) as one SPI transfer."""
        if len(colors) != self.led_count:
            raise BoardError(f"LED strip has {self.led_count} LEDs, got {len(colors)} colours")
        frame = encode(colors, self.brightness)
        with self._lock:
            if self._oversize is not None:
                raise self._oversize.error()
            port = self._port or self._open()  # retry: the interface may be on now
            if port is None:
                assert self._open_problem is not None
                raise self._open_problem.error()
            try:
                port.write(frame)
            except OSError as exc:
                raise BoardError(
                    f"LED strip: SPI write to {self.path} failed: {describe(exc)}"
                ) from None

    def close(self) -> None:
        """Turn every LED off (the safe state), then release the device."""
        with self._lock:
            port, self._port = self._port, None
            if port is None:
                return
            with contextlib.suppress(OSError):
                port.write(encode([OFF] * self.led_count))
            with contextlib.suppress(OSError):
                port.close()
