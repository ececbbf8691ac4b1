"""Fakes at the Pi board's lowest seams, for tests on any machine.

Like gpiozero's mock pin factory, these are a real backend: ``FakePi``
builds a temporary sysfs/procfs/dev tree and hands ``PiBoard`` fakes of
exactly what it touches (an ``SMBus`` and ``i2c_msg``, the ``gpiod``
module, the SPI device, the clock), so the board's own code runs as on a
Pi. The fakes model the far side of the wire, not our code: the SMBus
answers through emulated chips (``Bme680Chip``), the GPIO lines hold
physical levels that persist after release as the kernel's do, and the
LED strip decodes the SPI bit stream by pulse timing as a WS2812B does.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from wasihost.boards.base import Color, I2cDevice
from wasihost.boards.pi.board import PiBoard
from wasihost.boards.pi.dht22 import DRIVER_TIMEOUT_S
from wasihost.boards.pi.setup import Machine
from wasihost.config import PiBoardConfig

I2C_M_RD = 0x0001


# -- I2C ------------------------------------------------------------------------
class FakeMessage:
    """``smbus2.i2c_msg``'s shape: addr, flags, len, buf; bytes() and iter()."""

    def __init__(self, addr: int, flags: int, buf: bytes | bytearray) -> None:
        self.addr, self.flags, self.buf = addr, flags, bytearray(buf)
        self.len = len(self.buf)

    def __bytes__(self) -> bytes:
        return bytes(self.buf)

    def __iter__(self) -> Iterator[int]:
        return iter(self.buf)

    @staticmethod
    def write(address: int, buf: bytes) -> FakeMessage:
        return FakeMessage(address, 0, bytes(buf))

    @staticmethod
    def read(address: int, length: int) -> FakeMessage:
        return FakeMessage(address, I2C_M_RD, bytes(length))


def _fill(message: Any, data: bytes) -> None:
    if isinstance(message.buf, bytearray):
        message.buf[:] = data
    else:  # a real smbus2.i2c_msg: a ctypes buffer
        ctypes.memmove(message.buf, data, len(data))


class CommandChip:
    """A chip driven by commands rather than registers (the SHT31), on a ``FakeSmbus``.

    The bus treats a bare chip as register-addressed, as the BME680 is: it
    keeps the chip's register pointer between transactions and hands a read
    the register it reads from. A chip wrapped in this gets each message as
    it was on the wire instead: a write as ``transfer(data, 0)``, a read as
    ``transfer(b"", length)``.
    """

    def __init__(self, chip: I2cDevice) -> None:
        self.chip = chip

    def transfer(self, data: bytes, read_len: int) -> bytes:
        return self.chip.transfer(data, read_len)


class FakeSmbus:
    """An I2C adapter with chips on it; records every ``i2c_rdwr`` as
    ``[("w", addr, data) | ("r", addr, length), ...]``."""

    def __init__(self, devices: dict[int, I2cDevice]) -> None:
        self.devices = devices
        self.transactions: list[list[tuple[str, int, bytes | int]]] = []
        self.fail_with: list[int] = []  # errnos raised by the next transactions
        self.closed = False
        self._pointer: dict[int, int] = {}

    def i2c_rdwr(self, *messages: Any) -> None:
        record: list[tuple[str, int, bytes | int]] = []
        for message in messages:
            reading = bool(message.flags & I2C_M_RD)
            record.append(
                ("r", message.addr, message.len) if reading else ("w", message.addr, bytes(message))
            )
        self.transactions.append(record)
        if self.fail_with:
            code = self.fail_with.pop(0)
            raise OSError(code, errno.errorcode.get(code, "error"))
        pending = b""
        for message in messages:
            device = self.devices.get(message.addr)
            if device is None:
                raise OSError(errno.EREMOTEIO, "Remote I/O error")  # i2c-bcm2835's NACK
            if isinstance(device, CommandChip):
                self._command(device, message)
                continue
            if message.flags & I2C_M_RD:
                register = pending or bytes([self._pointer.get(message.addr, 0)])
                try:
                    _fill(message, device.transfer(register, message.len))
                except ValueError:
                    raise OSError(errno.EIO, "Input/output error") from None
                pending = b""
            elif message.len:
                pending = bytes(message)
                self._pointer[message.addr] = pending[-1] if len(pending) == 1 else pending[-2]
                if len(pending) > 1:  # a register write: do it now, like the chip
                    device.transfer(pending, 0)
                    pending = bytes([self._pointer[message.addr]])

    @staticmethod
    def _command(chip: CommandChip, message: Any) -> None:
        try:
            if message.flags & I2C_M_RD:
                _fill(message, chip.transfer(b"", message.len))
            elif message.len:
                chip.transfer(bytes(message), 0)
        except ValueError:
            raise OSError(errno.EIO, "Input/output error") from None

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeI2cAdapter:
    """Opens ``FakeSmbus`` for device files that exist in the fake /dev."""

    bus: FakeSmbus
    deny: bool = False
    opened: list[str] = field(default_factory=list)

    def open(self, path: str) -> FakeSmbus:
        if self.deny:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        if not Path(path).exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.opened.append(path)
        return self.bus


