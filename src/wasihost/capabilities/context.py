"""What a capability call knows about its caller: the plugin, its grants, the board.

Every capability module receives one ``CapabilityContext`` per plugin, so a
host function never has to work out who called it and grants are checked
in one place, above the board.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from wasihost.boards.base import Board
from wasihost.clock import wall_clock_ms
from wasihost.errors import CapabilityError
from wasihost.grants import Grant, Grants
from wasihost.leds import LedBuffer
from wasihost.ratelimit import RateLimit

log = logging.getLogger("wasihost.capabilities")


@dataclass
class CapabilityContext:
    plugin: str
    board: Board
    leds: LedBuffer
    grants: Grants
    clock_ms: Callable[[], int] = wall_clock_ms  # injectable so tests need not sleep
    actuator_changes_per_minute: int = 6
    # The host's monotonic clock, which rate limits count on (simulated in tests and benches).
    monotonic: Callable[[], float] = time.monotonic
    refusals: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _limits: dict[str, RateLimit] = field(default_factory=dict, repr=False)

    def within_rate(self, actuator: str) -> None:
        """Count one change of ``actuator``; refuse it past the per-minute limit."""
        with self._lock:
            limit = self._limits.get(actuator)
            if limit is None:
                limit = self._limits[actuator] = RateLimit(
                    self.actuator_changes_per_minute, clock=self.monotonic
                )
        if not limit.allow():
            raise self.refuse(
                f"{actuator}-rate",
                f"{actuator} changes limited to {limit.limit} per minute for {self.plugin}",
            )

    def require_grant(self, grant: Grant, value: int | None = None) -> None:
        """Refuse the call unless ``grant`` covers ``value`` (a switch: is on)."""
        if not grant.allows(self.grants, value):
            raise self.refuse(grant.refusal, grant.refusal_message(self.grants, self.plugin, value))

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
