"""End to end: a real host process serving the dashboard to a real headless Chromium.

The renderer's unit tests cannot show that the inline script actually runs
in the sandboxed frame of the host's shell page under both pages'
Content-Security-Policies, gets the `/api/stream` states and the `/api/history`
points the shell relays to it, and does all that without a single console error.
Only a browser against a running host can, so this module starts
`wasihost run` as a subprocess on a free port (the same way a user does) and
drives the Debian Chromium through Playwright.

A last test serves the shell and a page rendered natively, plus a hostile
stream and history, through Playwright's request routing: it checks that the
script keeps untrusted values as text under the host's real headers.

Nothing here sleeps for a fixed time: the tests wait (with bounded timeouts)
for the host to answer and for the page to change.

Set `WASIHOST_SCREENSHOT=1` to refresh `docs/dashboard.png`.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wasihost.model import Measurement, Reading
from wasihost.telemetry.history import History

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install chromium); CI installs it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

from wasihost.web import shell  # noqa: E402 - after the skips, like the browser import

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "plugins" / "dashboard"
sys.path.insert(0, str(DASHBOARD_DIR))

import render  # noqa: E402 - importable only once the plugin directory is on sys.path

SCREENSHOT = ROOT / "docs" / "dashboard.png"
# WASIHOST_SCREENSHOT also takes the page with the long charts at 7 d, for a look (not in docs/).
SCREENSHOT_WEEK = Path(os.environ.get("WASIHOST_SCREENSHOT_WEEK", "/tmp/dashboard-7d.png"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# The first start compiles every plugin; later starts hit wasmtime's cache.
STARTUP_TIMEOUT_S = 60.0
# Live changes arrive every 0.5 s poll; this only bounds a broken page. Generous:
# on a loaded 2-core machine a fake host's first state once took over 10 s to show.
LIVE_TIMEOUT_MS = 30_000
# Cycles the host completes before the page loads, so every measurement
# already has a history series (a field never reported is a 404).
WARM_UP_CYCLES = 3

DHT22_TEMPERATURE = '[data-plugin="dht22"] [data-measure="temperature"]'
DHT22_LONG_CHART = f"{DHT22_TEMPERATURE} [data-long]"

DAY_MS = 86_400_000
# The host's history is seeded with a DHT22 temperature every 30 min for this many
# days, ending SEED_GAP_DAYS before the host starts (so the 24 h chart shows only
# the host's own readings): the long charts draw it from the statistics.
SEEDED_DAYS = 380
SEED_GAP_DAYS = 2
SEED_STEP_MS = 30 * 60_000
# Two seeded extremes that no mean reaches: the caption of a long chart shows the
# lowest minimum and the highest maximum. The high one is within the last 7 days.
SEEDED_LOW, SEEDED_LOW_DAYS_AGO = -5.0, 200
SEEDED_HIGH, SEEDED_HIGH_DAYS_AGO = 45.0, 4
# Predicates are functions, never expression strings: Playwright evaluates
# those with eval(), which the host's Content-Security-Policy rightly blocks.
IS_LIVE = "() => document.querySelector('[data-live]').textContent === 'live'"

HOST_TOML = """\
[polling]
interval_seconds = 0.5

[logging]
show_sensor_data = false

[board]
seed = 7

[web]
port = {port}

[history]
path = "{history}"

[plugins.dht22]
led = 1
wasm = "{dht22}"

[plugins.pi_monitor]
led = 0
wasm = "{pi_monitor}"

[plugins.bme680]
led = 2
wasm = "{bme680}"

