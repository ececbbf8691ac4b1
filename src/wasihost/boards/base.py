"""The board seam: what any hardware backend must provide.

The simulated board and the Raspberry Pi board implement the same
``Board`` protocol, so the runtime and every capability work unchanged on
either. Checks that do not depend on hardware (grants, rate limits) live
above the board, in ``wasihost.capabilities``, so every board shares them.

Thread rules: the host calls a board from worker threads, never from the
event loop, and may call it from several threads at once; a board guards
its own shared state.

Failure rules: a device failure raises ``BoardError`` with a message fit
to be shown to a plugin author (it becomes the WIT error string). Missing
hardware at start is not fatal: the board still constructs and the
affected methods raise ``BoardError`` saying what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from wasihost.errors import BoardError

Color = tuple[int, int, int]
OFF: Color = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class Dht22Reading:
    temperature_c: float
    humidity_percent: float


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    total_kb: int
    available_kb: int


@dataclass(frozen=True, slots=True)
class BoardProblem:
    """One device that cannot work, what it lacks and how to fix it.

    ``device`` is a stable key (``dht22``, ``i2c``, ``leds``, ``buzzer``, ``fan``,
    ``cpu-temperature``, ``system``) so the web layer can match problems to
    the plugins whose grants use that device. ``busy`` marks a device another
    process holds (often the running host itself, seen from ``doctor``).
    """

    device: str
    label: str
    what: str
    fix: str
    busy: bool = False

    def message(self) -> str:
        return f"{self.label} missing: {self.what} (fix: {self.fix})"

    def error(self) -> BoardError:
        return BoardError(self.message())

    def to_json(self) -> dict[str, str | bool]:
        return {
            "device": self.device,
            "problem": self.message(),
            "what": self.what,
            "fix": self.fix,
            "busy": self.busy,
        }


class I2cDevice(Protocol):
    """A chip on a simulated I2C bus (emulated chips, or fakes in plugin tests)."""

    def transfer(self, data: bytes, read_len: int) -> bytes:
        """Write ``data`` then read ``read_len`` bytes; raise ValueError for a NACK."""
        ...


class Board(Protocol):
    """A set of devices: sensors, an I2C bus, an LED strip, a buzzer and a fan."""

    kind: str
    led_count: int

    def read_dht22(self, pin: int) -> Dht22Reading:
        """One DHT22 measurement; raises BoardError when the read fails."""
        ...

    def read_cpu_temperature(self) -> float:
        """SoC temperature in °C."""
        ...

    def i2c_transfer(self, address: int, data: bytes, read_len: int) -> bytes:
        """Write ``data`` then read ``read_len`` bytes as one combined transaction."""
        ...

    def write_leds(self, colors: Sequence[Color]) -> None:
        """Show the whole strip; called once per poll cycle with ``led_count`` colours."""
        ...

    def beep(self, count: int, duration_ms: int, interval_ms: int) -> None:
        """Start a beep pattern without blocking the caller."""
        ...

    def set_fan(self, on: bool) -> None: ...

    def get_fan(self) -> bool:
        """The fan state as the hardware reports it."""
        ...

    def memory(self) -> MemoryInfo: ...

    def cpu_load_percent(self) -> float:
        """One-minute load average over all cores, in percent."""
        ...

    def uptime_seconds(self) -> int: ...

    def model(self) -> str | None:
        """The hardware's own name, for Home Assistant's device page; None when
        the board has none to give (simulated)."""
        ...

    def problems(self) -> list[BoardProblem]:
        """Devices that cannot work right now, with what is missing and the fix."""
        ...

    def close(self) -> None:
        """Release devices and leave actuators in their safe state (off)."""
        ...
