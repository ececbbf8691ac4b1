"""Tests of the dashboard plugin's pure renderer, run natively (no wasm build).

The renderer is fed untrusted plugin output and runs in a guest where any
exception traps the plugin, so most tests are about escaping and about
surviving malformed state rather than about exact markup.
"""

import ast
import copy
import importlib.util
import json
import re
import sys
import types
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "plugins" / "dashboard"
sys.path.insert(0, str(DASHBOARD_DIR))  # the shared guest library: the root conftest.py

import assets  # noqa: E402 - importable only once the plugin directory is on sys.path
import render  # noqa: E402
from wasihost_guest import iaq as shared_iaq  # noqa: E402

from wasihost.telemetry.fleet import Fleet  # noqa: E402

HOSTILE_TAG = "<script>alert(1)</script>"
HOSTILE_ATTR = '"><img src=x onerror=alert(1)>'

FULL_STATE: dict[str, Any] = {
    "node": "raspberrypi",
    "board": "sim",
    "cycle": 12,
    "timestamp_ms": 1_700_000_000_000,
    "interval_seconds": 2.0,
    "leds": [[0, 0, 0], [0, 255, 0], [255, 128, 0]] + [[0, 0, 0]] * 8,
    "readings": {
        "dht22": {
            "world": "dht22-plugin",
            "timestamp_ms": 1_700_000_000_000,
            "measurements": [
                {
                    "name": "temperature",
                    "value": 21.34,
                    "unit": "°C",
                    "device_class": "temperature",
                },
                {"name": "humidity", "value": 45.06, "unit": "%", "device_class": "humidity"},
            ],
            "status": {"stale": False, "age_ms": 0, "alarm": "none", "poll_count": 3},
            "error": None,
            "leds": [1],
        },
        "pi-monitor": {
            "world": "pi-monitor-plugin",
            "timestamp_ms": 1_700_000_000_000,
            "measurements": [
                {"name": "cpu_temperature", "value": 48.2, "unit": "°C"},
                {"name": "uptime", "value": 123456, "unit": "s"},
            ],
            "status": {"alarm": "high", "fan_on": True, "poll_count": 3},
            "error": None,
            "leds": [0],
        },
        "bme680": {
            "world": "bme680-plugin",
            "timestamp_ms": 1_700_000_000_000,
            "measurements": [
                {"name": "pressure", "value": 1013.27, "unit": "hPa"},
                {"name": "gas_resistance", "value": 123456.7, "unit": "Ω"},
                {"name": "iaq", "value": 87.6, "unit": "IAQ", "device_class": "aqi"},
            ],
            "status": {"alarm": "none", "iaq_accuracy": 2, "poll_count": 3},
            "error": None,
            "leds": [2],
        },
    },
    "plugins": {
        "dht22": {
            "state": "running",
            "world": "dht22-plugin",
            "polls": 3,
            "errors": 0,
            "traps": 0,
            "last_error": None,
            "last_poll_ms": 0.41,
            "loaded_hash": "ab12cd34",
        },
        "dashboard": {
            "state": "failed",
            "world": "dashboard-plugin",
            "polls": 0,
            "errors": 2,
            "traps": 1,
            "last_error": "wasm trap: unreachable",
            "last_poll_ms": None,
            "loaded_hash": "ef56ab78",
        },
    },
}


def full_state() -> dict[str, Any]:
    """Return a private copy of the sample state, so tests can corrupt it freely."""
    return copy.deepcopy(FULL_STATE)


Element = tuple[str, dict[str, str | None]]


