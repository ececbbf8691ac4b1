"""The aiohttp application.

The dashboard HTML comes from the sandboxed dashboard plugin; the host
only serves it. If that plugin is missing, failing or trapping, the page
falls back to a plain one with the raw readings: the data is never hidden
behind a 500.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from wasihost.clock import wall_clock_ms
from wasihost.errors import ConfigError, PluginError
from wasihost.runtime.plugin import PluginState
from wasihost.telemetry.history import RAW_LIMIT_RANGE_MS, Resolution
from wasihost.web import edge, operator, shell
from wasihost.web.node import Node

log = logging.getLogger("wasihost.web")

NODE_KEY: web.AppKey[Node] = web.AppKey("node")
# The CSP of the page the dashboard plugin renders (served at shell.FRAME_PATH,
# inside the host's shell): see shell.py for why both are needed.
CSP = shell.PAGE_CSP


def fallback_page(state: dict[str, Any], reason: str) -> str:
    body = html.escape(json.dumps(state, indent=2, ensure_ascii=False))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>wasihost</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        # A wall tablet comes back to the live dashboard once the plugin does.
        "<meta http-equiv='refresh' content='10'></head><body>"
        f"<h1>wasihost</h1><p>Dashboard unavailable: {html.escape(reason)}</p>"
        f"<h2>Raw readings</h2><pre>{body}</pre></body></html>"
    )


class DashboardPages:
    """Renders the dashboard at most once per cycle, on the dashboard plugin's thread.

    The page only changes when the state does, so every request within a
    cycle gets the same page: a hundred open tablets (or a hostile page
    fetching ``/`` in a loop) cost one render per cycle, and a slow or
    trapping renderer never takes the threads the poll cycle runs on.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._key: tuple[Any, ...] | None = None
        self._page = ""

    async def page(self, node: Node) -> str:
        dashboard = node.dashboard
        key = (node.state.cycle, dashboard.loaded_sha256 if dashboard else None)
        async with self._lock:
            if key != self._key:
                self._page = await self._render(node)
                self._key = key
            return self._page

    async def _render(self, node: Node) -> str:
        state_json = node.snapshot_json()
        dashboard = node.dashboard
        if dashboard is None or dashboard.state is not PluginState.RUNNING:
            reason = "no dashboard plugin is running"
            if dashboard is not None and dashboard.hung is not None:
                reason += f" ({dashboard.hung.reason(time.monotonic())})"
            elif dashboard is not None and dashboard.stats.last_error:
                reason += f" ({dashboard.stats.last_error})"
            return fallback_page(json.loads(state_json), reason)
        try:  # on the plugin's own thread, given up on past its deadline
            page = await dashboard.call_async(state_json)
        except PluginError as exc:
            log.warning("dashboard render failed: %s", exc.reason)
            return fallback_page(json.loads(state_json), exc.reason)
        if not isinstance(page, str):
            return fallback_page(json.loads(state_json), "the dashboard plugin returned no page")
        return page  # at most MAX_PAGE_CHARS: longer is refused as it is lifted (runtime.calls)


PAGES_KEY: web.AppKey[DashboardPages] = web.AppKey("pages")


async def index(request: web.Request) -> web.Response:
    """The host's shell page, which frames the plugin's page in a sandbox."""
    return web.Response(text=shell.SHELL, content_type="text/html", headers=shell.SHELL_HEADERS)


async def dashboard(request: web.Request) -> web.StreamResponse:
    """The plugin's page (or the fallback page), for the shell's sandboxed frame.

    Opened on its own, the page would be a top-level document, free to
    navigate itself anywhere: a browser that says so (``Sec-Fetch-Dest``, sent
    in secure contexts such as localhost) is sent to the shell, and so is one
    that says nothing (plain HTTP to a LAN address) unless it brings the key
    only the shell's frame has.
    """
    destination = request.headers.get("Sec-Fetch-Dest")
    framed = destination == "iframe" or (
        destination is None
        and hmac.compare_digest(request.query.get("key", "").encode(), shell.FRAME_KEY.encode())
    )
    if not framed:
        raise web.HTTPSeeOther("/")
    text = await request.app[PAGES_KEY].page(request.app[NODE_KEY])
    return web.Response(text=text, content_type="text/html", headers=shell.PAGE_HEADERS)


async def readings(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].state.to_json())


async def plugins(request: web.Request) -> web.Response:
    return web.json_response(request.app[NODE_KEY].statuses())


# A plugin's error message is its own text: a reason quotes at most this much of it.
MAX_REASON_CHARS = 300