[plugins.dashboard]
wasm = "{dashboard}"
"""


def free_port() -> int:
    """Ask the kernel for an unused TCP port (released again before the host binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_json(url: str) -> Any:
    """GET `url` and decode its JSON body, whatever the HTTP status."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:  # /healthz answers 503 while stale
        return json.load(error)


def wait_for_cycle(base_url: str, cycle: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the host has completed `cycle` poll cycles, or fail with its log."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the host exited with {process.returncode}:\n{log.read_text()}")
        try:
            if get_json(f"{base_url}/healthz").get("cycle", 0) >= cycle:
                return
        except (OSError, ValueError):
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(
        f"the host did not reach cycle {cycle} in {STARTUP_TIMEOUT_S:.0f} s:\n{log.read_text()}"
    )


def seed_history(path: Path, now_ms: int) -> None:
    """Write SEEDED_DAYS of DHT22 temperatures (a daily swing of 15-25 °C and the two
    extremes) through `History.write`, as the host would have over the year."""
    end = now_ms - SEED_GAP_DAYS * DAY_MS
    extremes = {
        end - SEEDED_LOW_DAYS_AGO * DAY_MS: SEEDED_LOW,
        end - SEEDED_HIGH_DAYS_AGO * DAY_MS: SEEDED_HIGH,
    }
    readings = []
    for t in range(end - SEEDED_DAYS * DAY_MS, end, SEED_STEP_MS):
        value = extremes.get(t, 20.0 + 5.0 * math.sin(2 * math.pi * (t % DAY_MS) / DAY_MS))
        measurement = Measurement("dht22", "temperature", value, "°C", "temperature", t)
        readings.append(Reading("dht22", "dht22-plugin", t, (measurement,)))
    history = History(path)
    try:
        history.write(readings)
    finally:
        history.close()


@pytest.fixture(scope="module")
def host_url(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running `wasihost run` on the seeded simulated board; yields its base URL."""
    workdir = tmp_path_factory.mktemp("host")
    port = free_port()
    config = workdir / "host.toml"
    config.write_text(
        HOST_TOML.format(
            port=port,
            history=workdir / "history.sqlite3",
            dht22=built["dht22"],
            pi_monitor=built["pi-monitor"],
            bme680=built["bme680"],
            dashboard=built["dashboard"],
        ),
        encoding="utf-8",
    )
    seed_history(workdir / "history.sqlite3", int(time.time() * 1000))
    log = workdir / "host.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "wasihost.cli", "run", "--config", str(config)],
            cwd=workdir,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_for_cycle(base_url, WARM_UP_CYCLES, process, log)
        yield base_url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The Debian Chromium, headless (Playwright's own browser download is not used)."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Console:
    """Collects console errors and uncaught exceptions of one page."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        # Browsers ask for /favicon.ico on their own; a host without one may 404 it.
        if message.location.get("url", "").endswith("/favicon.ico"):
            return
        self.errors.append(f"{message.text} ({message.location.get('url')})")


def open_dashboard(
    browser: Any, url: str, width: int, height: int, color_scheme: str = "light"
) -> tuple[Any, Console]:
    """Open the dashboard in a fresh context of the given viewport size; returns the
    frame the host's shell shows the plugin's page in (``frame.page`` is the tab)."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme=color_scheme
    )
    page = context.new_page()
    console = Console(page)
    page.goto(url)
    return dashboard_frame(page), console


def dashboard_frame(page: Any) -> Any:
    """The sandboxed frame of the shell page that holds the plugin's page."""
    (frame,) = page.main_frame.child_frames
    assert urllib.parse.urlsplit(frame.url).path == shell.FRAME_PATH, frame.url
    return frame


def text(page: Any, selector: str) -> str:
    """The text of the first element matching `selector`, stripped."""
    content = page.text_content(selector)
    assert content is not None, f"no element matches {selector}"
    return content.strip()


def is_decimal(shown: str, places: int = 0) -> bool:
    """Whether `shown` is a number with exactly `places` decimals (and no thousands)."""
    whole, _, fraction = shown.lstrip("-").partition(".")
    return whole.isdigit() and len(fraction) == places and (not places or fraction.isdigit())


def test_dashboard_is_live_and_draws_charts(host_url: str, browser: Any) -> None:
    # Dark, as a wall tablet would usually be set up (and as docs/dashboard.png shows it).
    frame, console = open_dashboard(browser, host_url, 1280, 800, color_scheme="dark")
    try:
        # The server-rendered frame: the DHT22 temperature with its unit, all cards.
        assert frame.is_visible(f"{DHT22_TEMPERATURE} [data-value]")
        assert is_decimal(text(frame, f"{DHT22_TEMPERATURE} [data-value]"), places=1)
        assert text(frame, f"{DHT22_TEMPERATURE} .unit") == "°C"
        for plugin in ("pi-monitor", "bme680"):
            assert frame.is_visible(f'[data-plugin="{plugin}"]')
        assert frame.is_visible('[data-plugin="bme680"] [data-iaq-band]')
        for plugin in ("dht22", "pi-monitor", "bme680", "dashboard"):
            assert text(frame, f'[data-health="{plugin}"] [data-col="state"]') == "running"

        # Live: the stream connects and changes the frame without a reload.
        frame.evaluate("window.notReloaded = true")
        frame.wait_for_function(
            IS_LIVE,
            timeout=LIVE_TIMEOUT_MS,
        )
        cycle = text(frame, '[data-meta="cycle"]')
        polls = text(frame, '[data-plugin="dht22"] [data-status="poll_count"]')
        frame.wait_for_function(
            """([cycle, polls]) =>
                document.querySelector('[data-meta="cycle"]').textContent !== cycle &&
                document.querySelector('[data-plugin="dht22"] [data-status="poll_count"]')
                    .textContent !== polls""",
            arg=[cycle, polls],
            timeout=LIVE_TIMEOUT_MS,
        )
        assert frame.evaluate("window.notReloaded") is True
        # The script formats streamed values exactly like the server-rendered frame.
        assert is_decimal(text(frame, f"{DHT22_TEMPERATURE} [data-value]"), places=1)
        assert is_decimal(text(frame, '[data-plugin="bme680"] [data-measure="iaq"] [data-value]'))

        # Charts: every chart of every measurement draws a line from history + stream.
        frame.wait_for_function(
            """() => {
                const lines = [...document.querySelectorAll('[data-line]')];
                return lines.length > 0 &&
                    lines.every((line) => (line.getAttribute('d') || '').startsWith('M'));
            }""",
            timeout=LIVE_TIMEOUT_MS,
        )
        measures = frame.locator("[data-measure]").count()
        assert frame.locator("[data-line]").count() == 2 * measures
        assert not frame.is_visible(f"{DHT22_TEMPERATURE} [data-empty]")
        hour_range = text(frame, f'{DHT22_TEMPERATURE} [data-window-ms="3600000"] [data-range]')
        assert "–" in hour_range and hour_range.endswith(" °C"), hour_range

        if os.environ.get("WASIHOST_SCREENSHOT"):
            frame.page.screenshot(path=str(SCREENSHOT))
        assert console.errors == []
    finally:
        frame.page.context.close()


# What a person would check by eye, measured in the page: nothing wider than the
# screen, the grid's columns filled without a hole a card would fit in, every chart's
# axes labelled, and the health table not scrolling sideways.
LAYOUT_FACTS = """() => {
    const doc = document.scrollingElement;
    const wide = [...document.querySelectorAll("body *")].filter((el) => {
        const box = el.getBoundingClientRect();
        return box.width > 0 && (box.right > innerWidth + 0.5 || box.left < -0.5);
    }).map((el) => el.tagName + "." + el.className);
    const cards = [...document.querySelectorAll("main.grid > .card")].map((el) => {
        const box = el.getBoundingClientRect();
        return [Math.round(box.left), box.top, box.bottom];
    });
    const columns = new Map();
    for (const [left, top, bottom] of cards) {
        columns.set(left, (columns.get(left) || []).concat([[top, bottom]]));
    }
    const stacks = [...columns.values()].map((c) => c.sort((a, b) => a[0] - b[0]));
    const holes = stacks.flatMap((c) => c.slice(1).map((card, i) => card[0] - c[i][1]));
    const bottoms = stacks.map((c) => c[c.length - 1][1]);
    const shortest = Math.min(...cards.map(([, top, bottom]) => bottom - top));
    const ticks = (selector) => [...document.querySelectorAll(selector)]
        .filter((el) => el.textContent.trim() !== "").length;
    const table = document.querySelector(".table-wrap");
    return {
        scrollWidth: doc.scrollWidth, innerWidth, wide, columns: columns.size,
        cards: cards.length, largestHole: Math.max(0, ...holes),
        bottomGap: Math.max(...bottoms) - Math.min(...bottoms), shortest,
        charts: document.querySelectorAll("[data-plot]").length,
        yTicks: ticks("[data-y-tick]"), xTicks: ticks("[data-x-tick]"),
        tableOverflow: table.scrollWidth - table.clientWidth,
    };
}"""
ALL_DRAWN = """() => [...document.querySelectorAll('[data-line]')]
    .every((line) => (line.getAttribute('d') || '').startsWith('M'))"""
SCREENSHOTS = Path(os.environ.get("WASIHOST_SCREENSHOT_DIR", "/tmp/wasihost-dashboard"))


def check_layout(frame: Any, name: str) -> dict[str, Any]:
    """Take the page's layout facts (LAYOUT_FACTS) and a screenshot of the whole page
    into SCREENSHOTS; fail on any fact a person would see as broken."""
    frame.wait_for_function(ALL_DRAWN, timeout=LIVE_TIMEOUT_MS)
    facts: dict[str, Any] = frame.evaluate(LAYOUT_FACTS)
    assert facts["scrollWidth"] <= facts["innerWidth"], facts
    assert facts["wide"] == [], facts
    assert facts["tableOverflow"] <= 0, facts
    # Cards stack in their columns (no gap beyond the grid's 1rem), and no column is
    # left short by more than a card would fill.
    assert facts["largestHole"] <= 17, facts
    assert facts["bottomGap"] < facts["shortest"], facts
    # Every chart has its y ticks and its x ticks.
    assert facts["yTicks"] == 3 * facts["charts"], facts
    assert facts["xTicks"] == 3 * facts["charts"], facts
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = frame.evaluate("document.scrollingElement.scrollHeight")
    width = frame.page.viewport_size["width"]
    frame.page.set_viewport_size({"width": width, "height": height})
    frame.wait_for_function(ALL_DRAWN, timeout=LIVE_TIMEOUT_MS)
    frame.page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"))
    return facts


def hover_tooltip(frame: Any, chart: str) -> str:
    """Move the pointer over the middle of `chart`'s plot; return the tooltip's text."""
    box = frame.locator(f"{chart} [data-plot]").bounding_box()
    assert box is not None
    frame.page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    frame.wait_for_function(
        "(selector) => !document.querySelector(selector + ' [data-tip]').hidden",
        arg=chart,
        timeout=LIVE_TIMEOUT_MS,
    )
    return text(frame, f"{chart} [data-tip]")


def test_dashboard_layout_at_desktop_and_phone_widths(host_url: str, browser: Any) -> None:
    """The page as a person sees it, at a desktop's and a phone's width: nothing
    cut off or scrolling sideways, cards without holes (three columns on the
    desktop, one on the phone), labelled axes, a tooltip under the pointer and the
    keyboard, values in readable units. Screenshots go to SCREENSHOTS."""
    chart = f'{DHT22_TEMPERATURE} [data-window-ms="3600000"]'
    for name, width, height in (("desktop", 1280, 800), ("phone", 390, 844)):
        frame, console = open_dashboard(browser, host_url, width, height, color_scheme="dark")
        try:
            frame.wait_for_function(IS_LIVE, timeout=LIVE_TIMEOUT_MS)
            tip = hover_tooltip(frame, chart)
            assert re.fullmatch(r"\d\d:\d\d:\d\d-?\d+\.\d °C", tip), tip
            assert frame.get_attribute(f"{chart} [data-cursor]", "d", timeout=1000)
            # Friendly names and units: a duration, kΩ.
            assert text(frame, '[data-plugin="pi-monitor"] h2') == "Pi monitor"
            assert text(frame, '[data-plugin="dht22"] h2') == "DHT22"
            uptime = text(frame, '[data-plugin="pi-monitor"] [data-measure="uptime"] [data-value]')
            assert re.fullmatch(r"\d+ (s|min|h|d)( \d+ (s|min|h))?", uptime), uptime
            gas = '[data-plugin="bme680"] [data-measure="gas_resistance"]'
            assert text(frame, f"{gas} [data-unit-text]") in ("kΩ", "MΩ")
            facts = check_layout(frame, name)
            assert facts["columns"] == (3 if name == "desktop" else 1), facts
            # The keyboard: focus a plot, step back along the line.
            frame.page.mouse.move(0, 0)
            frame.focus(f"{chart} [data-plot]")
            frame.page.keyboard.press("Home")
            assert not frame.is_hidden(f"{chart} [data-tip]")
            assert console.errors == []
        finally:
            frame.page.context.close()


def history_asked(urls: list[str], plugin: str, field: str) -> list[dict[str, int]]:
    """The since, until and points of each `/api/history` request for one series."""
    asked = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if parts.path == "/api/history" and (query.get("plugin"), query.get("field")) == (
            plugin,
            field,
        ):
            asked.append({key: int(query[key]) for key in ("since", "until", "points")})
    return asked


def choose_range(frame: Any, chart: str, span_ms: int) -> None:
    """Press the page's range button for `span_ms` and wait until `chart` (a long
    chart) has drawn that span from the host's answer: a band (statistics)."""
    frame.click(f'[data-ranges] button[data-range-ms="{span_ms}"]')
    frame.wait_for_function(
        """([selector, span]) => {
            const fig = document.querySelector(selector);
            const area = fig.querySelector('[data-area]');
            return fig.dataset.windowMs === String(span) && area.classList.contains('band') &&
                (area.getAttribute('d') || '').startsWith('M');
        }""",
        arg=[chart, span_ms],
        timeout=LIVE_TIMEOUT_MS,
    )
    pressed = [
        frame.get_attribute(f'[data-ranges] button[data-range-ms="{ms}"]', "aria-pressed")
        for _, ms, _ in render._LONG_RANGES
    ]
    assert pressed == [str(ms == span_ms).lower() for _, ms, _ in render._LONG_RANGES]


def points_in(path: str) -> list[tuple[float, float]]:
    """The coordinates of an SVG path the script drew (M, L, and the lone point's l0 0)."""
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+) (-?[\d.]+)", path)]


