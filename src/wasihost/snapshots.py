"""The last state snapshot of each plugin, kept on disk across host restarts.

Writes are atomic (temporary file, fsync, rename) so a power cut leaves
either the old or the new snapshot, never half of one. They are also rate
limited per plugin and skipped when nothing changed, because a Pi's SD card
wears out under a write every poll.

A write that fails (a full disk, a failing card) is not raised: it is counted
in ``failures``, logged once when saving starts failing (again only if the
error changes) and once when a save works again, and that plugin's next try
waits one interval, like a save. The plugins keep their state in memory
meanwhile; only a restart would lose what was not saved.
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
        self.failures = 0  # writes that failed, since start (/metrics)
        # While writes fail: why, since when, the failures count then, and which plugins.
        self._error: str | None = None
        self._failing_since = 0.0
        self._failures_at_start = 0
        self._failing_plugins: set[str] = set()

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
        host takes the next snapshot one interval later, not on every cycle. So
        does a failed write (never raised; see the module's doc): a full disk
        costs a snapshot and a failed write per plugin per interval.
        """
        digest = hashlib.sha256(data).digest()
        with self._lock:
            if not (force or self.due(plugin)):
                return False
            now = self._clock()
            self._last_save[plugin] = now
            if self._last_digest.get(plugin) == digest:
                return False
            path = self._path(plugin)
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                write_atomically(path, data, durable=True)
            except OSError as exc:
                self._failed(plugin, exc, now, force)
                return False
            self._last_digest[plugin] = digest
            self._saved(now)
            return True

    @property
    def problem(self) -> str | None:
        """Why snapshots are not being saved, while they fail."""
        if self._error is None:
            return None
        return (
            f"state snapshots not saved for {self._clock() - self._failing_since:.0f} s "
            f"({self.failures - self._failures_at_start} failed): {self._error}"
        )

    def _failed(self, plugin: str, exc: OSError, now: float, force: bool) -> None:
        # strerror, not str(exc): the latter names a temporary file, new each time.
        error = exc.strerror or f"{exc}" or type(exc).__name__
        if self._error is None:
            self._failing_since = now
            self._failures_at_start = self.failures
            self._failing_plugins = set()
        self.failures += 1
        self._failing_plugins.add(plugin)
        if error != self._error:
            log.error(
                "snapshots: cannot save state in %s: %s ([%s]: %s); each plugin retries "
                "once every %.0f s and keeps its state in memory meanwhile",
                self.folder,
                error,
                plugin,
                exc,
                self.min_interval_s,
            )
        elif force:  # at shutdown (or after a reload): this state may be lost
            log.error(
                "[%s] state snapshot not saved: %s; a restart restores an older one", plugin, error
            )
        self._error = error

    def _saved(self, now: float) -> None:
        if self._error is None:
            return
        log.info(
            "snapshots: saving again after %.0f s; %d saves failed meanwhile (%s)",
            now - self._failing_since,
            self.failures - self._failures_at_start,
            ", ".join(sorted(self._failing_plugins)),
        )
        self._error = None
        self._failing_plugins = set()
