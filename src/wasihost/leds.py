"""The LED buffer plugins write into and the host flushes once per cycle.

Plugins never touch the strip: ``led-controller`` calls only change this
buffer, and the poll cycle writes the whole buffer to the board once, so a
strip costs one bus transfer per cycle however many plugins write to it.
"""

from __future__ import annotations

import threading

from wasihost.boards.base import OFF, Color


class LedBuffer:
    """``count`` colours, written from plugin threads and read by the cycle."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._colors: list[Color] = [OFF] * count
        self._lock = threading.Lock()

    def set(self, index: int, color: Color) -> None:
        if not 0 <= index < self.count:
            raise IndexError(f"LED index {index} outside 0..{self.count - 1}")
        with self._lock:
            self._colors[index] = color

    def snapshot(self) -> list[Color]:
        """A copy of every colour, taken atomically."""
        with self._lock:
            return list(self._colors)
