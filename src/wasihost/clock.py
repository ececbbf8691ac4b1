"""The host's clocks, in one place every layer may import.

Timestamps (readings, history, MQTT) use the wall clock; durations and
deadlines use ``time.monotonic``, which wall-clock jumps (NTP at boot on a
Pi without an RTC) do not move. Everything that reads the time takes it as
an injectable callable, so tests step it instead of sleeping.

A wall-clock stamp is never turned into a duration by subtracting another
one taken at a different time, on this host or on a peer: the clock may have
stepped in between, by hours to decades, forward or back. Where only stamps
exist (stored history, a guest that sees only ``get-timestamp-ms``), code
bounds what a step can do instead; docs/ARCHITECTURE.md, "Clock jumps".
"""

from __future__ import annotations

import time

# Wall-clock stamps before this (2020-01-01T00:00Z) were taken before the
# clock was set: a Pi without a real-time clock boots in 1970.
SANE_EPOCH_MS = 1_577_836_800_000


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, for timestamps people and peers read."""
    return time.time_ns() // 1_000_000
