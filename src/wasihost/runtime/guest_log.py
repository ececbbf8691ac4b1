"""Guest stdout/stderr into the host log, one line at a time, named by plugin.

WASI hands the host output in arbitrary chunks (a ``print`` arrives as
several); lines are reassembled here. Over-long lines are cut and lines
beyond the plugin's per-minute budget are dropped (and counted, with one
notice when dropping starts), so a print loop cannot flood the log or the
disk. The buffer is bounded, so endless output without a newline is cut too.
"""

from __future__ import annotations

import logging

from wasihost.ratelimit import RateLimit
from wasihost.runtime.calls import printable

log = logging.getLogger("wasihost.guest")

MAX_LINE = 1000


class GuestOutput:
    def __init__(self, plugin: str, stream: str, limit: RateLimit) -> None:
        self.plugin = plugin
        self.stream = stream
        self.limit = limit
        self.level = logging.INFO if stream == "stdout" else logging.WARNING
        self.dropped = 0
        self._pending = bytearray()
        self._dropping = False
        self._cut = False  # the current line was already emitted, cut; skip to its end

    def write(self, chunk: bytes) -> None:
        self._pending += chunk
        while (end := self._pending.find(b"\n")) >= 0:
            if not self._cut:
                self._emit(bytes(self._pending[:end]))
            self._cut = False
            del self._pending[: end + 1]
        if len(self._pending) > MAX_LINE:
            if not self._cut:
                self._emit(bytes(self._pending[: MAX_LINE + 1]))
                self._cut = True
            self._pending.clear()

    def _emit(self, line: bytes) -> None:
        if not self.limit.allow():
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "[%s] output limit of %d lines per minute reached; dropping %s lines",
                    self.plugin,
                    self.limit.limit,
                    self.stream,
                )
            return
        if self._dropping:
            self._dropping = False
            log.warning(
                "[%s] output resumed; %d lines were dropped so far", self.plugin, self.dropped
            )
        text = line.decode("utf-8", "replace").rstrip("\r")
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + "… [line cut]"
        text = printable(text)  # no forged log lines, no terminal escapes
        log.log(self.level, "[%s] %s", self.plugin, text)
