"""The simulated board: plausible sensors and virtual actuators.

Devices: a DHT22 on any pin, a BME680 at I2C 0x77 and an SHT31 at 0x44
(emulated chips that follow their datasheets), the CPU temperature and
system figures, ``led_count`` LEDs, a buzzer and a fan.

It lets anyone run the host with no hardware, and it is the board every
test uses. Readings drift as a seeded random walk, so a given ``seed``
gives the same sequence of values on every run; each DHT22 read fails
now and then, as the real sensor does. Test handles (``set_dht22``,
``set_bme680``, ``fail_next_dht22_reads``, ``led_writes``, ``beeps``) let
tests steer and observe it without sleeping.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from wasihost.boards.base import OFF, BoardProblem, Color, Dht22Reading, I2cDevice, MemoryInfo
from wasihost.boards.bme680_chip import Bme680Chip
from wasihost.boards.sht31_chip import Sht31Chip
from wasihost.errors import BoardError

BEEPS_KEPT = 1000  # beep patterns remembered for tests, newest last

DHT22_FAILURE_RATE = 0.05
BME680_ADDRESS = 0x77
SHT31_ADDRESS = 0x44


@dataclass
class _Walk:
    """A bounded random walk: each step moves by at most ``step``."""

    value: float
    low: float
    high: float
    step: float

    def advance(self, rng: random.Random) -> float:
        self.value = min(self.high, max(self.low, self.value + rng.uniform(-self.step, self.step)))
        return self.value


@dataclass(frozen=True, slots=True)
class Beep:
    count: int
    duration_ms: int
    interval_ms: int


class SimBoard:
    """A board with a DHT22 on any pin, a BME680 at 0x77, an SHT31 at 0x44 and
    ``led_count`` LEDs."""

    kind = "sim"

    def __init__(self, led_count: int = 11, seed: int | None = None) -> None:
        self.led_count = led_count
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._room_temp = _Walk(21.5, 10.0, 35.0, 0.15)
        self._room_humidity = _Walk(45.0, 20.0, 80.0, 0.5)
        self._cpu_temp = _Walk(48.0, 38.0, 75.0, 0.8)
        self._cpu_load = _Walk(12.0, 1.0, 95.0, 3.0)
        self._pressure = _Walk(1013.0, 980.0, 1040.0, 0.1)
        self._gas = _Walk(120_000.0, 20_000.0, 300_000.0, 1500.0)
        self._fixed_dht22: Dht22Reading | None = None
        self._dht22_failures_pending = 0
        self._dht22_failure_rate = DHT22_FAILURE_RATE
        self._boot_ticks = 3600
        self.bme680 = Bme680Chip(random.Random(self._rng.random()))
        self.sht31 = Sht31Chip(random.Random(self._rng.random()))
        self._bme680_pinned = False
        self._sht31_pinned = False
        self.i2c_devices: dict[int, I2cDevice] = {
            BME680_ADDRESS: self.bme680,
            SHT31_ADDRESS: self.sht31,
        }
        self.leds: list[Color] = [OFF] * led_count
        self.led_writes = 0
        self.beeps: list[Beep] = []
        self.fan_on = False
        self.fan_changes = 0
        self.closed = False

    # -- test handles -------------------------------------------------------
    def set_dht22(self, temperature_c: float, humidity_percent: float) -> None:
        """Pin the DHT22 to this reading (and stop random read failures)."""
        with self._lock:
            self._fixed_dht22 = Dht22Reading(temperature_c, humidity_percent)
            self._dht22_failure_rate = 0.0

    def set_bme680(
        self,
        temperature_c: float,
        humidity_percent: float,
        pressure_hpa: float,
        gas_resistance_ohm: float,
    ) -> None:
        """Pin what the emulated BME680 measures (it stops following the room)."""
        with self._lock:
            self._bme680_pinned = True
            self.bme680.set_environment(
                temperature_c, humidity_percent, pressure_hpa, gas_resistance_ohm
            )

    def set_sht31(self, temperature_c: float, humidity_percent: float) -> None:
        """Pin what the emulated SHT31 measures (it stops following the room)."""
        with self._lock:
            self._sht31_pinned = True
            self.sht31.set_environment(temperature_c, humidity_percent)

    def set_cpu_temperature(self, temperature_c: float) -> None:
        """Pin the CPU temperature (the walk resumes from it, without noise)."""
        with self._lock:
            self._cpu_temp = _Walk(temperature_c, temperature_c, temperature_c, 0.0)

    def fail_next_dht22_reads(self, count: int = 1) -> None:
        with self._lock:
            self._dht22_failures_pending += count

    # -- Board --------------------------------------------------------------
    def read_dht22(self, pin: int) -> Dht22Reading:
        with self._lock:
            if self._dht22_failures_pending:
                self._dht22_failures_pending -= 1
                raise BoardError(f"DHT22 on GPIO {pin}: checksum mismatch (simulated)")
            if self._rng.random() < self._dht22_failure_rate:
                raise BoardError(f"DHT22 on GPIO {pin}: no response (simulated)")
            if self._fixed_dht22 is not None:
                return self._fixed_dht22
            return Dht22Reading(
                round(self._room_temp.advance(self._rng), 1),
                round(self._room_humidity.advance(self._rng), 1),
            )

    def read_cpu_temperature(self) -> float:
        with self._lock:
            return round(self._cpu_temp.advance(self._rng), 1)

    def i2c_transfer(self, address: int, data: bytes, read_len: int) -> bytes:
        device = self.i2c_devices.get(address)
        if device is None:
            raise BoardError(f"I2C address 0x{address:02x}: no device answered (NACK)")
        with self._lock:
            if address == BME680_ADDRESS and data and data[0] == 0x74 and not self._bme680_pinned:
                # ctrl_meas: a new measurement, let the air drift
                self.bme680.set_environment(
                    self._room_temp.value + 1.5,
                    self._room_humidity.value - 3.0,
                    self._pressure.advance(self._rng),
                    self._gas.advance(self._rng),
                )
            if address == SHT31_ADDRESS and not self._sht31_pinned:  # beside the DHT22
                self.sht31.set_environment(
                    self._room_temp.value - 0.3, self._room_humidity.value + 1.0
                )
            try:
                return device.transfer(data, read_len)
            except ValueError as exc:
                raise BoardError(f"I2C address 0x{address:02x}: {exc}") from None

    def write_leds(self, colors: Sequence[Color]) -> None:
        if len(colors) != self.led_count:
            raise BoardError(f"LED strip has {self.led_count} LEDs, got {len(colors)} colours")
        with self._lock:
            self.leds = list(colors)
            self.led_writes += 1

    def beep(self, count: int, duration_ms: int, interval_ms: int) -> None:
        with self._lock:
            self.beeps.append(Beep(count, duration_ms, interval_ms))
            del self.beeps[:-BEEPS_KEPT]  # the newest only: a year of alarms is not kept

    def set_fan(self, on: bool) -> None:
        with self._lock:
            if on != self.fan_on:
                self.fan_changes += 1
            self.fan_on = on

    def get_fan(self) -> bool:
        return self.fan_on

    def memory(self) -> MemoryInfo:
        with self._lock:
            used = 1_200_000 + self._rng.randint(-50_000, 50_000)
        return MemoryInfo(total_kb=3_884_000, available_kb=3_884_000 - used)

    def cpu_load_percent(self) -> float:
        with self._lock:
            return round(self._cpu_load.advance(self._rng), 1)

    def model(self) -> str | None:
        return None

    def uptime_seconds(self) -> int:
        with self._lock:
            self._boot_ticks += 2
            return self._boot_ticks

    def problems(self) -> list[BoardProblem]:
        return []  # every simulated device is always there

    def close(self) -> None:
        self.set_fan(False)
        with self._lock:  # the strip itself, not write_leds: nothing to count or refuse
            self.leds = [OFF] * self.led_count
        self.closed = True
