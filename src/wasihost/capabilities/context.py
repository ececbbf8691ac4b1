"""What a capability call knows about its caller: the plugin, its grants, the board.

Every capability module receives one ``CapabilityContext`` per plugin, so a
host function never has to work out who called it and grants are checked
in one place, above the board.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from wasihost.boards.base import Board
from wasihost.clock import wall_clock_ms
from wasihost.errors import CapabilityError
from wasihost.leds import LedBuffer
from wasihost.ratelimit import RateLimit

log = logging.getLogger("wasihost.capabilities")


@dataclass(frozen=True)
class Grants:
    """The hardware a plugin may touch beyond what its world imports."""

    leds: frozenset[int] = frozenset()
    gpio_pins: frozenset[int] = frozenset()
    i2c_addresses: frozenset[int] = frozenset()
    buzzer: bool = False
    fan: bool = False


# Ranges of the WIT integer types capabilities take.
_INTEGERS = {
    "u8": (0, 2**8 - 1),
    "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1),
    "s8": (-(2**7), 2**7 - 1),
    "s16": (-(2**15), 2**15 - 1),
    "s32": (-(2**31), 2**31 - 1),
    "s64": (-(2**63), 2**63 - 1),
}


def fits(value: object, wit_type: str) -> bool:
    """Whether ``value`` is one a WIT ``wit_type`` can carry (floats: finite ones)."""
    if wit_type == "bool":
        return isinstance(value, bool)
    if wit_type in ("f32", "f64"):
        return isinstance(value, float) and math.isfinite(value)
    if wit_type == "list<u8>":
        return isinstance(value, bytes | bytearray | memoryview)
    low, high = _INTEGERS[wit_type]
    return type(value) is int and low <= value <= high


@dataclass
class CapabilityContext:
    plugin: str
    board: Board
    leds: LedBuffer
    grants: Grants
    clock_ms: Callable[[], int] = wall_clock_ms  # injectable so tests need not sleep
    actuator_changes_per_minute: int = 6
    refusals: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _limits: dict[str, RateLimit] = field(default_factory=dict, repr=False)

    def within_rate(self, actuator: str) -> None:
        """Count one change of ``actuator``; refuse it past the per-minute limit."""
        with self._lock:
            limit = self._limits.get(actuator)
            if limit is None:
                limit = self._limits[actuator] = RateLimit(self.actuator_changes_per_minute)
        if not limit.allow():
            raise self.refuse(
                f"{actuator}-rate",
                f"{actuator} changes limited to {limit.limit} per minute for {self.plugin}",
            )

    def require(self, function: str, **values: tuple[object, str]) -> None:
        """Refuse any argument its WIT type cannot carry: ``name=(value, "u8")``.

        The load check makes every component declare the contract's types, so
        this only fires if a value gets past it (a looser call path, a
        forgery the check misses); then the guest gets the WIT error and
        nothing out of range reaches the board, the LED buffer or the state
        the web serves (one NaN there and a browser cannot parse the page's data).
        """
        for name, (value, wit_type) in values.items():
            if not fits(value, wit_type):
                cut = value[:40] if isinstance(value, str | bytes | list) else value
                shown = repr(cut)
                shown = shown if len(shown) <= 40 else shown[:39] + "…"
                param = name.replace("_", "-")
                raise self.refuse("wit-type", f"{function}: {param} = {shown} is not a {wit_type}")

    def refuse(self, kind: str, message: str) -> CapabilityError:
        """Count a refused call and log it the first time this kind happens.

        Logging only the first of each kind keeps a plugin that retries a
        forbidden call every poll from flooding the log.
        """
        with self._lock:
            self.refusals[kind] += 1
            first = self.refusals[kind] == 1
        if first:
            log.warning("[%s] refused: %s (logged once per kind)", self.plugin, message)
        return CapabilityError(message)
