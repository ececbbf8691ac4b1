"""The hostile-page suite (issue 14, class 5): a renderer that tries to send data elsewhere.

The dashboard page is written by a sandboxed plugin, and what a browser does
with it is outside the sandbox. ``hostile-dashboard`` in mode
``exfil-<technique>-<port>`` renders a page that tries one way a page has of
talking to another origin (navigation, meta refresh, forms, popups, link
clicks, prefetch, CSS, frames, ``<base>``, fetch-like APIs, WebRTC) and sends
what it can read to a listener on another loopback port. The host runs in
this process on a free port, the page is opened in the Debian Chromium, and
the listener must hear nothing, while the shell page stays where it was.

Waits are bounded only so that a broken page fails instead of hanging; the
page says when it has tried (``window.fired``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host
from wasihost.web import server, shell

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install chromium); CI installs it",
        allow_module_level=True,
    )
async_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install playwright)"
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
GIVE_UP_S = 20.0  # bounds a broken page; never asserted
SETTLE_S = 1.0  # after the page has tried, for requests still in flight to arrive

TECHNIQUES = [
    "navigate",  # location = elsewhere
    "top",  # top.location = elsewhere
    "meta",  # <meta http-equiv=refresh>
    "clickself",  # a link clicked by script
    "clicktop",  # ... with target=_top
    "clickblank",  # ... with target=_blank
    "open",  # window.open
    "form",  # a form posted by script
    "formtop",  # ... to the top window
    "formblank",  # ... to a new window
    "base",  # <base href> then relative loads and a relative link clicked
    "prefetch",  # prefetch, preload, preconnect, dns-prefetch, modulepreload, speculation rules
    "css",  # @import, url() backgrounds, @font-face
    "iframe",  # nested frames, one of them srcdoc navigating itself
    "quiet",  # fetch, beacon, WebSocket, EventSource, image, worker, ping, XHR, object...
    pytest.param(
        "webrtc",  # TURN over TCP and STUN to the listener's port
        marks=pytest.mark.xfail(
            strict=True,
            reason="WebRTC is not governed by CSP or iframe sandboxing in Chromium (no "
            "`webrtc` CSP directive: Chromium 156 ignores `webrtc 'block'`): ICE sends "
            "STUN/TURN packets to any address the page names, and a TURN username or a "
            "server host name can carry data. Only the browser can turn it off.",
        ),
    ),
]


class Listener:
    """A TCP and UDP listener on one loopback port that records whatever reaches it."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        heard = self.heard

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(2)
                with contextlib.suppress(OSError):
                    data = self.request.recv(4096)
                    heard.append("tcp: " + data.decode("latin-1").split("\r\n")[0][:300])
                    page = b"<!doctype html><title>attacker</title><p>got it</p>"
                    self.request.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(page), page)
                    )

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._tcp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._tcp.daemon_threads = True
        self.port = int(self._tcp.server_address[1])
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", self.port))
        self._udp.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._tcp.serve_forever, daemon=True),
            threading.Thread(target=self._receive_udp, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _receive_udp(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                data, _ = self._udp.recvfrom(4096)
                self.heard.append(f"udp: {len(data)} bytes")

    def close(self) -> None:
        self._stop.set()
        self._tcp.shutdown()
        self._tcp.server_close()
        self._udp.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    listening = Listener()
    try:
        yield listening
    finally:
        listening.close()


async def cycles(host: Host) -> None:
    """Poll and publish as the host does, a few times a second, until cancelled."""
    while True:
        await host.after_cycle(await host.cycle.run_once())
        await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def serving(host: Host) -> AsyncIterator[str]:
    await host.after_cycle(await host.cycle.run_once())
    listening = await server.start(host, "127.0.0.1", 0)
    polling = asyncio.create_task(cycles(host))
    try:
        yield f"http://127.0.0.1:{listening.port}"
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
        host.stream.close()
        await listening.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def tried(page: Any) -> bool:
    """Whether the hostile page, in whichever frame it runs, has made its attempt."""
    for frame in page.frames:
        with contextlib.suppress(Exception):  # a frame navigating away, or detached
            if await frame.evaluate("() => window.fired === true"):
                return True
    return False


def left(page: Any, base: str) -> bool:
    """Whether the dashboard's frame no longer shows the hostile page (it navigated,
    or tried to and was blocked, which leaves an error page)."""
    return any(frame.url != base + shell.FRAME_URL for frame in page.main_frame.child_frames)


async def until(check: Callable[[], Any]) -> bool:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + GIVE_UP_S
    while loop.time() < give_up:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.parametrize("technique", TECHNIQUES)
async def test_no_data_leaves_for_another_origin(
    technique: str,
    listener: Listener,
    browser: Any,
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
) -> None:
    board.set_dht22(21.0, 45.0)
    selector = f"select-exfil-{technique}-{listener.port}"
    host = make_host(
        make_config(
            {
                "dashboard": {"built": "hostile-dashboard", "world": "dashboard-plugin"},
                selector: {"built": "chaos", "world": "dht22-plugin", "settings": {}},
                "dht22": {"led": 1},
            }
        )
    )
    async with serving(host) as base:
        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.goto(base + "/")

            async def over() -> bool:
                # Heard, tried, or its frame navigated away (a navigation blocked by
                # CSP leaves an error page in the frame: the hostile page is gone).
                return bool(listener.heard) or await tried(page) or left(page, base)

            assert await until(over), "the hostile page never ran"
            await asyncio.sleep(SETTLE_S)
            assert listener.heard == [], f"{technique}: data left for another origin"
            assert page.url.partition("#")[0] == base + "/"  # the dashboard was not replaced
            assert len(context.pages) == 1  # and no window opened
        finally:
            await context.close()
    assert host.state.cycle > 1  # polling went on


async def test_the_live_dashboard_renders_in_the_shell_and_nothing_leaves(
    listener: Listener,
    browser: Any,
    seed_host: Host,
    board: SimBoard,
) -> None:
    """The seed dashboard, framed by the shell: live values and charts arrive by
    postMessage, and the listener hears nothing (a control for the attacks above)."""
    board.set_dht22(21.0, 45.0)
    async with serving(seed_host) as base:
        context = await browser.new_context()
        try:
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(base + "/")
            frame = page.main_frame.child_frames[0]
            assert frame.url == base + shell.FRAME_URL
            cell = '[data-plugin="dht22"] [data-status="poll_count"]'
            await frame.wait_for_function(
                "() => document.querySelector('[data-live]').textContent === 'live'",
                timeout=GIVE_UP_S * 1000,
            )
            polls = await frame.text_content(cell)
            await frame.wait_for_function(
                "(polls) => document.querySelector("
                '\'[data-plugin="dht22"] [data-status="poll_count"]\').textContent !== polls',
                arg=polls,
                timeout=GIVE_UP_S * 1000,
            )
            await frame.wait_for_function(
                "() => (document.querySelector('[data-line]').getAttribute('d') || '')"
                ".startsWith('M')",
                timeout=GIVE_UP_S * 1000,
            )
            # The frame really is sandboxed: an opaque origin, no way into the shell.
            assert await frame.evaluate("() => window.origin") == "null"
            assert (
                await frame.evaluate(
                    "() => { try { return parent.document && 'reachable'; } "
                    "catch (e) { return 'blocked'; } }"
                )
                == "blocked"
            )
            assert errors == []
        finally:
            await context.close()
    assert listener.heard == []


async def test_the_frame_page_opened_on_its_own_goes_to_the_shell(
    browser: Any, seed_host: Host, board: SimBoard
) -> None:
    """Top-level, the plugin's page could navigate itself anywhere; browsers that
    send ``Sec-Fetch-Dest`` (Chromium on loopback) are sent to the shell."""
    board.set_dht22(21.0, 45.0)
    async with serving(seed_host) as base:
        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.goto(base + shell.FRAME_URL)  # even with the key: Chromium says "document"
            assert page.url == base + "/"
            assert page.main_frame.child_frames[0].url == base + shell.FRAME_URL
        finally:
            await context.close()
