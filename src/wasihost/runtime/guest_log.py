"""Guest stdout/stderr into the host log, one line at a time, named by plugin.

WASI hands the host output in arbitrary chunks (a ``print`` arrives as
several); lines are reassembled here and over-long lines cut, so a plugin
cannot write one endless line into the log.
"""

from __future__ import annotations

import logging

log = logging.getLogger("wasihost.guest")

MAX_LINE = 2000


class GuestOutput:
    def __init__(self, plugin: str, stream: str) -> None:
        self.plugin = plugin
        self.stream = stream
        self._pending = bytearray()
        self.level = logging.INFO if stream == "stdout" else logging.WARNING

    def write(self, chunk: bytes) -> None:
        self._pending += chunk
        while (end := self._pending.find(b"\n")) >= 0:
            self._emit(bytes(self._pending[:end]))
            del self._pending[: end + 1]
        if len(self._pending) > MAX_LINE:
            self._emit(bytes(self._pending))
            self._pending.clear()

    def _emit(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + f"… [{len(text) - MAX_LINE} chars cut]"
        log.log(self.level, "[%s] %s", self.plugin, text)