# -- GPIO (the gpiod 2.x names the relay uses) -----------------------------------
class Direction(Enum):
    AS_IS = 1
    INPUT = 2
    OUTPUT = 3


class Value(Enum):
    INACTIVE = 0
    ACTIVE = 1


@dataclass
class FakeLineSettings:
    direction: Direction = Direction.AS_IS
    output_value: Value = Value.INACTIVE


class FakeRequest:
    def __init__(self, gpiod: FakeGpiod, chip: str, consumer: str | None, pins: list[int]) -> None:
        self.gpiod, self.chip, self.consumer, self.pins = gpiod, chip, consumer, pins
        self.released = False
        self.history: list[tuple[int, bool]] = [
            (pin, gpiod.levels[(chip, pin)]) for pin in pins if (chip, pin) in gpiod.levels
        ]  # (pin, level) from the request on

    def set_value(self, line: int, value: Value) -> None:
        self._check(line)
        self.gpiod.levels[(self.chip, line)] = value is Value.ACTIVE
        self.history.append((line, value is Value.ACTIVE))

    def get_value(self, line: int) -> Value:
        self._check(line)
        return Value.ACTIVE if self.gpiod.levels[(self.chip, line)] else Value.INACTIVE

    def release(self) -> None:
        self._check(None)
        self.released = True
        for pin in self.pins:
            self.gpiod.held.discard((self.chip, pin))

    def _check(self, line: int | None) -> None:
        if self.released:
            raise RuntimeError("request released")  # gpiod raises RequestReleasedError
        if line is not None and line not in self.pins:
            raise ValueError(f"line {line} not in this request")


class FakeGpiod:
    """The ``gpiod`` module over chips that exist as files in the fake /dev.

    ``levels`` holds each line's physical level (True = high) and, as on
    the Pi, keeps it after the line is released; ``held`` the requested
    lines, so a second request of one is ``EBUSY``.
    """

    line = SimpleNamespace(Direction=Direction, Value=Value)
    LineSettings = FakeLineSettings

    def __init__(self, lines: int = 54) -> None:
        self.lines = lines
        self.levels: dict[tuple[str, int], bool] = {}
        self.held: set[tuple[str, int]] = set()
        self.requests: list[FakeRequest] = []

    def request_lines(
        self, path: str, config: dict[int, FakeLineSettings], consumer: str | None = None
    ) -> FakeRequest:
        if not Path(path).exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        for pin in config:
            if not 0 <= pin < self.lines:
                raise ValueError(f"line offset {pin} out of range")
            if (path, pin) in self.held:
                raise OSError(errno.EBUSY, "Device or resource busy")
        for pin, settings in config.items():
            self.held.add((path, pin))
            if settings.direction is Direction.OUTPUT:
                self.levels[(path, pin)] = settings.output_value is Value.ACTIVE
        request = FakeRequest(self, path, consumer, list(config))
        self.requests.append(request)
        return request


