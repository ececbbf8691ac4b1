"""The Raspberry Pi board: real devices behind the ``Board`` protocol.

Each device lives in its own module and is built here once; a device that
cannot start records a ``BoardProblem`` and raises it when used, so one
missing interface costs only the plugins that use it (``problems()`` lists
them for ``wasihost doctor`` and ``/api/plugins``).

Like gpiozero's pin factories, the seams where hardware is touched are
constructor parameters whose defaults are the real machine: the sysfs and
procfs roots, the I2C bus opener and message type, the ``gpiod`` module,
the SPI opener, the clock. Tests pass fakes at exactly those seams and the
rest of this code runs as it does on a Pi.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wasihost.boards.base import BoardProblem, Color, Dht22Reading, MemoryInfo
from wasihost.boards.pi.buzzer import Buzzer
from wasihost.boards.pi.dht22 import IioDht22
from wasihost.boards.pi.i2c import Bus, Messages, SmbusI2c
from wasihost.boards.pi.procfs import ProcStats
from wasihost.boards.pi.relay import Relay
from wasihost.boards.pi.setup import devicetree_model
from wasihost.boards.pi.thermal import CpuThermal, read_text
from wasihost.boards.pi.ws2812 import SpidevFile, SpiPort, Ws2812Strip
from wasihost.config import HostConfig, PiBoardConfig


class PiBoard:
    """A Raspberry Pi 4 or 5 with a DHT22, an I2C bus, a WS2812B strip, a buzzer and a fan."""

    kind = "pi"

    def __init__(
        self,
        settings: PiBoardConfig | None = None,
        *,
        led_count: int = 11,
        dht22_pin: int = 4,
        sys_root: Path = Path("/sys"),
        proc_root: Path = Path("/proc"),
        dev_root: Path = Path("/dev"),
        open_i2c_bus: Callable[[str], Bus] | None = None,
        i2c_messages: Messages | None = None,
        gpiod: Any | None = None,
        open_spi: Callable[[str, int], SpiPort] = SpidevFile.open,
        read: Callable[[Path], str] = read_text,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        cpu_count: Callable[[], int | None] = os.cpu_count,
    ) -> None:
        settings = settings or PiBoardConfig()
        self.led_count = led_count
        self.sys_root = sys_root
        self.dht22 = IioDht22(dht22_pin, sys_root, monotonic=monotonic, sleep=sleep, read=read)
        self.i2c = SmbusI2c(settings.i2c_bus, dev_root, open_i2c_bus, i2c_messages)
        self.thermal = CpuThermal(sys_root, read)
        self.proc = ProcStats(proc_root, cpu_count, read)
        self.strip = Ws2812Strip(
            settings.spi_device, led_count, settings.led_brightness, sys_root, open_spi, read
        )
        chip = settings.gpio_chip
        self.fan = Relay("fan", "fan", chip, settings.fan_pin, settings.fan_active_low, gpiod)
        self.buzzer = Buzzer(
            Relay("buzzer", "buzzer", chip, settings.buzzer_pin, settings.buzzer_active_low, gpiod)
        )

    @classmethod
    def from_config(cls, config: HostConfig, **seams: Any) -> PiBoard:
        """The board ``[board]``, ``[board.pi]`` and ``[sensors.dht22]`` describe;
        ``seams`` override the hardware access points (tests only)."""
        return cls(
            config.board.pi,
            led_count=config.board.led_count,
            dht22_pin=config.sensors.dht22.gpio_pin,
            **seams,
        )

    def problems(self) -> list[BoardProblem]:
        """What cannot work right now, each with its fix; empty when all is well."""
        found = [
            self.dht22.problem(),
            self.i2c.problem(),
            self.strip.problem(),
            self.buzzer.problem(),
            self.fan.problem(),
            self.thermal.problem(),
        ]
        return [problem for problem in found if problem is not None]

    # -- Board --------------------------------------------------------------
    def read_dht22(self, pin: int) -> Dht22Reading:
        return self.dht22.read(pin)

    def read_cpu_temperature(self) -> float:
        return self.thermal.read()

    def i2c_transfer(self, address: int, data: bytes, read_len: int) -> bytes:
        return self.i2c.transfer(address, data, read_len)

    def write_leds(self, colors: Sequence[Color]) -> None:
        self.strip.write(colors)

    def beep(self, count: int, duration_ms: int, interval_ms: int) -> None:
        self.buzzer.beep(count, duration_ms, interval_ms)

    def set_fan(self, on: bool) -> None:
        self.fan.set(on)

    def get_fan(self) -> bool:
        return self.fan.get()

    def memory(self) -> MemoryInfo:
        return self.proc.memory()

    def cpu_load_percent(self) -> float:
        return self.proc.cpu_load_percent()

    def uptime_seconds(self) -> int:
        return self.proc.uptime_seconds()

    def model(self) -> str | None:
        return devicetree_model(self.sys_root)

    def close(self) -> None:
        """Buzzer and fan off and released, LEDs dark, bus closed."""
        self.buzzer.close()
        self.fan.close()
        self.strip.close()
        self.i2c.close()
