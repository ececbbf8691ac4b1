"""Tests for dashboard: the page natively and from the built component, byte for byte.

The renderer itself is tested in depth, natively, in tests/web/test_dashboard_render.py
and in a real browser in tests/web/test_dashboard_browser.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from wasihost.testing import Mode, plugin_under_test

HERE = Path(__file__).resolve().parent

STATE = {
    "node": "raspberrypi",
    "timestamp_ms": 1_700_000_000_000,
    "interval_seconds": 2,
    "leds": [[0, 0, 0], [0, 255, 0], [255, 128, 0]],
    "readings": {
        "bme680": {
            "world": "bme680-plugin",
            "timestamp_ms": 1_700_000_000_000,
            "measurements": [{"name": "iaq", "value": 50.5, "unit": "IAQ"}],
            "status": {"alarm": "none", "iaq_accuracy": 2},
            "leds": [2],
        }
    },
}


def _page(mode: Mode, state_json: str) -> str:
    plugin = plugin_under_test(HERE, mode)
    try:
        page = plugin.render(state_json)
    finally:
        plugin.close()
    assert isinstance(page, str)
    return page


def test_the_component_serves_the_page_a_native_run_renders(mode: Mode) -> None:
    """The script and style sheet are files the build embeds; natively they are
    read from assets/: both must put the same bytes on the page."""
    page = _page(mode, json.dumps(STATE))
    native = _page("native", json.dumps(STATE))
    style = (HERE / "assets" / "style.css").read_text(encoding="utf-8")
    assert page == native
    assert f"<style>\n{style}</style>" in page
    assert '<span class="iaq-moderate" data-iaq-band>moderate</span>' in page


def test_unrenderable_state_gets_an_error_page(mode: Mode) -> None:
    page = _page(mode, "[" * 100_000)
    assert "Cannot render the dashboard: the app state is nested 100000 levels deep" in page