class _Collector(HTMLParser):
    """Records every start tag with its (unescaped) attributes, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def parse(page: str) -> list[Element]:
    """Parse `page` into its start tags; what the markup means, not how it is spelled."""
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector.elements


def attribute_values(elements: list[Element], name: str) -> list[str | None]:
    """The values of attribute `name` on every element that has it, in page order."""
    return [attrs[name] for _, attrs in elements if name in attrs]


def script_of(page: str) -> str:
    """The text of the page's one inline script."""
    match = re.search(r"<script>(.*?)</script>", page, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_full_state_renders_a_complete_page() -> None:
    page = render.render_page(full_state())

    assert page.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    for text in ("raspberrypi", "sim", "22:13:20 UTC", '<b data-meta="interval">2.0 s</b>'):
        assert text in page
    for name in ("dht22", "pi-monitor", "bme680", "dashboard"):
        assert name in page
    # Cards and rows are titled by readable names, the slug beside them where it differs.
    for title in ("<h2>DHT22</h2>", "<h2>Pi monitor</h2>", "<h2>BME680</h2>"):
        assert title in page
    assert "21.3" in page and "45.1" in page and "°C" in page
    assert "Cannot render" not in page


def test_live_values_carry_the_data_attributes_the_script_updates() -> None:
    page = render.render_page(full_state())
    elements = parse(page)

    body = next(attrs for tag, attrs in elements if tag == "body")
    assert body == {"data-now": "1700000000000", "data-interval": "2.0"}
    assert attribute_values(elements, "data-meta") == ["board", "cycle", "updated", "interval"]
    assert attribute_values(elements, "data-plugin") == ["dht22", "pi-monitor", "bme680"]
    assert attribute_values(elements, "data-health") == ["dht22", "dashboard"]
    assert attribute_values(elements, "data-col").count("loaded_hash") == 2
    # Eleven strip LEDs in the header plus one per card.
    assert len(attribute_values(elements, "data-led")) == 11 + 3
    assert attribute_values(elements, "data-measure") == [
        "temperature",
        "humidity",
        "cpu_temperature",
        "uptime",
        "iaq",
        "pressure",
        "gas_resistance",
    ]
    # The script formats like the page: IAQ and durations as integers, the rest with a decimal.
    assert attribute_values(elements, "data-decimals") == ["1", "1", "1", "0", "0", "1", "1"]
    # How the script scales each live value, as the page did (seconds, ohms).
    assert attribute_values(elements, "data-kind") == ["", "", "", "duration", "", "", "ohm"]
    assert attribute_values(elements, "data-unit")[-1] == "Ω"
    assert len(attribute_values(elements, "data-value")) == 7
    assert attribute_values(elements, "data-status") == [
        "poll_count",
        "fan_on",
        "poll_count",
        "poll_count",
    ]
    for marker in ("data-alarm", "data-stale", "data-error", "data-updated"):
        assert len(attribute_values(elements, marker)) == 3, marker
    assert attribute_values(elements, "data-live") == [None]
    assert attribute_values(elements, "data-summary") == [None]


def test_every_measurement_gets_an_hour_and_a_day_chart() -> None:
    page = render.render_page(full_state())
    elements = parse(page)

    windows = attribute_values(elements, "data-window-ms")
    assert windows == ["3600000", "86400000"] * 7
    assert len(attribute_values(elements, "data-line")) == 14
    assert len(attribute_values(elements, "data-area")) == 14
    assert len(attribute_values(elements, "data-range")) == 14
    assert page.count(">no history yet</span>") == 14  # until the script has points
    svgs = [attrs for tag, attrs in elements if tag == "svg"]
    assert {attrs["viewbox"] for attrs in svgs} == {"0 0 300 60"}
    assert "Temperature, last 24 h" in attribute_values(elements, "aria-label")
    # The axes the script labels: three y and three x ticks a chart, a plot the
    # keyboard can focus, and the crosshair, dot and tooltip of the pointer.
    assert len(attribute_values(elements, "data-y-tick")) == 3 * 14
    assert len(attribute_values(elements, "data-x-tick")) == 3 * 14
    plots = [attrs for tag, attrs in elements if "data-plot" in attrs]
    assert len(plots) == 14 and all(attrs["tabindex"] == "0" for attrs in plots)
    for marker in ("data-cursor", "data-dot", "data-tip"):
        assert len(attribute_values(elements, marker)) == 14, marker
    # The second chart of each measurement is the long one, which the range control switches.
    figures = [attrs for tag, attrs in elements if tag == "figure"]
    assert ["data-long" in attrs for attrs in figures] == [False, True] * 7


def test_one_range_control_chooses_the_long_charts_span() -> None:
    page = render.render_page(full_state())
    elements = parse(page)

    (group,) = [attrs for _, attrs in elements if "data-ranges" in attrs]
    assert group["role"] == "group"
    # Named by its visible label.
    assert f'<span class="ranges-label" id="{group["aria-labelledby"]}">chart span</span>' in page
    # Hidden until the script runs: without it the buttons could do nothing.
    assert "hidden" in group
    buttons = [attrs for tag, attrs in elements if tag == "button"]
    assert [attrs["data-range-ms"] for attrs in buttons] == [
        "86400000",
        str(7 * 86_400_000),
        str(30 * 86_400_000),
        str(365 * 86_400_000),
    ]
    assert [attrs["type"] for attrs in buttons] == ["button"] * 4
    # 24 h is the default: the long charts are rendered with it.
    assert [attrs["aria-pressed"] for attrs in buttons] == ["true", "false", "false", "false"]
    assert attribute_values(elements, "data-window-ms")[1] == buttons[0]["data-range-ms"]
    labels = re.findall(r"<button [^>]*>([^<]*)</button>", page)
    assert labels == ["24 h", "7 d", "30 d", "1 y"]
    assert [attrs["title"] for attrs in buttons] == [
        "chart the last 24 hours",
        "chart the last 7 days",
        "chart the last 30 days",
        "chart the last year",
    ]
    # One control for the page, in the header, not one per chart.
    header = page[page.index('<header class="page-header">') : page.index("</header>")]
    assert "data-ranges" in header
    assert len(buttons) == len(render._LONG_RANGES)


@pytest.mark.parametrize("state", [{}, {"readings": {}, "plugins": {}}])
def test_no_range_control_without_charts(state: dict[str, Any]) -> None:
    elements = parse(render.render_page(state))
    assert attribute_values(elements, "data-ranges") == []
    assert [tag for tag, _ in elements if tag == "button"] == []


def test_page_is_self_contained() -> None:
    page = render.render_page(full_state())
    elements = parse(page)

    assert "http://" not in page and "https://" not in page
    assert [tag for tag, _ in elements if tag in ("link", "img", "iframe", "object")] == []
    assert not [attrs for _, attrs in elements if "src" in attrs or "href" in attrs]
    # The style sheet and script load nothing either: ESLint's rules for the asset
    # files (tests/web/test_dashboard_lint.py), which the page inlines verbatim.
    # Without JavaScript the page still refreshes itself, at most every 5 s.
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page


def test_script_gets_the_iaq_bands_from_python() -> None:
    script = script_of(render.render_page(full_state()))

    assert assets.IAQ_PLACEHOLDER not in script
    table = re.search(r"const IAQ = (\{.*?\});", script)
    assert table is not None
    assert json.loads(table.group(1)) == {
        "bands": [list(band) for band in render._IAQ_BANDS],
        "worst": list(render._IAQ_WORST),
        "accuracyMax": 3,
    }


def test_values_are_rounded_by_size_and_kind() -> None:
    page = render.render_page(full_state())

    # Uptime in seconds reads as a duration, with no unit after it.
    assert (
        '<span class="value" data-value>1 d 10 h</span><span class="unit" data-unit-text>' in page
    )
    # Gas resistance in ohms is scaled to kΩ.
    assert 'data-value>123.5</span><span class="unit" data-unit-text>kΩ</span>' in page
    assert "1,013.3" in page  # pressure keeps its decimal
    assert ">88<" in page  # IAQ is shown as an integer
    assert "0.41 ms" in page


def test_raised_alarm_is_prominent_and_quiet_alarm_is_calm() -> None:
    page = render.render_page(full_state())

    assert page.count('class="card alarmed"') == 1
    assert '<span class="badge alarm" data-alarm>alarm high</span>' in page
    assert page.count('<span class="badge ok" data-alarm>no alarm</span>') == 2
    assert '<span class="pill bad" data-summary>Pi monitor: alarm high · Dashboard: failed' in page


def test_alarm_badge_is_hidden_for_plugins_without_an_alarm() -> None:
    page = render.render_page({"readings": {"x": {"status": {"poll_count": 1}}}})

    assert '<span class="badge ok" data-alarm hidden>no alarm</span>' in page
    assert '<span class="pill ok" data-summary>all clear</span>' in page


@pytest.mark.parametrize("hostile", [HOSTILE_TAG, HOSTILE_ATTR])
def test_untrusted_strings_are_escaped_everywhere(hostile: str) -> None:
    state = {
        "node": hostile,
        "board": hostile,
        "leds": [[1, 2, 3]],
        "readings": {
            hostile: {
                "world": hostile,
                "timestamp_ms": 0,
                "measurements": [
                    {"name": hostile, "value": hostile, "unit": hostile},
                    {"name": "iaq", "value": 10, "unit": hostile},
                ],
                "status": {hostile: hostile, "alarm": hostile, "iaq_accuracy": hostile},
                "error": hostile,
                "leds": [0],
            }
        },
        "plugins": {
            hostile: {
                "state": hostile,
                "world": hostile,
                "polls": hostile,
                "errors": hostile,
                "traps": hostile,
                "last_error": hostile,
                "last_poll_ms": hostile,
                "loaded_hash": hostile,
            }
        },
    }

    page = render.render_page(state)

    elements = parse(page)
    assert [tag for tag, _ in elements if tag in ("img", "script")] == ["script"]
    assert not [name for _, attrs in elements for name in attrs if name.startswith("on")]
    assert "&lt;" in page
    assert "Cannot render" not in page
    # Attribute values survive escaping intact: the script matches on them.
    for key in ("data-plugin", "data-measure", "data-status", "data-health", "data-world"):
        assert hostile in attribute_values(elements, key), key


def test_empty_state_renders_placeholders() -> None:
    page = render.render_page({})

    assert page.startswith("<!DOCTYPE html>")
    assert "No readings yet." in page
    assert "No plugins loaded." in page
    assert "Cannot render" not in page


@pytest.mark.parametrize(
    "state",
    [
        {"node": None, "board": None, "cycle": None, "timestamp_ms": None, "leds": None},
        {"readings": None, "plugins": None, "interval_seconds": None},
        {"readings": {"dht22": None}, "plugins": {"dht22": None}},
        {"readings": {"dht22": {}}, "plugins": {"dht22": {}}},
        {
            "readings": {
                "dht22": {
                    "world": None,
                    "timestamp_ms": None,
                    "measurements": [None, {}, {"name": None, "value": None, "unit": None}],
                    "status": None,
                    "error": None,
                    "leds": [None, -1, 99, True, "1"],
                }
            }
        },
        {"leds": [None, [1, 2], ["a", 2, 3], [300, -5, 7.9]], "readings": {"x": {"leds": [3]}}},
        {"timestamp_ms": float("nan"), "cycle": float("inf"), "interval_seconds": "2"},
        {"readings": [1, 2], "plugins": "none", "leds": {"0": [1, 2, 3]}},
    ],
)
def test_missing_null_and_wrongly_typed_fields_do_not_break_the_page(
    state: dict[str, Any],
) -> None:
    page = render.render_page(state)

    assert page.rstrip().endswith("</html>")
    assert "Cannot render" not in page


def test_reading_without_timestamp_says_never_polled() -> None:
    state = full_state()
    state["readings"]["dht22"].update(timestamp_ms=None, error="checksum mismatch")

    page = render.render_page(state)

    assert "never polled successfully" in page
    assert "checksum mismatch" in page


def test_iaq_band_and_accuracy_are_shown() -> None:
    page = render.render_page(full_state())

    assert '<span class="iaq-moderate" data-iaq-band>moderate</span>' in page
    assert '<span class="muted" data-iaq-accuracy>accuracy 2/3</span>' in page


def test_iaq_leads_its_card() -> None:
    page = render.render_page(full_state())

    bme680 = page[page.index('data-plugin="bme680"') :]
    assert bme680.index('data-measure="iaq"') < bme680.index('data-measure="pressure"')


def test_accuracy_without_iaq_measurement_stays_in_the_status_list() -> None:
    state = {"readings": {"bme680": {"status": {"iaq_accuracy": 0}}}}

    page = render.render_page(state)

    assert '<dt>IAQ accuracy</dt><dd data-status="iaq_accuracy">0/3</dd>' in page


@pytest.mark.parametrize(
    ("iaq", "label"),
    [
        (0, "good"),
        (50, "good"),
        (50.4, "good"),
        (51, "moderate"),
        (100, "moderate"),
        (101, "unhealthy for sensitive groups"),
        (150, "unhealthy for sensitive groups"),
        (151, "unhealthy"),
        (200, "unhealthy"),
        (201, "very unhealthy"),
        (300, "very unhealthy"),
        (301, "hazardous"),
        (500, "hazardous"),
    ],
)
def test_iaq_band_boundaries(iaq: float, label: str) -> None:
    assert render.iaq_band(iaq)[0] == label


def test_the_page_and_the_bme680_led_name_the_same_iaq_band() -> None:
    """Two tables, two plugins: at IAQ 50.4 the LED once said "moderate" and the
    page "good". Both now read the shared library's one table; every tenth from
    0 to 400, and the .5 edges, must agree."""
    spec = importlib.util.spec_from_file_location(
        "bme680_iaq", DASHBOARD_DIR.parent / "bme680" / "iaq.py"
    )
    assert spec is not None and spec.loader is not None
    bme680_iaq = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bme680_iaq)
    values = [tenths / 10 for tenths in range(4001)] + [50.5, 100.5, 150.5, 200.5, 300.5]
    disagree = [v for v in values if bme680_iaq.band(v) != render.iaq_band(v)[0]]
    assert disagree == []
    assert render.iaq_band(50.5)[0] == "moderate" == bme680_iaq.band(50.5)
    assert bme680_iaq.band is shared_iaq.band
    assert [label for _, label, _ in render._IAQ_BANDS] == [label for _, label in shared_iaq.BANDS]