# -- SPI and the strip ------------------------------------------------------------
# WS2812B: a high pulse shorter than this is a 0, longer a 1 (the datasheet's
# T0H max 550 ns and T1H min 650 ns; V5 parts: 380 / 580 ns); a low this long latches.
ONE_THRESHOLD_NS = 600.0
LATCH_NS = 50_000.0


def decode_ws2812(frame: bytes, hz: int) -> tuple[list[list[Color]], list[float]]:
    """What a WS2812B strip shows for this SPI stream, by pulse timing.

    Returns the colours latched by each reset (RGB, from the GRB wire order)
    and the duration in ns of every low gap long enough to latch.
    Raises ValueError for a pulse the chip could not read.
    """
    bit_ns = 1e9 / hz
    bits = "".join(f"{byte:08b}" for byte in frame)
    latched: list[list[Color]] = []
    gaps: list[float] = []
    data: list[int] = []
    for level, run in itertools.groupby(bits):
        ns = len(list(run)) * bit_ns
        if level == "1":
            if not 150 <= ns <= 1000:
                raise ValueError(f"high pulse of {ns:.0f} ns is outside what a WS2812B reads")
            data.append(1 if ns > ONE_THRESHOLD_NS else 0)
        elif ns >= LATCH_NS:
            gaps.append(ns)
            if data:
                if len(data) % 24:
                    raise ValueError(f"{len(data)} bits latched, not a whole number of LEDs")
                latched.append(_colors(data))
                data = []
        elif not 200 <= ns <= 5000:
            raise ValueError(f"low gap of {ns:.0f} ns between bits")
    if data:
        raise ValueError(f"{len(data)} bits never latched (no reset gap at the end)")
    return latched, gaps


def _colors(bits: Sequence[int]) -> list[Color]:
    values = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]
    return [(values[i + 1], values[i], values[i + 2]) for i in range(0, len(values), 3)]


class FakeSpiPort:
    def __init__(self, spi: FakeSpi, path: str, hz: int) -> None:
        self.spi, self.path, self.hz = spi, path, hz
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.spi.fail_with:
            raise OSError(self.spi.fail_with, errno.errorcode[self.spi.fail_with])
        self.spi.frames.append(bytes(data))

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeSpi:
    """Opens SPI devices that exist in the fake /dev; keeps every frame written."""

    frames: list[bytes] = field(default_factory=list)
    ports: list[FakeSpiPort] = field(default_factory=list)
    fail_with: int = 0

    def open(self, path: str, hz: int) -> FakeSpiPort:
        if not Path(path).exists():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        port = FakeSpiPort(self, path, hz)
        self.ports.append(port)
        return port

    def shown(self) -> list[Color]:
        """What the strip shows after the last frame."""
        latched, _ = decode_ws2812(self.frames[-1], self.ports[-1].hz)
        return latched[-1]


# -- a whole Pi -------------------------------------------------------------------
BOOT_CONFIG = "[all]\ndtparam=i2c_arm=on\ndtparam=spi=on\ndtoverlay=dht11,gpiopin=4\n"


