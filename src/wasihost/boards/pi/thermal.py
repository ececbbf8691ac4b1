"""The SoC temperature from the kernel's thermal zone.

``/sys/class/thermal/thermal_zone0/temp`` is ``cpu-thermal`` on Pi 4 and
Pi 5 and holds milli-degrees Celsius. It is world-readable, so no group is
needed; when it is absent the host is not on a Pi (or sysfs is not mounted).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wasihost.boards.base import BoardProblem
from wasihost.errors import BoardError

ZONE = Path("class/thermal/thermal_zone0/temp")


def read_text(path: Path) -> str:
    return path.read_text(encoding="ascii")


class CpuThermal:
    """Reads the SoC temperature on each call (the kernel updates it continuously)."""

    def __init__(self, sys_root: Path = Path("/sys"), read: Callable[[Path], str] = read_text):
        self.path = sys_root / ZONE
        self._read = read

    def _missing(self) -> BoardProblem:
        return BoardProblem(
            "cpu-temperature",
            "CPU temperature",
            f"{self.path} (no thermal zone: not a Raspberry Pi, or sysfs is not mounted)",
            'run wasihost on the Pi, or use [board] kind = "sim"',
        )

    def problem(self) -> BoardProblem | None:
        if self.path.exists():
            return None
        return self._missing()

    def read(self) -> float:
        """Degrees Celsius, to 0.1 °C."""
        try:
            milli = int(self._read(self.path).strip())
        except FileNotFoundError:
            raise self._missing().error() from None
        except OSError as exc:
            raise BoardError(f"CPU temperature: cannot read {self.path}: {exc.strerror}") from None
        except ValueError:
            raise BoardError(f"CPU temperature: {self.path} does not hold a number") from None
        return round(milli / 1000.0, 1)