def test_long_charts_show_a_week_and_a_year_of_statistics(host_url: str, browser: Any) -> None:
    """The range control switches every long chart to 7 d, then 1 y: the host answers
    with statistics ([t, mean, min, max]) that the chart draws as a band around the
    mean, from the year of DHT22 temperatures seeded into its history."""
    frame, console = open_dashboard(browser, host_url, 1280, 800, color_scheme="dark")
    urls: list[str] = []
    frame.page.on("request", lambda request: urls.append(request.url))
    try:
        frame.wait_for_function(IS_LIVE, timeout=LIVE_TIMEOUT_MS)
        assert frame.is_visible("[data-ranges]")
        long_charts = frame.locator("[data-long]").count()
        assert long_charts == frame.locator("[data-measure]").count()

        for label, span_ms, _ in render._LONG_RANGES[1::2]:  # 7 d and 1 y
            choose_range(frame, DHT22_LONG_CHART, span_ms)
            # Every long chart switched, not only the one looked at; the 1 h ones stay.
            assert frame.locator(f'[data-long][data-window-ms="{span_ms}"]').count() == long_charts
            assert frame.locator('[data-window-ms="3600000"]').count() == long_charts

            # The chart asked for the whole span, and the host answered with statistics.
            asked = history_asked(urls, "dht22", "temperature")
            (request,) = [a for a in asked if a["until"] - a["since"] == span_ms]
            query = urllib.parse.urlencode({"plugin": "dht22", "field": "temperature", **request})
            answer = get_json(f"{host_url}/api/history?{query}")
            assert answer["resolution"] in ("5m", "1h"), answer["resolution"]
            assert answer["points"] and all(len(p) == 4 for p in answer["points"])

            svg = f"{DHT22_LONG_CHART} svg"
            assert frame.get_attribute(svg, "aria-label") == f"Temperature, last {label}"
            assert frame.get_attribute(f"{DHT22_LONG_CHART} [data-span]", "title") == (
                f"last {label}"
            )
            # The seeded year covers the span: the axis is the whole span, not "from …".
            assert text(frame, f"{DHT22_LONG_CHART} [data-span]") == label
            band = frame.get_attribute(f"{DHT22_LONG_CHART} [data-area]", "d") or ""
            line = frame.get_attribute(f"{DHT22_LONG_CHART} [data-line]", "d") or ""
            assert band.count("Z") == line.count("M") and "NaN" not in band + line
            # Hourly buckets make one line, not dots: one run for the seeded year, at
            # most one more for the host's own readings after the seeded gap.
            assert 1 <= line.count("M") <= 2 and len(points_in(line)) >= 100, line
            # The band is each point's maximum, then back along the minima.
            assert len(points_in(band)) == 2 * len(points_in(line))
            # The caption spans the lowest minimum and the highest maximum.
            shown = text(frame, f"{DHT22_LONG_CHART} [data-range]")
            assert shown.endswith(f"–{SEEDED_HIGH:.1f} °C"), shown
            if span_ms >= SEEDED_LOW_DAYS_AGO * DAY_MS:
                assert shown.startswith(f"{SEEDED_LOW:.1f}–"), shown

        # Back to 24 h: the host's own raw readings again, and live.
        frame.click('[data-ranges] button[data-range-ms="86400000"]')
        frame.wait_for_function(
            """(selector) => {
                const fig = document.querySelector(selector);
                return fig.dataset.windowMs === "86400000" &&
                    (fig.querySelector('[data-line]').getAttribute('d') || '').startsWith('M');
            }""",
            arg=DHT22_LONG_CHART,
            timeout=LIVE_TIMEOUT_MS,
        )
        shown = text(frame, f"{DHT22_LONG_CHART} [data-range]")
        assert f"{SEEDED_HIGH:.1f}" not in shown, shown
        if os.environ.get("WASIHOST_SCREENSHOT"):
            choose_range(frame, DHT22_LONG_CHART, 7 * DAY_MS)
            frame.page.screenshot(path=str(SCREENSHOT_WEEK))
        assert console.errors == []
    finally:
        frame.page.context.close()