def test_led_colours_are_shown_as_rgb() -> None:
    page = render.render_page(full_state())

    assert "rgb(0, 255, 0)" in page  # dht22's LED 1
    assert "rgb(255, 128, 0)" in page  # bme680's LED 2
    assert "LED 1 <code data-led-text>rgb(0, 255, 0)</code>" in page


def test_led_channels_are_clamped_and_bad_indices_marked_unknown() -> None:
    state = {"leds": [[300, -5, 7.9]], "readings": {"x": {"leds": [0, 5]}}}

    page = render.render_page(state)

    assert "rgb(255, 0, 7)" in page
    assert "LED 5 <code data-led-text>unknown</code>" in page


def test_stale_reading_shows_its_age_in_seconds() -> None:
    state = full_state()
    state["readings"]["dht22"]["status"].update(stale=True, age_ms=12_500)

    page = render.render_page(state)

    assert "stale · 12.5 s old" in page


def test_fresh_reading_has_a_hidden_stale_badge() -> None:
    page = render.render_page(full_state())

    assert page.count('<span class="badge stale" data-stale hidden>stale</span>') == 3


def test_reading_the_host_has_not_replaced_for_a_while_is_stale() -> None:
    state = full_state()
    state["readings"]["dht22"]["timestamp_ms"] -= 30_000  # 15 intervals of 2 s

    page = render.render_page(state)

    assert '<span class="badge stale" data-stale>stale · 30.0 s old</span>' in page


