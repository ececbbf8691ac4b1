"""A plugin's settings: the JSON object the host passes to ``configure``.

``parse`` refuses what is not a JSON object and any key the plugin does not
know (a typo in host.toml, ``alarm_on_iqa``, is reported rather than
silently ignored); the readers below then check one key each, falling back
to the plugin's default when it is absent. Every refusal is a
``SettingsError`` naming the setting, for the plugin's ``configure`` to
raise as its ``Err``::

    @dataclass(frozen=True)
    class Config:
        led: int = 1
        ...

    def parse_settings(settings_json: str) -> Config:
        given = settings.parse(settings_json, Config)  # its fields are the known keys
        return Config(led=settings.led(given, Config.led), ...)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from typing import Any, overload

from wasihost_guest import jsonguard

# Settings come from a host.toml table: a level or two deep, never more than this.
MAX_DEPTH = 16
# LED indices are u32 in the contract (the host then refuses an LED not granted).
LED_MAX = 0xFFFF_FFFF

Given = Mapping[str, Any]


class SettingsError(ValueError):
    """Settings refused; the message names the setting."""


def parse(settings_json: str, known: type[Any] | Collection[str]) -> dict[str, Any]:
    """The settings object, refused unless every key is ``known``: the fields
    of the plugin's settings dataclass, or the names themselves."""
    if isinstance(known, type):
        known = [field.name for field in dataclasses.fields(known)]
    try:
        given = jsonguard.load_object(settings_json, max_depth=MAX_DEPTH)
    except jsonguard.Refused as exc:
        raise SettingsError(f"settings are {exc}") from None
    except ValueError as exc:
        raise SettingsError(f"settings are not valid JSON: {exc}") from None
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(known)})")
    return given


def number(
    given: Given, key: str, default: float, low: float = -math.inf, high: float = math.inf
) -> float:
    """A number in ``low..high`` (bounds included), as a float."""
    value = given.get(key, default)
    checked = jsonguard.number(value)
    if checked is None or not low <= checked <= high:
        bounds = "" if (low, high) == (-math.inf, math.inf) else f" in {low}..{high}"
        raise SettingsError(f"setting {key} must be a number{bounds}, got {value!r}")
    return float(checked)


def integer(given: Given, key: str, default: int, low: int, high: int) -> int:
    """An integer in ``low..high`` (bounds included; ``3.0`` and ``true`` are refused)."""
    value = given.get(key, default)
    checked = jsonguard.integer(value)
    if checked is None or not low <= checked <= high:
        raise SettingsError(f"setting {key} must be an integer in {low}..{high}, got {value!r}")
    return checked


def choice(given: Given, key: str, default: str, options: Collection[str]) -> str:
    """One of the strings ``options``."""
    value = given.get(key, default)
    if not isinstance(value, str) or value not in options:
        raise SettingsError(f"setting {key} must be one of {', '.join(options)}, got {value!r}")
    return value


@overload
def led(given: Given, default: int) -> int: ...
@overload
def led(given: Given, default: None) -> int | None: ...
def led(given: Given, default: int | None) -> int | None:
    """The ``led`` setting, which the host sets from the plugin's ``led =``: an
    LED index, or None (no LED) where the plugin's default is None."""
    value = given.get("led", default)
    if value is None and default is None:
        return None
    checked = jsonguard.integer(value)
    if checked is None or not 0 <= checked <= LED_MAX:
        raise SettingsError(
            f"setting led must be a non-negative integer (an LED index), got {value!r}"
        )
    return checked
