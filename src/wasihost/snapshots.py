"""The last state snapshot of each plugin, kept on disk across host restarts.

Writes are atomic (temporary file, fsync, rename) so a power cut leaves
either the old or the new snapshot, never half of one. They are also rate
limited per plugin and skipped when nothing changed, because a Pi's SD card
wears out under a write every poll.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

from wasihost.atomic import write_atomically

log = logging.getLogger("wasihost.snapshots")

_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class SnapshotStore:
    def __init__(
        self,
        folder: Path,
        min_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        # When ``save`` last wrote, or last found nothing new to write: either
        # way the next periodic save is one interval later.
        self._last_save: dict[str, float] = {}
        self._last_digest: dict[str, bytes] = {}

    def _path(self, plugin: str) -> Path:
        if not _SAFE_NAME.match(plugin):
            raise ValueError(f"unsafe plugin name for a snapshot file: {plugin!r}")
        return self.folder / f"{plugin}.state"

    def load(self, plugin: str) -> bytes | None:
        try:
            return self._path(plugin).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("[%s] cannot read snapshot %s: %s", plugin, self._path(plugin), exc)
            return None

    def due(self, plugin: str) -> bool:
        """Whether a periodic save of ``plugin`` is allowed now."""
        last = self._last_save.get(plugin)
        return last is None or self._clock() - last >= self.min_interval_s

    def save(self, plugin: str, data: bytes, force: bool = False) -> bool:
        """Write ``data`` unless unchanged, or too soon after the last save
        (``force`` skips the rate limit, e.g. at shutdown). Returns whether it wrote.

        An unchanged ``data`` also counts as a save for the rate limit, so the
        host takes the next snapshot one interval later, not on every cycle.
        """
        digest = hashlib.sha256(data).digest()
        with self._lock:
            if not (force or self.due(plugin)):
                return False
            if self._last_digest.get(plugin) == digest:
                self._last_save[plugin] = self._clock()
                return False
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self._path(plugin), data, durable=True)
            self._last_save[plugin] = self._clock()
            self._last_digest[plugin] = digest
            return True