@pytest.mark.parametrize(
    ("age_ms", "shown"), [(12_500, "12.5 s"), (600_000, "10 min"), (7_200_000, "2.0 h")]
)
def test_stale_age_is_shown_in_a_readable_unit(age_ms: int, shown: str) -> None:
    state = full_state()
    state["readings"]["dht22"]["status"].update(stale=True, age_ms=age_ms)

    assert f"stale · {shown} old" in render.render_page(state)


def test_staleness_waits_at_least_five_seconds_at_fast_poll_rates() -> None:
    state = full_state()
    state["interval_seconds"] = 0.5
    state["readings"]["dht22"]["timestamp_ms"] -= 4_000  # 8 intervals, but only 4 s

    assert "data-stale>" not in render.render_page(state)


def test_health_table_lists_plugins_and_highlights_failures() -> None:
    page = render.render_page(full_state())

    assert "<th>Loaded version</th>" in page
    assert '<code data-col="loaded_hash">ab12cd34</code>' in page
    assert '<td class="ok" data-col="state" data-label="State">running</td>' in page
    assert '<td class="bad" data-col="state" data-label="State">failed</td>' in page
    assert '<td class="num bad" data-col="errors" data-label="Errors">2</td>' in page
    assert (
        '<td class="bad" data-col="last_error" data-label="Last error">wasm trap: unreachable</td>'
        in page
    )


@pytest.mark.parametrize(
    ("timestamp_ms", "expected"),
    [(0, "00:00:00"), (1_700_000_000_000, "22:13:20"), (86_399_999, "23:59:59")],
)
def test_format_utc_time(timestamp_ms: int, expected: str) -> None:
    assert render.format_utc_time(timestamp_ms) == expected


@pytest.mark.parametrize(
    ("state_json", "message"),
    [
        ("not json", "JSONDecodeError"),
        ("[1, 2]", "JSON list, expected an object"),
        ("null", "JSON NoneType, expected an object"),
        ("[" * 100_000, "nested 100000 levels deep, more than 64"),
    ],
)
def test_render_json_turns_bad_input_into_an_error_page(state_json: str, message: str) -> None:
    page = render.render_json(state_json)

    assert page.startswith("<!DOCTYPE html>")
    assert "Cannot render the dashboard" in page
    assert message in page
    assert '<meta http-equiv="refresh" content="10">' in page  # a wall tablet recovers
    assert "<script" not in page


def nested_state_json(depth: int, node: str = "pi") -> str:
    """Return state JSON whose deepest value sits `depth` arrays/objects down."""
    lists = depth - 4  # the state, readings, reading and status objects
    return (
        f'{{"node": "{node}", "readings": {{"x": {{"status": {{"deep": '
        + "[" * lists
        + "]" * lists
        + "}}}}"
    )


def test_render_json_accepts_nesting_up_to_the_limit_and_brackets_in_strings() -> None:
    page = render.render_json(nested_state_json(64, node='[[[[[[[[[[\\"{{{{'))

    assert "Cannot render" not in page
    assert "[[[[[[[[[[&quot;{{{{" in page


def test_render_json_refuses_nesting_beyond_the_limit() -> None:
    """Deep JSON exhausts the guest's C stack (a trap), so it must never reach json.loads."""
    page = render.render_json(nested_state_json(65))

    assert "nested 65 levels deep, more than 64" in page


def test_render_json_escapes_the_error_message() -> None:
    page = render.render_json(HOSTILE_TAG)

    assert "<script>" not in page
    assert "Cannot render the dashboard" in page


def test_a_failing_card_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    real_card = render._reading_card

    def card(name: str, reading: object, snapshot: Any, info: Any) -> str:
        if name == "dht22":
            raise ValueError(HOSTILE_TAG)
        return real_card(name, reading, snapshot, info)

    monkeypatch.setattr(render, "_reading_card", card)

    page = render.render_page(full_state())

    assert "Cannot render the &#x27;dht22&#x27; card: ValueError" in page
    assert HOSTILE_TAG not in page
    assert "<h2>BME680</h2>" in page  # the other cards still render
    # Still tagged, or the script would take the card for missing and reload forever.
    assert '<section class="card" data-plugin="dht22"><p class="error"' in page