HOSTILE = '"><img src=x onerror="window.pwned = 1">'
FAKE_ORIGIN = "http://dashboard.test"


def hostile_states(now_ms: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The state the page is rendered from and a hostile state streamed afterwards.

    Names are hostile in both (the script must match them without building
    selectors); the streamed values are hostile wherever a plugin controls them.
    """
    page_state = {
        "node": "pi",
        "cycle": 1,
        "timestamp_ms": now_ms,
        "interval_seconds": 0.5,
        "leds": [[0, 200, 0]],
        "readings": {
            HOSTILE: {
                "world": "w",
                "timestamp_ms": now_ms,
                "measurements": [{"name": HOSTILE, "value": 1.5, "unit": HOSTILE}],
                "status": {"alarm": "none", HOSTILE: 1},
                "error": None,
                "leds": [0],
            }
        },
        "plugins": {HOSTILE: {"state": "running", "world": "w", "polls": 1, "errors": 0}},
    }
    streamed = json.loads(json.dumps(page_state))
    streamed["cycle"] = HOSTILE
    streamed["leds"] = [[HOSTILE, 0, 0]]
    reading = streamed["readings"][HOSTILE]
    reading["measurements"][0]["value"] = HOSTILE
    reading["status"] = {"alarm": HOSTILE, HOSTILE: HOSTILE}
    reading["error"] = HOSTILE
    streamed["plugins"][HOSTILE].update(state=HOSTILE, last_error=HOSTILE, loaded_hash=HOSTILE)
    return page_state, streamed


def open_fake_host(
    browser: Any,
    page_state: dict[str, Any],
    streamed: dict[str, Any],
    history: dict[str, Any] | Callable[[dict[str, str]], dict[str, Any]],
    asked: list[str] | None = None,
) -> tuple[Any, Console]:
    """The host's shell, and the page rendered natively from `page_state`, served at
    FAKE_ORIGIN with the host's real headers through Playwright's request routing;
    `/api/stream` sends `streamed`, `/api/history` answers `history` (or what it
    returns for the request's query), and each history URL is added to `asked`.
    Returns the shell's frame (``frame.page.context`` is to be closed) and the
    tab's console."""

    def answer(route: Any) -> None:
        if asked is not None:
            asked.append(route.request.url)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(route.request.url).query))
        route.fulfill(json=history(query) if callable(history) else history)

    context = browser.new_context()
    # Later routes take precedence: anything not listed below is a 404.
    context.route("**/*", lambda route: route.fulfill(status=404))
    context.route(
        f"{FAKE_ORIGIN}/",
        lambda route: route.fulfill(
            body=shell.SHELL, content_type="text/html", headers=shell.SHELL_HEADERS
        ),
    )
    context.route(
        f"{FAKE_ORIGIN}{shell.FRAME_URL}",
        lambda route: route.fulfill(
            body=render.render_page(page_state),
            content_type="text/html",
            headers=shell.PAGE_HEADERS,
        ),
    )
    context.route(
        f"{FAKE_ORIGIN}/api/stream",
        lambda route: route.fulfill(
            body=f"event: state\ndata: {json.dumps(streamed)}\n\n",
            content_type="text/event-stream",
        ),
    )
    context.route(f"{FAKE_ORIGIN}/api/history?*", answer)
    page = context.new_page()
    console = Console(page)
    try:
        page.goto(f"{FAKE_ORIGIN}/")
        return dashboard_frame(page), console
    except BaseException:
        context.close()
        raise