async def healthz(request: web.Request) -> web.Response:
    """``starting`` before the first cycle, ``ok`` while cycles complete on time,
    ``degraded`` while they do but something needs the operator (readings are
    or state snapshots not being saved: a full disk; a plugin unavailable or
    failing its polls), each with a line in ``reasons``: all 200.
    ``stale`` (503) when the last cycle is older than three intervals, so a
    supervisor can restart a wedged host. Degraded is not 503 on purpose: a
    restart frees no disk space and would lose the readings waiting in memory.
    """
    node = request.app[NODE_KEY]
    state = node.state
    age_s = None if state.completed_at is None else time.monotonic() - state.completed_at
    limit_s = 3 * state.interval_seconds + 5
    healthy = age_s is not None and age_s < limit_s
    reasons = []
    if state.cycle > 0 and not healthy:
        reasons.append(
            "no poll cycle has completed for "
            + ("ever" if age_s is None else f"{age_s:.0f} s")
            + f" (over {limit_s:g} s: three intervals and 5 s)"
        )
    for problem in (node.history_problem, node.snapshot_problem, node.outbox_problem):
        if problem is not None:
            reasons.append(problem)
    # A plugin that is not running, or whose last poll failed (one that never worked
    # included), by the rule the dashboard's health table shows (Host.statuses).
    for name, plugin in node.statuses().items():
        if plugin.get("health", "ok") != "ok":
            reason = plugin.get("health_reason") or plugin["health"]
            reasons.append(f"plugin {name} {reason}"[:MAX_REASON_CHARS])
    if state.cycle == 0:
        status = "starting"
    elif not healthy:
        status = "stale"
    else:
        status = "degraded" if reasons else "ok"
    body = {
        "status": status,
        "reasons": reasons,
        "cycle": state.cycle,
        "last_cycle_age_s": None if age_s is None else round(age_s, 3),
        "plugins_running": len(node.running()),
        "plugins": len(node.plugins),
        "history_unsaved": node.history_unsaved,
        "history_dropped": node.history_dropped,
        "board": {
            "kind": node.board.kind,
            "problems": [p.to_json() for p in node.board_problems()],
        },
    }
    return web.json_response(body, status=200 if healthy or state.cycle == 0 else 503)


# Each open dashboard holds one stream (one socket, one file descriptor) for as
# long as it stays open; past this many, more are refused rather than letting
# streams take every descriptor the host has.
MAX_STREAMS = 32


async def stream(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE_KEY]
    if node.stream.clients >= MAX_STREAMS:
        return operator.error(
            503,
            f"too many open streams ({MAX_STREAMS}); close a dashboard and retry",
            **{"Retry-After": "30"},
        )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    if node.stream.latest is None:  # no cycle has published a state yet
        node.stream.publish(node.snapshot_json())
    async for event in node.stream.events():
        try:  # a client that stops reading must not hold its stream slot for ever
            async with asyncio.timeout(edge.IDLE_TIMEOUT_S):
                await response.write(event)
        except (ConnectionError, TimeoutError):  # ConnectionResetError included
            break
    return response


class BadRequest(ValueError):
    """A query parameter is missing or invalid; the message names it."""


_DIGITS = re.compile(r"[0-9]{1,16}")
MAX_NAME_CHARS = shell.MAX_NAME_CHARS


def _str_param(request: web.Request, name: str) -> str:
    """A parameter given at most once (a repeated one is ambiguous, so refused)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise BadRequest(f"{name}: given {len(values)} times, expected once")
    value = values[0] if values else ""
    if len(value) > MAX_NAME_CHARS:
        raise BadRequest(f"{name}: longer than {MAX_NAME_CHARS} characters")
    return value


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = _str_param(request, name)
    if raw == "":
        return default
    # ASCII digits only: int() also takes "٣", "1_000" and " 5 ", and spends
    # quadratic time on thousands of digits before refusing them.
    if not _DIGITS.fullmatch(raw):
        raise BadRequest(f"{name}: expected an integer of 1 to 16 digits, got {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name}: expected {low}..{high}, got {value}")
    return value


DAY_MS = 86_400_000
MAX_HISTORY_RANGE_MS = 366 * DAY_MS
RESOLUTION_PARAMS: dict[str, Resolution | Literal["auto"]] = {
    "auto": "auto",
    "raw": "raw",
    "5m": "5m",
    "1h": "1h",
}


async def history(request: web.Request) -> web.Response:
    """``GET /api/history?plugin=&field=&since=&until=&points=&resolution=`` (times in
    epoch ms; resolution ``auto``, the default, ``raw``, ``5m`` or ``1h``)."""
    node = request.app[NODE_KEY]
    if node.history is None:
        return operator.error(404, "history is disabled ([history] enabled)")
    try:
        plugin = _str_param(request, "plugin")
        field = _str_param(request, "field")
        if not plugin or not field:
            raise BadRequest("plugin and field are required, e.g. ?plugin=dht22&field=temperature")
        now = wall_clock_ms()
        until = _int_param(request, "until", now, 0, 2**53)
        since = _int_param(request, "since", until - 3_600_000, 0, 2**53)
        points = _int_param(request, "points", 500, 2, 5000)
        resolution = _str_param(request, "resolution") or "auto"
        if resolution not in RESOLUTION_PARAMS:
            raise BadRequest(
                f"resolution must be one of {', '.join(RESOLUTION_PARAMS)}, not {resolution!r}"
            )
        if since > until:
            raise BadRequest(f"since ({since}) is after until ({until})")
        if until - since > MAX_HISTORY_RANGE_MS:
            raise BadRequest(f"the range is longer than {MAX_HISTORY_RANGE_MS // DAY_MS} days")
        if resolution == "raw" and until - since > RAW_LIMIT_RANGE_MS:
            # Reading one series' raw samples scans every series' in the range.
            raise BadRequest(
                f"raw samples are served for ranges up to {RAW_LIMIT_RANGE_MS // 3_600_000} h; "
                "ask for resolution=5m or 1h (or auto)"
            )
    except BadRequest as exc:
        return operator.error(400, str(exc))
    # A series with no samples yet is an empty 200, not a 404: a dashboard
    # opened right after start-up asks before the first cycle has run.
    series = await asyncio.to_thread(
        node.history.query, plugin, field, since, until, points, RESOLUTION_PARAMS[resolution]
    )
    # The query drops non-finite values; strict JSON here makes a regression an
    # error in the log instead of a document browsers cannot parse.
    return web.json_response(series.to_json(), dumps=_strict_dumps)


def _strict_dumps(value: object) -> str:
    return json.dumps(value, allow_nan=False)


FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<circle cx="8" cy="8" r="7" fill="#2ea043"/></svg>'
)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format."""
    node = request.app[NODE_KEY]
    return web.Response(
        body=node.metrics.render(), headers={"Content-Type": node.metrics.content_type}
    )