class FakePi:
    """A Raspberry Pi 5 in ``root``: sysfs, procfs, /dev and config.txt as files,
    a BME680 at 0x77 on I2C bus 1, a DHT22 on GPIO 4, the header's GPIO chip,
    SPI for the strip, and a clock that only moves when told (or slept on).

    Break it by deleting files (``remove("dev/i2c-1")``) or through the
    handles (``fail_dht``, ``bus.fail_with``, ``adapter.deny``).
    """

    def __init__(self, root: Path, devices: dict[int, I2cDevice] | None = None) -> None:
        from wasihost.boards.bme680_chip import Bme680Chip

        self.root = root
        self.sys, self.proc, self.dev = root / "sys", root / "proc", root / "dev"
        self.bme680 = Bme680Chip()
        self.bus = FakeSmbus(devices if devices is not None else {0x77: self.bme680})
        self.adapter = FakeI2cAdapter(self.bus)
        self.gpiod = FakeGpiod()
        self.spi = FakeSpi()
        self.now = 1000.0
        self.slept: list[float] = []
        self.dht_failures: list[int] = []
        self.chip_labels = {"gpiochip0": "pinctrl-rp1"}
        iio = self.sys / "bus/iio/devices/iio:device0"
        node = self.sys / "firmware/devicetree/base/dht11@4"
        files = {
            iio / "name": "dht11\n",
            self.sys / "firmware/devicetree/base/model": "Raspberry Pi 5 Model B Rev 1.0\0",
            self.sys / "class/thermal/thermal_zone0/temp": "48250\n",
            self.sys / "module/spidev/parameters/bufsiz": "4096\n",
            self.proc / "meminfo": "MemTotal:        8245056 kB\nMemFree:  6000000 kB\n"
            "MemAvailable:    7412345 kB\n",
            self.proc / "loadavg": "0.52 0.40 0.33 1/321 4242\n",
            self.proc / "uptime": "12345.67 45678.90\n",
            self.dev / "i2c-1": "",
            self.dev / "spidev0.0": "",
            self.dev / "gpiochip0": "",
            root / "boot/firmware/config.txt": BOOT_CONFIG,
        }
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="ascii")
        node.mkdir(parents=True)
        (iio / "of_node").symlink_to(node)
        self.set_dht(21.5, 45.2)

    # -- handles ------------------------------------------------------------------
    def set_dht(self, temperature_c: float, humidity_percent: float) -> None:
        iio = self.sys / "bus/iio/devices/iio:device0"
        if iio.exists():
            (iio / "in_temp_input").write_text(f"{round(temperature_c * 1000)}\n")
            (iio / "in_humidityrelative_input").write_text(f"{round(humidity_percent * 1000)}\n")

    def fail_dht(self, code: int, times: int = 1) -> None:
        """The next ``times`` DHT reads fail with ``code`` (ETIMEDOUT costs the
        driver's 1 s wait on the fake clock)."""
        self.dht_failures += [code] * times

    def remove(self, relative: str) -> None:
        path = self.root / relative
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    def advance(self, seconds: float) -> None:
        self.now += seconds

    # -- seams --------------------------------------------------------------------
    def read(self, path: Path) -> str:
        if path.name == "in_temp_input" and self.dht_failures:
            code = self.dht_failures.pop(0)
            if code == errno.ETIMEDOUT:
                self.now += DRIVER_TIMEOUT_S
            raise OSError(code, errno.errorcode[code])
        return path.read_text(encoding="ascii")

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def settings(self, **overrides: Any) -> PiBoardConfig:
        return PiBoardConfig(**{**self.config_section(), **overrides})

    def config_section(self) -> dict[str, Any]:
        """``[board.pi]`` keys pointing at this fake's /dev."""
        return {"spi_device": str(self.dev / "spidev0.0"), "gpio_chip": str(self.dev / "gpiochip0")}

    def hardware(self) -> dict[str, Any]:
        """``PiBoard`` seams other than the filesystem roots."""
        return {
            "open_i2c_bus": self.adapter.open,
            "i2c_messages": FakeMessage,
            "gpiod": self.gpiod,
            "open_spi": self.spi.open,
            "read": self.read,
            "monotonic": lambda: self.now,
            "sleep": self.sleep,
            "cpu_count": lambda: 4,
        }

    def seams(self) -> dict[str, Any]:
        return {
            "sys_root": self.sys,
            "proc_root": self.proc,
            "dev_root": self.dev,
            **self.hardware(),
        }

    def board(
        self, settings: PiBoardConfig | None = None, led_count: int = 11, dht22_pin: int = 4
    ) -> PiBoard:
        return PiBoard(
            settings or self.settings(), led_count=led_count, dht22_pin=dht22_pin, **self.seams()
        )

    def machine(self, **overrides: Any) -> Machine:
        """A ``doctor`` ``Machine`` looking at this tree, as a user who may open everything."""
        defaults: dict[str, Any] = {
            "sys_root": self.sys,
            "proc_root": self.proc,
            "dev_root": self.dev,
            "boot_configs": (self.root / "boot/firmware/config.txt",),
            "user": "pi",
            "access": lambda path: True,
            "group_of": lambda path: None,
            "membership": lambda user, group: (True, True),
            "chip_label": lambda path: self.chip_labels.get(path.name),
        }
        return Machine(**{**defaults, **overrides})
