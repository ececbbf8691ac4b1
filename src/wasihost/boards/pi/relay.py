"""A relay (fan, buzzer) on one GPIO line through libgpiod 2.x.

The line is requested once, as an output already at the "off" level, so
the relay never clicks on at start. It is driven off and released on
``close`` and, as a last resort, from an ``atexit`` hook; a process killed
outright cannot run either, which is why docs/raspberry-pi.md runs
``python -m wasihost.boards.pi.safe_off`` from systemd's ``ExecStopPost``.

Active-low is mapped here, not through ``LineSettings(active_low=...)``:
the request always speaks physical levels (``Value.ACTIVE`` = high), so
what the code writes is what a meter on the pin shows, and the fake in the
tests models the wire rather than gpiod's logic. The state reported is
read back from the line (``get_value``), not remembered.

``gpiod`` is imported lazily, only here; a test passes a fake module with
the same names (``request_lines``, ``LineSettings``, ``line.Direction``,
``line.Value``).
"""

from __future__ import annotations

import atexit
import importlib
import logging
import threading
from typing import Any

from wasihost.boards.base import BoardProblem
from wasihost.boards.pi.problems import missing_library, open_failure
from wasihost.errors import BoardError

log = logging.getLogger("wasihost.boards.pi")

CHIP_FIX = (
    'set [board.pi] gpio_chip to the chip labelled "pinctrl-rp1" (Pi 5) or '
    '"pinctrl-bcm2711" (Pi 4): `wasihost doctor` names it'
)


def load_gpiod() -> Any | None:
    """The ``gpiod`` module, or None when it is not installed."""
    try:
        return importlib.import_module("gpiod")
    except ImportError:
        return None


class Relay:
    """One relay: ``on``/``off`` mapped to the pin level by ``active_low``; thread-safe."""

    def __init__(
        self,
        device: str,
        label: str,
        chip: str,
        pin: int,
        active_low: bool = True,
        gpiod: Any | None = None,
    ) -> None:
        self.device = device
        self.label = label
        self.chip = chip
        self.pin = pin
        self.active_low = active_low
        self._lock = threading.Lock()
        self._request: Any | None = None
        self._problem: BoardProblem | None = None
        module = gpiod if gpiod is not None else load_gpiod()
        if module is None:
            self._problem = missing_library(device, label, "gpiod")
            return
        self._gpiod: Any = module
        settings = self._gpiod.LineSettings(
            direction=self._gpiod.line.Direction.OUTPUT, output_value=self._level(False)
        )
        try:
            self._request = self._gpiod.request_lines(
                chip, consumer=f"wasihost-{device}", config={pin: settings}
            )
        except FileNotFoundError as exc:
            self._problem = BoardProblem(device, label, f"{chip} ({exc.strerror})", CHIP_FIX)
            return
        except OSError as exc:
            where = f"GPIO {pin} on {chip}"
            self._problem = open_failure(device, label, where, exc, CHIP_FIX, "gpio")
            return
        except ValueError as exc:  # gpiod: offset out of range for this chip
            self._problem = BoardProblem(device, label, f"GPIO {pin} on {chip} ({exc})", CHIP_FIX)
            return
        atexit.register(self.close)

    def _level(self, on: bool) -> Any:
        value = self._gpiod.line.Value
        return value.ACTIVE if on != self.active_low else value.INACTIVE

    def problem(self) -> BoardProblem | None:
        return self._problem

    def _live(self) -> Any:
        if self._problem is not None:
            raise self._problem.error()
        if self._request is None:
            raise BoardError(f"{self.label}: GPIO {self.pin} already released (board closed)")
        return self._request

    def set(self, on: bool) -> None:
        with self._lock:
            request = self._live()
            try:
                request.set_value(self.pin, self._level(on))
            except OSError as exc:
                raise BoardError(f"{self.label}: cannot drive GPIO {self.pin}: {exc}") from None

    def get(self) -> bool:
        """Whether the relay is on, from the level the line reports."""
        with self._lock:
            request = self._live()
            try:
                level = request.get_value(self.pin)
            except OSError as exc:
                raise BoardError(f"{self.label}: cannot read GPIO {self.pin}: {exc}") from None
        high: bool = level == self._gpiod.line.Value.ACTIVE
        return high != self.active_low

    def close(self) -> None:
        """Drive off, then release the line. Idempotent; also the atexit hook."""
        with self._lock:
            request, self._request = self._request, None
            if request is None:
                return
            atexit.unregister(self.close)
            try:
                request.set_value(self.pin, self._level(False))
            except OSError as exc:
                log.error("%s: could not drive GPIO %d off: %s", self.label, self.pin, exc)
            try:
                request.release()
            except OSError as exc:
                log.error("%s: could not release GPIO %d: %s", self.label, self.pin, exc)