@pytest.mark.parametrize("module", ["render.py", "assets.py"])
def test_renderer_modules_use_only_the_standard_library(module: str) -> None:
    """And the shared guest library, which is standard library only itself
    (tests/guest/test_guest_library.py)."""
    tree = ast.parse((DASHBOARD_DIR / module).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    siblings = {path.stem for path in DASHBOARD_DIR.glob("*.py")} - {"app"}

    assert "wit_world" not in imported
    assert imported <= set(sys.stdlib_module_names) | siblings | {"wasihost_guest"}


def test_the_style_sheet_and_script_are_the_asset_files_verbatim() -> None:
    """Real files for their linter; the page inlines them byte for byte (in the
    component the build embeds them: tests/authoring/test_build.py)."""
    style = (DASHBOARD_DIR / "assets" / "style.css").read_bytes().decode("utf-8")
    script = (DASHBOARD_DIR / "assets" / "app.js").read_bytes().decode("utf-8")
    page = render.render_page(full_state())

    assert assets.STYLE[1:] == style and assets.SCRIPT[1:] == script
    assert assets.STYLE[0] == assets.SCRIPT[0] == "\n"  # each starts after its tag's line
    assert f"<style>\n{style}</style>" in page
    before, after = script.split(assets.IAQ_PLACEHOLDER)
    assert f"<script>\n{before}" in page and f"{after}</script>" in page


def test_app_binding_delegates_to_render_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """Load app.py against a stub `wit_world`, which only exists inside a wasm build."""
    exports = types.ModuleType("wit_world.exports")
    exports.DashboardLogic = type("DashboardLogic", (), {})  # type: ignore[attr-defined]
    wit_world = types.ModuleType("wit_world")
    wit_world.exports = exports  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wit_world", wit_world)
    monkeypatch.setitem(sys.modules, "wit_world.exports", exports)
    spec = importlib.util.spec_from_file_location("dashboard_app", DASHBOARD_DIR / "app.py")
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)

    logic = app.DashboardLogic()

    assert "raspberrypi" in logic.render('{"node": "raspberrypi"}')
    assert "Cannot render the dashboard" in logic.render("{")


# ---- the fleet (a hub's state) --------------------------------------------

HUB_NOW_S = FULL_STATE["timestamp_ms"] / 1000
HASH_1 = "sha256:" + "1" * 64
HASH_2 = "sha256:" + "2" * 64


def fleet_doc() -> dict[str, Any]:
    """A hub's `Fleet.to_json()` after hearing three nodes, one of them silent for 3 min.

    Built by the real `Fleet` from MQTT messages, so the tests follow its document.
    """
    now = [HUB_NOW_S - 180]
    fleet = Fleet(offline_after_seconds=60, clock=lambda: now[0])

    def publish(node: str, plugin: str, values: dict[str, Any], units: dict[str, str]) -> None:
        doc = {"timestamp_ms": int(now[0] * 1000), **values, "units": units}
        doc["status"] = {"alarm": "none"}
        fleet.handle(f"wasihost/{node}/availability", b"online")
        fleet.handle(f"wasihost/{node}/{plugin}/state", json.dumps(doc).encode())

    def report(node: str, plugin: str, state: str, reason: str | None = None) -> None:
        doc = {
            "plugin": plugin,
            "version": "1.2.0",
            "content_hash": HASH_2,
            "state": state,
            "reason": reason,
            "source": "label",
            "since_ms": int(now[0] * 1000),
            "timestamp_ms": int(now[0] * 1000),
        }
        fleet.handle(f"wasihost/{node}/rollout/{plugin}", json.dumps(doc).encode())

    publish("cellar", "dht22", {"temperature": 12.3, "humidity": 81.0}, {"temperature": "°C"})
    report("cellar", "dht22", "live")
    now[0] = HUB_NOW_S - 1
    publish("attic", "dht22", {"temperature": 21.5, "humidity": 45.44}, {"temperature": "°C"})
    publish(
        "attic", "bme680", {"iaq": 87.6, "pressure": 1013.27}, {"iaq": "IAQ", "pressure": "hPa"}
    )
    publish("garage", "pi-monitor", {"cpu_temperature": 48.2}, {"cpu_temperature": "°C"})
    versions = {
        "labels": ["greenhouse", "north"],
        "plugins": {
            "dht22": {"version": "1.2.0", "content_hash": HASH_2},
            "bme680": {"version": None, "content_hash": HASH_1},
        },
    }
    fleet.handle("wasihost/attic/versions", json.dumps(versions).encode())
    report("attic", "dht22", "healthy")
    report("garage", "pi-monitor", "rolled-back", "trapped: unreachable")
    now[0] = HUB_NOW_S
    return fleet.to_json()


def hub_state() -> dict[str, Any]:
    state = full_state()
    state["fleet"] = fleet_doc()
    return state


def node_card(page: str, node: str) -> str:
    """The markup of one node's card."""
    start = page.index(f'data-node="{node}"')
    return page[start : page.index("</section>", start)]


@pytest.mark.parametrize("fleet", ["absent", None, {}, {"nodes": []}, {"nodes": [None, {"x": 1}]}])
def test_fleet_section_is_absent_without_nodes(fleet: object) -> None:
    state = full_state()
    if fleet != "absent":
        state["fleet"] = fleet

    page = render.render_page(state)
    elements = parse(page)

    assert attribute_values(elements, "data-fleet") == []
    assert attribute_values(elements, "data-node") == []
    assert ">Fleet<" not in page
    assert "Cannot render" not in page


