"""The HTTP edge: what any client that reaches the port may not do to the host.

The limits are aiohttp's and asyncio's own settings wherever they exist:
aiohttp's keep-alive timer closes a connection that sends no complete
request within ``IDLE_TIMEOUT_S`` (idle, half a request line, a header
trickle), its parser refuses over-long lines, fields and header counts with
a 400, and asyncio pauses ``accept()`` for a second when the process runs
out of file descriptors and retries on its own. What is left is written here:
a request target that is not UTF-8 once percent-decoded, or carries bad
escapes or control characters, is refused before any handler reads it; and
errors caused by clients are logged once per kind, not once per request,
so a scanner cannot fill the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import unicodedata
import urllib.parse
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

# An idle connection (before a request, between requests, or while its
# headers trickle in) is closed after this long. aiohttp's default is an hour,
# which lets a few hundred idle sockets take every file descriptor.
IDLE_TIMEOUT_S = 15.0
# A request body must arrive within this; operator bodies are a few bytes.
BODY_TIMEOUT_S = 10.0
# Open connections at most; past it a new one is answered 503 and closed at
# once, so clients can never take the descriptors the rest of the host needs
# (SQLite, plugin files, snapshots, MQTT). Well under the unit's LimitNOFILE.
MAX_CONNECTIONS = 256
# aiohttp's parser limits, stated here so that they are deliberate.
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190
MAX_HEADERS = 64

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

http_log = logging.getLogger("wasihost.web.http")


def target_problem(request: web.BaseRequest) -> str | None:
    """Why the request's path or query cannot be taken as text, or None.

    yarl decodes ``%ff`` to U+FFFD and keeps ``%zz`` as it is, so a handler
    would see a plausible string that is not what the client sent; checking
    the raw target is the only place the difference is still visible.
    """
    raw_path, _, _ = request.raw_path.partition("?")
    for where, raw in (("path", raw_path), ("query", request.rel_url.raw_query_string)):
        bad = _BAD_ESCAPE.search(raw)
        if bad is not None:
            return f"the {where} has a bad percent-escape at character {bad.start()}"
        try:
            text = urllib.parse.unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"the {where} is not UTF-8 once percent-decoded (byte {exc.start})"
        for char in text:
            if unicodedata.category(char) == "Cc":
                return f"the {where} contains the control character U+{ord(char):04X}"
    return None


class ClientFaults(logging.Filter):
    """Logs a client's fault once per kind (exception type), then only counts it.

    aiohttp logs every request its parser refuses at ERROR with a traceback,
    and every connection reset as well: one scanner is a thousand tracebacks.
    These are the client's doing, so the first of each kind becomes a one-line
    warning and the rest are counted in ``counts``. A fault that is not the
    client's (an exception in a handler) keeps its traceback, also once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.exc_info:
            return record.levelno >= logging.INFO
        exc = record.exc_info[1]
        kind = type(exc).__name__
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.counts[kind] > 1:
            return False
        if isinstance(exc, HttpProcessingError | ConnectionError | asyncio.CancelledError):
            reason = " ".join(str(exc).split())[:200]
            record.args = (record.getMessage(), kind, reason)
            record.msg = "%s: %s: %s (logged once; later ones are only counted)"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


client_faults = ClientFaults()
http_log.addFilter(client_faults)


_BUSY_BODY = json.dumps(
    {"error": f"the host has {MAX_CONNECTIONS} connections open, its limit; retry shortly"}
).encode()
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
    % (len(_BUSY_BODY), _BUSY_BODY)
)


class _Busy(asyncio.Protocol):
    """A connection over the cap: answered and closed without reading a byte."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.WriteTransport, transport)  # a TCP transport
        stream.write(_BUSY)
        stream.close()


class ConnectionCap:
    """A protocol factory for ``loop.create_server``: aiohttp's, up to MAX_CONNECTIONS.

    aiohttp has no connection limit and asyncio none either; this is the
    one piece of the edge written here. Refusals are logged once a minute.
    """

    def __init__(self, server: web.Server) -> None:
        self._server = server
        self._logged = -ResourceWarnings.EVERY_S
        self.refused = 0

    def __call__(self) -> asyncio.Protocol:
        if len(self._server.connections) < MAX_CONNECTIONS:
            return self._server()
        self.refused += 1
        now = time.monotonic()
        if now - self._logged >= ResourceWarnings.EVERY_S:
            self._logged = now
            http_log.warning(
                "refusing connections: %d open, the limit (%d refused so far)",
                MAX_CONNECTIONS,
                self.refused,
            )
        return _Busy()


def runner_options() -> dict[str, Any]:
    """aiohttp ``AppRunner`` settings of the edge (read at start, so tests may shorten them)."""
    return {
        "access_log": None,
        "logger": http_log,
        "keepalive_timeout": IDLE_TIMEOUT_S,
        "lingering_time": min(IDLE_TIMEOUT_S, 10.0),
        "max_line_size": MAX_LINE_BYTES,
        "max_field_size": MAX_FIELD_BYTES,
        "max_headers": MAX_HEADERS,
    }


class ResourceWarnings:
    """An event-loop exception handler that reports running out of descriptors once a minute.

    On EMFILE asyncio stops accepting for a second, retries, and reports each
    failed retry with a traceback: an hour of it is 3600 tracebacks. The
    condition is worth one line a minute. A retry that finds the listener
    closed (the host shut down within that second) fails on fd -1 inside
    asyncio: nothing is wrong, so it is a debug line. Everything else goes to
    the handler that was there before.
    """

    EVERY_S = 60.0

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._previous = loop.get_exception_handler()
        self._last = -self.EVERY_S
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            now = time.monotonic()
            if now - self._last < self.EVERY_S:
                self.suppressed += 1
                return
            self._last = now
            http_log.warning(
                "cannot accept connections: %s; retrying every second (%d such retries "
                "since the last report)",
                context.get("exception"),
                self.suppressed,
            )
            self.suppressed = 0
            return
        if _retry_of_a_closed_listener(context):
            http_log.debug("accept retry after the listener closed: %s", context.get("exception"))
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)


def _retry_of_a_closed_listener(context: dict[str, Any]) -> bool:
    exception = context.get("exception")
    return (
        isinstance(exception, ValueError)
        and str(exception) == "Invalid file descriptor: -1"
        and "_start_serving" in repr(context.get("handle"))
    )
