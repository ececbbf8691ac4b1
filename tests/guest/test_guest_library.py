"""The shared guest library (plugins/_shared/wasihost_guest), natively.

Its users' behaviour, natively and as components, is tested beside each
plugin (plugins/*/test_app.py); here are its own rules and edge cases.
"""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wasihost_guest import iaq, jsonguard, settings

LIBRARY = Path(__file__).resolve().parents[2] / "plugins" / "_shared" / "wasihost_guest"
MODULES = sorted(LIBRARY.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_the_library_is_standard_library_only_and_keeps_no_state(path: Path) -> None:
    """Guests of every world share it, so it cannot import one world's bindings,
    and natively one copy serves every plugin, so it keeps nothing in globals."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for alias in n.names}  # fmt: skip
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom)}  # fmt: skip
    assert imported <= set(sys.stdlib_module_names) | {"wasihost_guest"}
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Global | ast.Nonlocal)]


# ---- settings ----------------------------------------------------------------

KNOWN = ("led", "limit", "mode")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "settings are not valid JSON: Expecting property name"),
        ("[]", "settings are a JSON list, expected an object"),
        ("[" * 20 + "]" * 20, "settings are nested 20 levels deep, more than 16"),
        ('{"led": 1, "limt": 2, "aa": 3}', r"unknown setting\(s\) aa, limt \(known: led, limit"),
    ],
)
def test_parse_refuses_what_is_no_settings_object(text: str, message: str) -> None:
    with pytest.raises(settings.SettingsError, match=message):
        settings.parse(text, KNOWN)


def test_the_known_settings_are_the_fields_of_the_plugins_settings_dataclass() -> None:
    @dataclass(frozen=True)
    class Config:
        led: int = 1
        limit: float = 2.0

    assert settings.parse('{"limit": 3}', Config) == {"limit": 3}
    with pytest.raises(settings.SettingsError, match=r"mode \(known: led, limit\)$"):
        settings.parse('{"mode": 3}', Config)


def test_readers_fall_back_to_the_default_and_check_the_value() -> None:
    given = settings.parse('{"limit": 3, "mode": "fast"}', KNOWN)
    assert settings.number(given, "limit", 1.5) == 3.0
    assert isinstance(settings.number(given, "limit", 1.5), float)
    assert settings.number(given, "other", 1.5) == 1.5
    assert settings.integer(given, "limit", 0, 0, 3) == 3
    assert settings.choice(given, "mode", "slow", ("slow", "fast")) == "fast"
    assert settings.led(given, 2) == 2
    assert settings.led(given, None) is None
    assert settings.led({"led": 7}, None) == 7


@pytest.mark.parametrize(
    ("read", "message"),
    [
        (lambda g: settings.number(g, "flag", 1.0), "setting flag must be a number, got True"),
        (lambda g: settings.number(g, "nan", 1.0), "setting nan must be a number, got nan"),
        (lambda g: settings.number(g, "n", 1.0, 0, 2), r"must be a number in 0\.\.2, got 3"),
        (lambda g: settings.integer(g, "f", 1, 0, 9), r"f must be an integer in 0\.\.9, got 3\.0"),
        (lambda g: settings.integer(g, "flag", 1, 0, 9), "flag must be an integer"),
        (lambda g: settings.choice(g, "n", "a", ("a", "b")), "n must be one of a, b, got 3"),
        (lambda g: settings.led({"led": "3"}, 1), "led must be a non-negative integer"),
        (lambda g: settings.led({"led": -1}, None), "led must be a non-negative integer"),
        (lambda g: settings.led({"led": 2**32}, 1), "led must be a non-negative integer"),
        (lambda g: settings.led({"led": None}, 1), "led must be a non-negative integer"),
    ],
)
def test_readers_name_the_setting_they_refuse(read: Any, message: str) -> None:
    given = {"flag": True, "nan": float("nan"), "n": 3, "f": 3.0}
    with pytest.raises(settings.SettingsError, match=message):
        read(given)


# ---- jsonguard ---------------------------------------------------------------


def test_depth_ignores_brackets_inside_strings() -> None:
    assert jsonguard.depth('{"a": [[1]], "b": "[[[[{{{{\\"]]"}') == 3
    assert jsonguard.depth("[]") == 1
    assert jsonguard.depth('"no brackets"') == 0


def test_loads_refuses_deep_and_large_documents_before_parsing() -> None:
    with pytest.raises(jsonguard.Refused, match="nested 100000 levels deep, more than 8"):
        jsonguard.loads("[" * 100_000, max_depth=8)
    with pytest.raises(jsonguard.Refused, match="12 bytes, more than 10"):
        jsonguard.loads(b'"0123456789"', max_depth=8, max_bytes=10)
    with pytest.raises(jsonguard.Refused, match="12 bytes"):  # UTF-8 bytes, not characters
        jsonguard.loads('"ééééé"', max_depth=8, max_bytes=10)
    with pytest.raises(jsonguard.Refused, match="a JSON list, expected an object"):
        jsonguard.load_object(b"[1]", max_depth=8)
    with pytest.raises(UnicodeDecodeError):
        jsonguard.loads(b"\xff", max_depth=8)
    with pytest.raises(json.JSONDecodeError):
        jsonguard.loads("{", max_depth=8)
    assert jsonguard.load_object(b'{"a": [1, {"b": null}]}', max_depth=3) == {"a": [1, {"b": None}]}


@pytest.mark.parametrize(
    ("value", "number", "integer"),
    [(3, 3, 3), (2.5, 2.5, None), (3.0, 3.0, None), (True, None, None), (None, None, None),
     ("3", None, None), (float("inf"), None, None), (float("nan"), None, None)],
)  # fmt: skip
def test_json_values_are_numbers_only_when_usable(
    value: object, number: float | None, integer: int | None
) -> None:
    assert jsonguard.number(value) == number
    assert jsonguard.integer(value) == integer
    assert type(jsonguard.number(3)) is int  # kept as it is: 2 still prints as 2


# ---- iaq ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "band"),
    [(0, "good"), (50.4, "good"), (50.5, "moderate"), (100, "moderate"),
     (150.49, "unhealthy for sensitive groups"), (200.5, "very unhealthy"),
     (300.4, "very unhealthy"), (300.5, "hazardous"), (500, "hazardous")],
)  # fmt: skip
def test_iaq_bands_round_half_up_like_the_page(value: float, band: str) -> None:
    assert iaq.band(value) == band