def test_fleet_nodes_are_rendered_with_their_values() -> None:
    page = render.render_page(hub_state())
    elements = parse(page)

    assert attribute_values(elements, "data-fleet") == [None]
    assert attribute_values(elements, "data-node") == ["attic", "cellar", "garage"]
    assert attribute_values(elements, "data-node-plugin") == [
        "bme680",
        "dht22",
        "dht22",
        "pi-monitor",
    ]
    assert attribute_values(elements, "data-node-measure") == [
        "iaq",
        "pressure",
        "temperature",
        "humidity",
        "temperature",
        "humidity",
        "cpu_temperature",
    ]
    assert attribute_values(elements, "data-decimals")[-7:] == ["0", "1", "1", "1", "1", "1", "1"]
    assert '<span class="pill ok" data-fleet-online>2 online</span>' in page
    assert '<span class="pill bad" data-fleet-offline>1 offline</span>' in page
    # The fleet's own data attributes never collide with the local cards' ones.
    assert attribute_values(elements, "data-plugin") == ["dht22", "pi-monitor", "bme680"]

    attic = node_card(page, "attic")
    assert '<span class="badge node-online" data-node-online>online</span>' in attic
    assert "last seen 1.0 s ago · 22:13:19 UTC" in attic
    assert '<p class="not-live" data-node-not-live hidden>' in attic
    assert (
        '<span class="node-value" data-node-value>21.5</span><span class="unit">°C</span>' in attic
    )
    assert '<span class="node-value" data-node-value>45.4</span></dd>' in attic  # no unit sent
    assert '>88</span><span class="unit">IAQ</span>' in attic
    assert '>1,013.3</span><span class="unit">hPa</span>' in attic
    assert '<span class="node-age" data-node-age>1.0 s ago</span>' in attic
    assert "node-stale" not in attic
    assert 'class="badge alarm" data-node-alarm hidden' in attic
    assert "48.2" in node_card(page, "garage")
    assert "Cannot render" not in page


def test_offline_node_is_marked_as_not_live_with_its_age() -> None:
    page = render.render_page(hub_state())

    cellar = node_card(page, "cellar")
    assert cellar.startswith('data-node="cellar"')
    assert '<section class="card node-card offline" data-node="cellar">' in page
    assert '<span class="badge node-offline" data-node-online>offline</span>' in cellar
    assert "last seen 3 min ago · 22:10:20 UTC" in cellar
    assert '<p class="not-live" data-node-not-live>not live' in cellar
    # Its last values are still shown, greyed, with their age.
    assert '<div class="node-plugin node-stale" data-node-plugin="dht22">' in cellar
    assert '<span class="node-age" data-node-age>3 min ago</span>' in cellar
    assert ">12.3</span>" in cellar
    for selector in (".node-card.offline .node-measures", ".node-card.offline .node-value"):
        assert selector in assets.STYLE


def test_only_an_explicit_online_flag_counts_as_online() -> None:
    state = full_state()
    state["fleet"] = {"nodes": [{"node": "a", "online": "yes"}, {"node": "b", "online": 1}]}

    page = render.render_page(state)

    assert page.count("data-node-online>offline</span>") == 2
    assert '<span class="pill ok" data-fleet-online>0 online</span>' in page
    assert "not heard live since the hub started" in page
    assert "No readings received." in page


def test_plugin_silent_for_longer_than_the_timeout_is_greyed_on_an_online_node() -> None:
    state = hub_state()
    attic = state["fleet"]["nodes"][0]
    assert attic["node"] == "attic"
    attic["plugins"]["bme680"]["age_seconds"] = 600.0

    page = render.render_page(state)

    attic_card = node_card(page, "attic")
    assert '<div class="node-plugin node-stale" data-node-plugin="bme680">' in attic_card
    assert '<span class="node-age" data-node-age>10 min ago</span>' in attic_card
    assert '<div class="node-plugin" data-node-plugin="dht22">' in attic_card


def test_a_retained_state_and_report_show_retained_not_an_age() -> None:
    """Their age is unknown (null): the hub never compares a node's stamp with its
    own clock, so "retained" is shown, greyed, never "0 s ago"."""
    fleet = Fleet(offline_after_seconds=60, clock=lambda: HUB_NOW_S)
    stamp = int(HUB_NOW_S * 1000) + 3_600_000  # the node's clock is ahead: age was 0 s
    doc = {"timestamp_ms": stamp, "temperature": 20.0}
    fleet.handle("wasihost/attic/availability", b"online")
    fleet.handle("wasihost/attic/dht22/state", json.dumps(doc).encode(), retained=True)
    report = {"plugin": "dht22", "state": "healthy", "version": "1.2.0", "timestamp_ms": stamp}
    fleet.handle("wasihost/attic/rollout/dht22", json.dumps(report).encode(), retained=True)
    fleet.handle("wasihost/attic/versions", json.dumps({"plugins": {"bme680": {}}}).encode())
    state = full_state()
    state["fleet"] = fleet.to_json()

    page = render.render_page(state)

    attic = node_card(page, "attic")
    assert '<div class="node-plugin node-stale" data-node-plugin="dht22">' in attic
    assert '<span class="node-age" data-node-age>retained</span>' in attic
    assert "data-node-age>0 s ago" not in attic and "reported" not in attic
    assert 'title="version 1.2.0 · retained report"' in attic
    # A plugin known only from the node's versions has no state: no age, not greyed.
    assert '<div class="node-plugin" data-node-plugin="bme680">' in attic
    assert f'<span class="node-age" data-node-age>{render._MISSING}</span>' in attic


def test_node_cards_show_labels_versions_and_rollout_states() -> None:
    page = render.render_page(hub_state())
    attic = node_card(page, "attic")

    assert (
        '<span class="node-labels" title="labels" data-node-labels>greenhouse · north</span>'
        in attic
    )
    assert f'<span class="node-version" data-node-version title="{HASH_2}">1.2.0</span>' in attic
    # Code from the node's own config: no version, its content hash.
    assert (
        f'<span class="node-version" data-node-version title="{HASH_1}">configured</span>' in attic
    )
    assert (
        '<span class="pill ok" data-node-rollout title="version 1.2.0 · reported 1.0 s ago">'
        "healthy</span>" in attic
    )
    # No report on bme680: the pill is there for the script, hidden.
    bme680 = attic[attic.index('data-node-plugin="bme680"') :]
    assert '<span class="pill off" data-node-rollout title="" hidden>rollout</span>' in bme680
    garage = node_card(page, "garage")
    assert (
        '<span class="pill bad" data-node-rollout title="trapped: unreachable · version 1.2.0'
        ' · reported 1.0 s ago">rolled back</span>' in garage
    )
    assert '<span class="node-labels" title="labels" data-node-labels hidden></span>' in garage
    assert '<span class="node-version" data-node-version title="" hidden></span>' in garage
    cellar = node_card(page, "cellar")
    assert (
        '<span class="pill warn" data-node-rollout title="version 1.2.0 · reported 3 min ago">'
        "live</span>" in cellar
    )
    assert "Cannot render" not in page


