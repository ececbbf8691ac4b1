"""The aiohttp application.

The dashboard HTML comes from the sandboxed dashboard plugin; the host
only serves it. If that plugin is missing, failing or trapping, the page
falls back to a plain one with the raw readings: the data is never hidden
behind a 500.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from wasihost.errors import ConfigError, PluginError
from wasihost.runtime.plugin import PluginState

if TYPE_CHECKING:
    from wasihost.host import Host

log = logging.getLogger("wasihost.web")

HOST_KEY: web.AppKey[Host] = web.AppKey("host")
# The dashboard is rendered by untrusted code: no external loads, no
# framing, no form posts elsewhere, and inline script only from the page.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'none'; "
    "base-uri 'none'"
)


def dashboard_state(host: Host) -> dict[str, Any]:
    """What the dashboard plugin renders: the app state plus plugin health."""
    return {**host.state.to_json(), "plugins": host.statuses()}


def fallback_page(state: dict[str, Any], reason: str) -> str:
    body = html.escape(json.dumps(state, indent=2, ensure_ascii=False))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>wasihost</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'></head><body>"
        f"<h1>wasihost</h1><p>Dashboard unavailable: {html.escape(reason)}</p>"
        f"<h2>Raw readings</h2><pre>{body}</pre></body></html>"
    )


async def index(request: web.Request) -> web.Response:
    host = request.app[HOST_KEY]
    state = dashboard_state(host)
    dashboard = host.dashboard
    if dashboard is None or dashboard.state is not PluginState.RUNNING:
        reason = "no dashboard plugin is running"
        if dashboard is not None and dashboard.stats.last_error:
            reason += f" ({dashboard.stats.last_error})"
        page = fallback_page(state, reason)
    else:
        try:
            page = await asyncio.to_thread(dashboard.call, json.dumps(state))
        except PluginError as exc:
            log.warning("dashboard render failed: %s", exc.reason)
            page = fallback_page(state, exc.reason)
        if not isinstance(page, str):
            page = fallback_page(state, "the dashboard plugin returned no page")
    return web.Response(
        text=page, content_type="text/html", headers={"Content-Security-Policy": CSP}
    )


async def readings(request: web.Request) -> web.Response:
    return web.json_response(request.app[HOST_KEY].state.to_json())


async def plugins(request: web.Request) -> web.Response:
    return web.json_response(request.app[HOST_KEY].statuses())


async def healthz(request: web.Request) -> web.Response:
    """200 while cycles complete on time; 503 when the last one is older than
    three intervals, so a supervisor can restart a wedged host."""
    host = request.app[HOST_KEY]
    state = host.state
    age_s = None if state.timestamp_ms is None else time.time() - state.timestamp_ms / 1000
    healthy = age_s is not None and age_s < 3 * state.interval_seconds + 5
    body = {
        "status": "ok" if healthy else "stale",
        "cycle": state.cycle,
        "last_cycle_age_s": None if age_s is None else round(age_s, 3),
        "plugins_running": len(host.running()),
        "plugins": len(host.plugins),
    }
    return web.json_response(body, status=200 if healthy or state.cycle == 0 else 503)


def create_app(host: Host) -> web.Application:
    app = web.Application()
    app[HOST_KEY] = host
    app.router.add_get("/", index)
    app.router.add_get("/api/readings", readings)
    app.router.add_get("/api/plugins", plugins)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(host: Host, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set; a port that cannot be bound stops the host."""
    runner = web.AppRunner(create_app(host), access_log=None)
    await runner.setup()
    address, port = host.config.web.host, host.config.web.port
    try:
        await web.TCPSite(runner, address, port).start()
    except OSError as exc:
        await runner.cleanup()
        stop.set()
        raise ConfigError(f"web: cannot listen on {address}:{port}: {exc.strerror}") from None
    log.info("dashboard on http://%s:%d", address, port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