def test_streamed_hostile_values_stay_text(browser: Any) -> None:
    now_ms = int(time.time() * 1000)
    page_state, streamed = hostile_states(now_ms)
    points = [[now_ms - 20_000, 1.0], [now_ms - 15_000, HOSTILE], ["x", 2], [now_ms - 10_000, 3]]
    history = {"points": [*points, [now_ms, 2], [now_ms + 1, None]]}
    frame, console = open_fake_host(browser, page_state, streamed, history)
    try:
        frame.wait_for_function(
            "() => !document.querySelector('[data-error]').hidden", timeout=LIVE_TIMEOUT_MS
        )

        assert text(frame, "[data-value]") == HOSTILE
        assert text(frame, "[data-alarm]") == f"alarm {HOSTILE}"
        assert text(frame, "[data-status]") == HOSTILE
        assert text(frame, "[data-error]") == HOSTILE
        assert text(frame, '[data-meta="cycle"]') == HOSTILE
        assert text(frame, "[data-led-text]") == "unknown"
        assert text(frame, '[data-col="state"]') == HOSTILE
        assert text(frame, '[data-col="last_error"]') == HOSTILE
        assert HOSTILE in text(frame, "[data-summary]")
        # The chart drew the three numeric history points as one line, and nothing else.
        frame.wait_for_function(
            "() => (document.querySelector('[data-line]').getAttribute('d') || '').startsWith('M')",
            timeout=LIVE_TIMEOUT_MS,
        )
        line = frame.get_attribute("[data-line]", "d") or ""
        assert line.count("M") == 1 and line.count("L") == 2 and "NaN" not in line, line
        assert frame.locator("img").count() == 0
        assert frame.evaluate("window.pwned") is None
        assert console.errors == []
    finally:
        frame.page.context.close()