def test_each_rollout_has_a_summary_line_and_a_progress_bar() -> None:
    page = render.render_page(hub_state())
    elements = parse(page)

    assert attribute_values(elements, "data-rollout-plugin") == ["dht22", "pi-monitor"]
    assert attribute_values(elements, "data-rollout-hash") == [HASH_2, HASH_2]
    start = page.index('data-rollout-plugin="dht22"')
    dht22 = page[start : page.index('data-rollout-plugin="pi-monitor"')]
    assert f'<code title="{HASH_2}">222222222222</code>' in dht22
    assert '<span class="rollout-version">1.2.0</span>' in dht22
    # The attic is healthy; the cellar said "live" but is offline: it counts as offline.
    assert '<span class="rollout-text" data-rollout-text>1/2 healthy · 1 offline</span>' in dht22
    assert 'aria-label="dht22: 1/2 healthy · 1 offline"' in dht22
    widths = re.findall(r'data-seg="(\w+)" style="width: ([\d.]+)%"', dht22)
    assert widths == [("ok", "50.0"), ("warn", "0.0"), ("bad", "0.0"), ("off", "50.0")]
    assert ">0/1 healthy · 1 rolled back</span>" in page
    # The rollouts come before the node cards.
    assert page.index("data-rollouts") < page.index('data-node="attic"')
    assert "more with fewer nodes" not in page
    state = hub_state()
    state["fleet"]["rollouts_omitted"] = 1234
    assert '<p class="muted">and 1,234 more with fewer nodes</p>' in render.render_page(state)


@pytest.mark.parametrize(
    ("rollout", "text", "shares"),
    [
        (
            {"states": {"healthy": 3, "rolled-back": 1}, "offline": 1, "nodes": 5},
            "3/5 healthy · 1 rolled back · 1 offline",
            {"ok": 60.0, "warn": 0.0, "bad": 20.0, "off": 20.0},
        ),
        (
            {"states": {"live": 2, "staging": 1, "received": 1, "needs-grants": 1, "refused": 1}},
            "0/6 healthy · 2 live · 1 staging · 1 received · 1 refused · 1 needs grants",
            {"ok": 0.0, "warn": 400 / 6, "bad": 200 / 6, "off": 0.0},
        ),
        # Counts that are not counts are left out; the total is what is counted.
        (
            {"states": {"healthy": "3", "failed": 1.0, "exploded": 4, "live": -1}, "nodes": 99},
            "0/1 healthy · 1 failed",
            {"ok": 0.0, "warn": 0.0, "bad": 100.0, "off": 0.0},
        ),
        (
            {"states": None, "offline": None},
            "0/0 healthy",
            dict.fromkeys(["ok", "warn", "bad", "off"], 0.0),
        ),
    ],
)
def test_rollout_summary_counts_and_shares(
    rollout: dict[str, Any], text: str, shares: dict[str, float]
) -> None:
    assert render.rollout_summary(rollout) == (text, pytest.approx(shares))


def test_rollout_states_are_the_deploy_protocols() -> None:
    """Every state a node can report has a class, here and in the script."""
    from wasihost.deploy import protocol

    assert set(render._ROLLOUT_CLASSES) == set(protocol.STATES)
    assert set(render._ROLLOUT_ORDER) == set(protocol.STATES) - {"healthy"}
    table = re.search(
        r"const ROLLOUT_CLASSES = new Map\(\[(.*?)\]\);",
        script_of(render.render_page(hub_state())),
        re.DOTALL,
    )
    assert table is not None
    pairs = dict(re.findall(r'\["([\w-]+)", "(\w+)"\]', table.group(1)))
    assert pairs == render._ROLLOUT_CLASSES


def test_fleet_alarm_is_shown() -> None:
    state = hub_state()
    state["fleet"]["nodes"][2]["plugins"]["pi-monitor"]["status"]["alarm"] = "high"

    page = render.render_page(state)

    assert '<span class="badge alarm" data-node-alarm>alarm high</span>' in node_card(
        page, "garage"
    )


@pytest.mark.parametrize("hostile", [HOSTILE_TAG, HOSTILE_ATTR])
def test_hostile_fleet_names_and_values_are_escaped(hostile: str) -> None:
    state = full_state()
    state["fleet"] = {
        "offline_after_seconds": 60,
        "nodes": [
            {
                "node": hostile,
                "online": True,
                "availability": hostile,
                "last_seen_ms": 1_700_000_000_000,
                "last_seen_age_seconds": 0.5,
                "plugins": {
                    hostile: {
                        "timestamp_ms": 1_700_000_000_000,
                        "age_seconds": 0.5,
                        "measurements": [
                            {"name": hostile, "value": hostile, "unit": hostile},
                            {"name": "t", "value": 1.0, "unit": hostile},
                        ],
                        "status": {"alarm": hostile, hostile: hostile},
                        "version": hostile,
                        "content_hash": hostile,
                        "rollout": {
                            "state": hostile,
                            "reason": hostile,
                            "version": hostile,
                            "age_seconds": 1.0,
                        },
                    }
                },
                "labels": [hostile, hostile],
            }
        ],
        "rollouts": [
            {
                "plugin": hostile,
                "content_hash": hostile,
                "version": hostile,
                "nodes": 1,
                "states": {hostile: 1, "healthy": 1},
                "offline": 0,
            }
        ],
    }

    page = render.render_page(state)
    elements = parse(page)

    assert [tag for tag, _ in elements if tag in ("img", "script")] == ["script"]
    assert not [name for _, attrs in elements for name in attrs if name.startswith("on")]
    assert hostile not in page
    assert "Cannot render" not in page
    # Attribute values survive escaping intact: the script matches on them.
    for key in (
        "data-node",
        "data-node-plugin",
        "data-node-measure",
        "data-rollout-plugin",
        "data-rollout-hash",
    ):
        assert hostile in attribute_values(elements, key), key
    titles = attribute_values(elements, "title")
    assert f"{hostile} · version {hostile} · reported 1.0 s ago" in titles
    assert hostile in titles  # the version's tooltip: the content hash
    # An unknown state gets no class of its own.
    assert '<span class="pill off" data-node-rollout' in page


