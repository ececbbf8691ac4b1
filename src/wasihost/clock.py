"""The host's clocks, in one place every layer may import.

Timestamps (readings, history, MQTT) use the wall clock; durations and
deadlines use ``time.monotonic``, which wall-clock jumps (NTP at boot on a
Pi without an RTC) do not move. Everything that reads the time takes it as
an injectable callable, so tests step it instead of sleeping.
"""

from __future__ import annotations

import time


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, for timestamps people and peers read."""
    return time.time_ns() // 1_000_000