def test_long_charts_follow_the_history_contract(browser: Any) -> None:
    """/api/history's contract, served by a fake host: statistics are [t, mean, min,
    max] with t the bucket start; the 24 h chart keeps taking live points, a longer
    span does not (it would mix resolutions), and buckets an hour apart are one line."""
    now_ms = int(time.time() * 1000)
    hour = 3_600_000
    # A live point is appended at x = 300, the right edge (the page's clock is the state's).
    reading = {
        "world": "dht22-plugin",
        "timestamp_ms": now_ms,
        "measurements": [{"name": "temperature", "value": 21.5, "unit": "°C"}],
        "status": {"alarm": "none"},
        "error": None,
        "leds": [],
    }
    state = {
        "node": "pi",
        "cycle": 1,
        "timestamp_ms": now_ms,
        "interval_seconds": 0.5,
        "leds": [],
        "readings": {"dht22": reading},
        "plugins": {},
    }
    asked: list[str] = []

    def history(query: dict[str, str]) -> dict[str, Any]:
        """Hourly statistics over the span (mean 20, min 19, max 21, and one bucket of
        -7.5 to 33.3), ending an hour ago for 24 h and a day ago for longer spans."""
        since, until = int(query["since"]), int(query["until"])
        end = until - (hour if until - since <= DAY_MS else DAY_MS)
        first = since - since % hour
        points: list[list[Any]] = [[t, 20.0, 19.0, 21.0] for t in range(first, end, hour)]
        points[len(points) // 2] = [points[len(points) // 2][0], 20.0, -7.5, 33.3]
        points.append([end, 20.0, "x", 21.0])  # a bad minimum: drawn as a plain value
        return {"resolution": "1h", "downsampled": False, "points": points}

    frame, console = open_fake_host(browser, state, state, history, asked)
    chart = '[data-plugin="dht22"] [data-long]'
    try:
        frame.wait_for_function(IS_LIVE, timeout=LIVE_TIMEOUT_MS)
        # 24 h: hourly buckets, with the live point appended at the right edge.
        frame.wait_for_function(
            "(selector) => document.querySelector(selector + ' [data-area]')"
            ".classList.contains('band')",
            arg=chart,
            timeout=LIVE_TIMEOUT_MS,
        )

        def answered(span_ms: int) -> int:
            """How many points the fake host answered the request for `span_ms` with
            (the page's clock is the state's: every such request is the same)."""
            requests = history_asked(asked, "dht22", "temperature")
            (query, *_) = [a for a in requests if a["until"] - a["since"] == span_ms]
            return len(history({key: str(value) for key, value in query.items()})["points"])

        line_d = frame.get_attribute(f"{chart} [data-line]", "d") or ""
        line = points_in(line_d)
        assert line_d.count("M") == 1, line_d
        assert len(line) == answered(DAY_MS) + 1 and line[-1][0] == 300.0, line
        assert text(frame, f"{chart} [data-range]") == "-7.5–33.3 °C"

        for label, span_ms, _ in render._LONG_RANGES[1:]:
            choose_range(frame, chart, span_ms)
            line_d = frame.get_attribute(f"{chart} [data-line]", "d") or ""
            band_d = frame.get_attribute(f"{chart} [data-area]", "d") or ""
            line = points_in(line_d)
            # Every hourly bucket, one line (no dots), and no live point after them.
            assert line_d.count("M") == 1 and band_d.count("Z") == 1, line_d
            # The chart asked for the whole span (answered() finds that request).
            assert len(line) == answered(span_ms), len(line)
            assert line[-1][0] < 300 * (1 - DAY_MS / span_ms) + 1, line[-1]
            assert len(points_in(band_d)) == 2 * len(line)
            assert text(frame, f"{chart} [data-range]") == "-7.5–33.3 °C"
            assert frame.get_attribute(f"{chart} svg", "aria-label") == (
                f"Temperature, last {label}"
            )
        # Another state, handed to the page from the shell's window as the shell does:
        # at 1 y its value is not appended (at 24 h it was, above).
        frame.page.evaluate(
            """(data) => document.getElementById("dashboard").contentWindow
                .postMessage({ type: "state", data }, "*")""",
            json.dumps({**state, "cycle": 2}),
        )
        frame.wait_for_function(
            """() => document.querySelector('[data-meta="cycle"]').textContent === "2" """,
            timeout=LIVE_TIMEOUT_MS,
        )
        line = points_in(frame.get_attribute(f"{chart} [data-line]", "d") or "")
        assert len(line) == answered(365 * DAY_MS) and line[-1][0] < 300 * (1 - 1 / 365) + 1
        # The 1 h chart kept its span.
        assert frame.get_attribute('[data-window-ms="3600000"] svg', "aria-label") == (
            "Temperature, last 1 h"
        )
        assert console.errors == []
    finally:
        frame.page.context.close()


def test_the_page_ignores_messages_not_from_the_shell(browser: Any) -> None:
    """Only the shell (the parent window) speaks to the page: a state posted by anyone
    else, here the page itself (as a frame it made could), is not applied."""
    now_ms = int(time.time() * 1000)
    page_state, _ = hostile_states(now_ms)
    streamed = {**page_state, "cycle": 2}
    forged = {**page_state, "cycle": "forged"}
    frame, console = open_fake_host(browser, page_state, streamed, {"points": []})
    try:
        frame.wait_for_function(IS_LIVE, timeout=LIVE_TIMEOUT_MS)
        assert text(frame, '[data-meta="cycle"]') == "2"
        # Messages from one window arrive in order: once "done" is seen, the page's
        # own listener has had the forged state.
        shown = frame.evaluate(
            """(forged) => new Promise((resolve) => {
                addEventListener("message", (event) => {
                    if (event.data === "done") {
                        resolve(document.querySelector('[data-meta="cycle"]').textContent);
                    }
                });
                postMessage({ type: "state", data: JSON.stringify(forged) }, "*");
                postMessage("done", "*");
            })""",
            forged,
        )
        assert shown == "2"
        assert console.errors == []
    finally:
        frame.page.context.close()


def test_fleet_node_cards_follow_the_stream(browser: Any) -> None:
    """A hub's page: the stream's fleet changes the node cards in place (values,
    alarm, online or not, last seen, age, the counts, labels, versions, rollout
    pills and the rollout's summary and bar)."""
    from wasihost.telemetry.fleet import Fleet

    now_s = time.time()
    clock = [now_s - 180]
    fleet = Fleet(offline_after_seconds=60, clock=lambda: clock[0])

    def heard(node: str, temperature: float, alarm: str) -> None:
        state = {
            "timestamp_ms": int(clock[0] * 1000),
            "temperature": temperature,
            "units": {"temperature": "°C"},
            "status": {"alarm": alarm},
        }
        fleet.handle(f"wasihost/{node}/availability", b"online")
        fleet.handle(f"wasihost/{node}/dht22/state", json.dumps(state).encode())

    content_hash = "sha256:" + "2" * 64

    def deployed(node: str, labels: list[str], version: str, rollout: str, reason: str) -> None:
        """The node's retained versions and its report on dht22, as deploy.node sends them."""
        running = {"dht22": {"version": version, "content_hash": content_hash}}
        versions = {"labels": labels, "plugins": running}
        fleet.handle(f"wasihost/{node}/versions", json.dumps(versions).encode(), retained=True)
        report = {
            "plugin": "dht22",
            "version": "1.2.0",
            "content_hash": content_hash,
            "state": rollout,
            "reason": reason or None,
            "timestamp_ms": int(clock[0] * 1000),
        }
        fleet.handle(f"wasihost/{node}/rollout/dht22", json.dumps(report).encode(), retained=True)

    def hub(cycle: int) -> dict[str, Any]:
        """The hub's own state: no plugins of its own, the fleet it hears."""
        return {
            "node": "hub",
            "cycle": cycle,
            "timestamp_ms": int(clock[0] * 1000),
            "interval_seconds": 0.5,
            "leds": [],
            "readings": {},
            "plugins": {},
            "fleet": fleet.to_json(),
        }

    heard("attic", 21.5, "none")
    heard("cellar", 12.5, "none")
    deployed("attic", [], "1.1.0", "live", "")
    deployed("cellar", ["cold"], "1.1.0", "staging", "")
    page_state = hub(1)
    clock[0] = now_s  # three minutes on: the attic spoke again, the cellar did not
    heard("attic", 22.5, "high")
    deployed("attic", ["greenhouse", HOSTILE], "1.2.0", "rolled-back", HOSTILE)
    streamed = hub(2)

    frame, console = open_fake_host(browser, page_state, streamed, {"points": []})
    attic, cellar = '[data-node="attic"]', '[data-node="cellar"]'
    try:
        # The frame is always served `page_state` (attic 21.5 and no alarm, both nodes
        # online): whatever shows the streamed fleet was changed by the script.
        frame.wait_for_function(
            """() => document.querySelector('[data-meta="cycle"]').textContent === "2" """,
            timeout=LIVE_TIMEOUT_MS,
        )
        assert text(frame, f"{attic} [data-node-value]") == "22.5"
        assert text(frame, f"{attic} [data-node-alarm]") == "alarm high"
        assert frame.is_visible(f"{attic} [data-node-alarm]")
        assert text(frame, f"{attic} [data-node-online]") == "online"
        assert text(frame, f"{cellar} [data-node-online]") == "offline"
        assert "offline" in (frame.get_attribute(cellar, "class") or "").split()
        assert frame.is_visible(f"{cellar} [data-node-not-live]")
        assert text(frame, f"{cellar} [data-node-seen]").startswith("last seen 3 min ago")
        assert text(frame, f"{cellar} [data-node-age]") == "3 min ago"
        assert text(frame, f"{cellar} [data-node-value]") == "12.5"  # kept, greyed
        assert (
            "node-stale"
            in (frame.get_attribute(f'{cellar} [data-node-plugin="dht22"]', "class") or "").split()
        )
        assert text(frame, "[data-fleet-online]") == "1 online"
        assert text(frame, "[data-fleet-offline]") == "1 offline"
        assert frame.is_visible("[data-fleet-offline]")

        # Deployments: labels, the version running and the rollout's state, as text.
        assert frame.is_visible(f"{attic} [data-node-labels]")
        assert text(frame, f"{attic} [data-node-labels]") == f"greenhouse · {HOSTILE}"
        assert text(frame, f"{attic} [data-node-version]") == "1.2.0"
        assert frame.get_attribute(f"{attic} [data-node-version]", "title") == content_hash
        pill = f"{attic} [data-node-rollout]"
        assert text(frame, pill) == "rolled back"
        assert (frame.get_attribute(pill, "class") or "").split() == ["pill", "bad"]
        title = frame.get_attribute(pill, "title") or ""
        assert title == f"{HOSTILE} · version 1.2.0 · retained report", title  # no age: retained
        assert text(frame, f"{cellar} [data-node-rollout]") == "staging"
        assert "warn" in (frame.get_attribute(f"{cellar} [data-node-rollout]", "class") or "")
        # The rollout's line: rendered as "0/2 healthy · 1 live · 1 staging" (both nodes
        # online then), now the attic rolled back and the cellar is offline.
        line = f'[data-rollout-plugin="dht22"][data-rollout-hash="{content_hash}"]'
        assert text(frame, f"{line} [data-rollout-text]") == (
            "0/2 healthy · 1 rolled back · 1 offline"
        )
        assert frame.get_attribute(f"{line} [data-rollout-bar]", "aria-label") == (
            "dht22: 0/2 healthy · 1 rolled back · 1 offline"
        )
        widths = frame.eval_on_selector_all(
            f"{line} [data-seg]", "(els) => els.map((el) => [el.dataset.seg, el.style.width])"
        )
        assert widths == [["ok", "0%"], ["warn", "0%"], ["bad", "50%"], ["off", "50%"]]
        assert frame.locator("img").count() == 0
        assert frame.evaluate("window.pwned") is None
        assert console.errors == []
    finally:
        frame.page.context.close()