@pytest.mark.parametrize(
    "nodes",
    [
        [{"node": "x", "online": None, "last_seen_ms": "x", "last_seen_age_seconds": "x"}],
        [{"node": "x", "plugins": None}, {"node": "y", "plugins": [1, 2]}],
        [{"node": "x", "plugins": {"p": None, "q": [], "r": {"measurements": None}}}],
        [
            {
                "node": "x",
                "last_seen_age_seconds": float("nan"),
                "plugins": {
                    "p": {
                        "age_seconds": float("inf"),
                        "status": [1],
                        "measurements": [None, {}, {"name": None, "value": None, "unit": None}],
                    }
                },
            }
        ],
        [{"node": "x", "last_seen_age_seconds": -5, "last_seen_ms": None}],
        [
            {
                "node": "x",
                "labels": "greenhouse",
                "plugins": {
                    "p": {"version": 1, "content_hash": [], "rollout": "live"},
                    "q": {"rollout": {"state": 3, "reason": {}, "age_seconds": "1"}},
                    "r": {"rollout": {"state": "live", "age_seconds": -1e308}},
                },
            }
        ],
    ],
)
@pytest.mark.parametrize(
    "rollouts",
    [
        None,
        "all",
        [None, 1, {"plugin": None}, {"plugin": "p", "content_hash": 3}],
        [{"plugin": "p", "content_hash": None, "states": [], "offline": "1"}],
        [{"plugin": "p", "states": {"healthy": 1e308, "live": 1e308}, "offline": 10**400}],
    ],
)
def test_malformed_fleet_does_not_break_the_page(nodes: list[Any], rollouts: object) -> None:
    state = full_state()
    state["fleet"] = {
        "offline_after_seconds": "60",
        "nodes": nodes,
        "rollouts": rollouts,
        "rollouts_omitted": 1e308,
    }

    page = render.render_page(state)

    assert page.rstrip().endswith("</html>")
    assert "Cannot render" not in page
    assert 'data-node="x"' in page


def test_fleet_survives_render_json() -> None:
    page = render.render_json(json.dumps(hub_state()))

    assert "last seen 3 min ago" in page
    assert "Cannot render" not in page


def test_a_failing_node_card_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    real_body = render._node_card_body

    def body(name: str, node: Any, stale_after: Any) -> str:
        if name == "attic":
            raise ValueError(HOSTILE_TAG)
        return real_body(name, node, stale_after)

    monkeypatch.setattr(render, "_node_card_body", body)

    page = render.render_page(hub_state())

    assert "Cannot render node &#x27;attic&#x27;: ValueError" in page
    assert HOSTILE_TAG not in page
    # Still tagged, or the script would take the node for a new one and reload.
    assert attribute_values(parse(page), "data-node") == ["attic", "cellar", "garage"]


def test_a_hung_plugin_is_shown_as_a_fault() -> None:
    state = full_state()
    state["plugins"]["dashboard"]["state"] = "hung"
    page = render.render_page(state)
    assert '<td class="bad" data-col="state" data-label="State">hung</td>' in page


def test_a_running_plugin_that_never_worked_is_failing_not_green() -> None:
    """The host's health (Host.statuses: the rule /healthz uses) decides the state
    cell and the card's badge: a running plugin that is failing is never a green
    "running", and the reason is the cell's title."""
    state = full_state()
    state["readings"]["dht22"].update(timestamp_ms=None, measurements=[], error="no device")
    state["plugins"]["dht22"].update(
        health="failing", health_reason="has not produced a reading: no device"
    )
    page = render.render_page(state)
    assert (
        '<td class="bad" data-col="state" data-label="State" '
        'title="has not produced a reading: no device">failing</td>'
    ) in page
    assert '<span class="badge bad" data-health-badge>failing</span>' in page
    assert 'class="card unhealthy" data-plugin="dht22"' in page
    assert "DHT22: failing" in page  # in the summary
    # An ok plugin's badge is there for the script, hidden.
    assert '<span class="badge bad" data-health-badge hidden>' in page


@pytest.mark.parametrize(
    ("key", "label"),
    [
        ("dht22", "DHT22"),
        ("bme680", "BME680"),
        ("pi-monitor", "Pi monitor"),
        ("gas_resistance", "Gas resistance"),
        ("cpu_temperature", "CPU temperature"),
        ("iaq", "IAQ"),
        ("", ""),
    ],
)
def test_keys_and_slugs_read_as_names(key: str, label: str) -> None:
    assert render._label(key) == label


def test_a_plugin_is_titled_by_its_described_name() -> None:
    assert render._plugin_title("sht31", {"info": {"name": "SHT31 sensor"}}) == "SHT31 sensor"
    assert render._plugin_title("sht31", {"info": {"name": " "}}) == "SHT31"


@pytest.mark.parametrize(
    ("value", "unit", "kind", "shown"),
    [
        (42.0, "s", "duration", ("42 s", "")),
        (192.0, "s", "duration", ("3 min 12 s", "")),
        (11_520.0, "s", "duration", ("3 h 12 min", "")),
        (93_600.0, "s", "duration", ("1 d 2 h", "")),
        (86_400.0, "s", "duration", ("1 d", "")),
        (950.0, "Ω", "ohm", ("950.0", "Ω")),
        (108_134.0, "Ω", "ohm", ("108.1", "kΩ")),
        (2_500_000.0, "Ω", "ohm", ("2.5", "MΩ")),
        (3 * 1024.0**2, "B", "bytes", ("3.0", "MB")),
        (21.34, "°C", "", ("21.3", "°C")),
    ],
)
def test_values_are_shown_in_a_unit_that_suits_them(
    value: float, unit: str, kind: str, shown: tuple[str, str]
) -> None:
    assert render._unit_kind(unit, None) == kind
    assert render._display(value, unit, kind, 1) == shown