async def fleet(request: web.Request) -> web.Response:
    """``GET /api/fleet``: every node the hub hears on the broker (hubs only)."""
    hub = request.app[NODE_KEY].fleet
    if hub is None:
        return operator.error(404, 'this node is not a hub ([fleet] role = "hub")')
    return web.json_response(hub.to_json())


async def favicon(request: web.Request) -> web.Response:
    return web.Response(text=FAVICON, content_type="image/svg+xml")


MAX_BODY_BYTES = 16 * 1024  # operator requests are tiny JSON documents


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every API error is JSON with a reason, including aiohttp's own 404/405/413;
    a target that is not text is refused before any handler reads it."""
    problem = edge.target_problem(request)
    if problem is not None:
        return operator.error(400, problem)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.content_type == "application/json":
            raise
        if exc.status < 400:
            raise
        reason = exc.reason
        if isinstance(exc, web.HTTPRequestEntityTooLarge):
            reason = f"request body over {MAX_BODY_BYTES} bytes"
        kept = {k: v for k, v in exc.headers.items() if k == "Allow"}  # 405 must say what is
        return operator.error(exc.status, reason, **kept)


def create_app(node: Node) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[json_errors])
    app[NODE_KEY] = node
    app[PAGES_KEY] = DashboardPages()
    app.router.add_routes(operator.routes(NODE_KEY))
    app.router.add_get("/", index)
    app.router.add_get(shell.FRAME_PATH, dashboard)
    app.router.add_get("/api/readings", readings)
    app.router.add_get("/api/plugins", plugins)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/api/history", history)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/fleet", fleet)
    return app


@dataclass(frozen=True)
class Listening:
    """The app's runner and the listening socket in front of it."""

    runner: web.AppRunner
    listener: asyncio.Server

    @property
    def port(self) -> int:
        return int(self.listener.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting, then close the open connections and the app."""
        self.listener.close()
        await self.runner.cleanup()


async def start(node: Node, address: str, port: int) -> Listening:
    """The app listening on ``address:port`` (0: a free port, see ``Listening.port``).

    Not a ``web.TCPSite``: the listening socket gets ``edge.ConnectionCap``
    as its protocol factory, which aiohttp's sites cannot take. Tests start
    the server through here too, so they meet the same limits as a deployed
    host. Raises ``OSError`` when the port cannot be bound.
    """
    runner = web.AppRunner(create_app(node), **edge.runner_options())
    await runner.setup()
    assert runner.server is not None  # set by setup()
    try:
        listener = await asyncio.get_running_loop().create_server(
            edge.ConnectionCap(runner.server), address, port, backlog=128
        )
    except OSError:
        await runner.cleanup()
        raise
    return Listening(runner, listener)


async def serve(node: Node, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; a port that cannot be bound stops the host."""
    address, port = node.web_config.host, node.web_config.port
    try:
        listening = await start(node, address, port)
    except OSError as exc:
        stop.set()
        raise ConfigError(f"web: cannot listen on {address}:{port}: {exc.strerror}") from None
    log.info("dashboard on http://%s:%d", address, port)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(edge.ResourceWarnings(loop))
    try:
        await stop.wait()
    finally:
        node.stream.close()
        await listening.close()
