"""Memory, load and uptime from ``/proc``, the kernel's own figures.

Read directly rather than through psutil: three small text files are all
the ``system-info`` interface needs, and it keeps the ``pi`` extra small.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from wasihost.boards.base import MemoryInfo
from wasihost.boards.pi.thermal import read_text
from wasihost.errors import BoardError


class ProcStats:
    """``/proc/meminfo``, ``/proc/loadavg`` and ``/proc/uptime`` under ``proc_root``."""

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        cpu_count: Callable[[], int | None] = os.cpu_count,
        read: Callable[[Path], str] = read_text,
    ) -> None:
        self.root = proc_root
        self._cpus = cpu_count() or 1  # fixed for the life of the process
        self._read = read

    def _text(self, name: str) -> str:
        path = self.root / name
        try:
            return self._read(path)
        except OSError as exc:
            raise BoardError(f"system info: cannot read {path}: {exc.strerror}") from None

    def memory(self) -> MemoryInfo:
        """MemTotal and MemAvailable (the kernel's estimate of what can be had
        without swapping, which is what "free" should mean to an operator)."""
        fields: dict[str, int] = {}
        for line in self._text("meminfo").splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if key in ("MemTotal", "MemAvailable") and parts and parts[0].isdigit():
                fields[key] = int(parts[0])  # kB
        if "MemTotal" not in fields or "MemAvailable" not in fields:
            raise BoardError(f"system info: {self.root / 'meminfo'} lacks MemTotal/MemAvailable")
        return MemoryInfo(total_kb=fields["MemTotal"], available_kb=fields["MemAvailable"])

    def cpu_load_percent(self) -> float:
        """The one-minute load average over all cores, in percent (may pass 100
        when more tasks are runnable than there are cores)."""
        try:
            load = float(self._text("loadavg").split()[0])
        except (IndexError, ValueError):
            raise BoardError(f"system info: {self.root / 'loadavg'} is malformed") from None
        return round(100.0 * load / self._cpus, 1)

    def uptime_seconds(self) -> int:
        try:
            return int(float(self._text("uptime").split()[0]))
        except (IndexError, ValueError):
            raise BoardError(f"system info: {self.root / 'uptime'} is malformed") from None
