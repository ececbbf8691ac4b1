"""Parsing a host.toml filter list into specs, with errors that name the key.

ESPHome's YAML shapes map onto TOML tables one to one (docs/CONFIG.md), so a
user can copy a filter from an ESPHome config; every check says where
(``median.window_size``) and what was written there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from wasihost.filters.running import NAN, Bound
from wasihost.filters.specs import (
    CalibrateLinear,
    Clamp,
    Delta,
    ExponentialMovingAverage,
    FilterOut,
    FilterSpec,
    Heartbeat,
    Median,
    Multiply,
    Offset,
    Round,
    SlidingWindowMovingAverage,
    Throttle,
    ThrottleAverage,
    Timeout,
)


class FilterConfigError(ValueError):
    """A filter entry that is not valid. ``where`` is the key inside the entry
    (``median.window_size``), ``got`` the value written there."""

    def __init__(self, where: str, message: str, got: object = None) -> None:
        super().__init__(message)
        self.where = where
        self.message = message
        self.got = got


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(where: str, value: object, finite: bool = True) -> float:
    if not _is_number(value):
        raise FilterConfigError(where, "expected a number", value)
    number = float(value)  # type: ignore[arg-type]  # checked by _is_number
    if finite and not math.isfinite(number):
        raise FilterConfigError(where, "expected a finite number", value)
    return number


def _count(where: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise FilterConfigError(where, "expected a whole number", value)
    if value < 1:
        raise FilterConfigError(where, "must be at least 1", value)
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|min|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(where: str, value: object) -> float:
    """Seconds, as the rest of host.toml writes durations, or ESPHome's "30s",
    "5min", "500ms", "1h" (a bare number in a string is seconds too)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise FilterConfigError(
                where, 'expected seconds, or a duration like "30s", "5min" or "500ms"', value
            )
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    elif _is_number(value):
        seconds = float(value)  # type: ignore[arg-type]  # checked by _is_number
    else:
        raise FilterConfigError(
            where, 'expected seconds, or a duration like "30s", "5min" or "500ms"', value
        )
    if not math.isfinite(seconds) or seconds <= 0:
        raise FilterConfigError(where, "must be a duration longer than 0", value)
    return seconds


def _table(
    name: str, value: object, keys: Iterable[str], simple: str | None = None
) -> dict[str, Any]:
    """``value`` as a table of ``keys``; a non-table is the ``simple`` key's value
    (ESPHome's short form, ``timeout = "30s"``), where the filter has one."""
    if not isinstance(value, dict):
        if simple is None:
            raise FilterConfigError(name, "expected a table of parameters", value)
        return {simple: value}
    known = list(keys)
    for key in value:
        if key not in known:
            raise FilterConfigError(
                f"{name}.{key}", f"unknown parameter (expected: {', '.join(known)})", value[key]
            )
    return value


def _windowed(name: str, value: object, defaults: tuple[int, int, int]) -> tuple[int, int, int]:
    params = _table(name, value, ("window_size", "send_every", "send_first_at"))
    window_size, send_every, send_first_at = (
        _count(f"{name}.{key}", params.get(key, default))
        for key, default in zip(
            ("window_size", "send_every", "send_first_at"), defaults, strict=True
        )
    )
    _send_first_at_fits(name, send_every, send_first_at)
    return window_size, send_every, send_first_at


def _send_first_at_fits(name: str, send_every: int, send_first_at: int) -> None:
    if send_first_at > send_every:
        raise FilterConfigError(
            f"{name}.send_first_at",
            f"must be at most send_every ({send_every})",
            send_first_at,
        )


def _median(value: object) -> FilterSpec:
    return Median(*_windowed("median", value, (5, 5, 1)))


def _sliding(value: object) -> FilterSpec:
    return SlidingWindowMovingAverage(
        *_windowed("sliding_window_moving_average", value, (15, 15, 1))
    )


def _ema(value: object) -> FilterSpec:
    name = "exponential_moving_average"
    params = _table(name, value, ("alpha", "send_every", "send_first_at"))
    alpha = _number(f"{name}.alpha", params.get("alpha", 0.1))
    if not 0 < alpha <= 1:
        raise FilterConfigError(f"{name}.alpha", "must be above 0 and at most 1", alpha)
    send_every = _count(f"{name}.send_every", params.get("send_every", 15))
    send_first_at = _count(f"{name}.send_first_at", params.get("send_first_at", 1))
    _send_first_at_fits(name, send_every, send_first_at)
    return ExponentialMovingAverage(alpha, send_every, send_first_at)


def _filter_out(value: object) -> FilterSpec:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise FilterConfigError("filter_out", "expected a number (nan allowed) or a list of them")
    where = "filter_out" if not isinstance(value, list) else "filter_out[{}]"
    return FilterOut(tuple(_number(where.format(i), v, finite=False) for i, v in enumerate(values)))


def _datapoint(where: str, point: object) -> tuple[float, float]:
    if isinstance(point, dict):
        params = _table(where, point, ("from", "to"))
        if "from" not in params or "to" not in params:
            raise FilterConfigError(where, "a datapoint needs both 'from' and 'to'", point)
        return _number(f"{where}.from", params["from"]), _number(f"{where}.to", params["to"])
    if isinstance(point, str) and "->" in point:
        raw_from, raw_to = (part.strip() for part in point.split("->", 1))
        try:
            pair = float(raw_from), float(raw_to)
        except ValueError:
            pair = (NAN, NAN)
        if all(math.isfinite(v) for v in pair):
            return pair
    raise FilterConfigError(
        where, 'expected a datapoint like "20.5 -> 21.0" or { from = 20.5, to = 21.0 }', point
    )


def _calibrate_linear(value: object) -> FilterSpec:
    name = "calibrate_linear"
    params = _table(name, value, ("datapoints", "method"), simple="datapoints")
    points = params.get("datapoints")
    if not isinstance(points, list):
        raise FilterConfigError(f"{name}.datapoints", "expected a list of datapoints", points)
    if len(points) < 2:
        raise FilterConfigError(f"{name}.datapoints", "needs at least 2 datapoints", points)
    pairs = tuple(_datapoint(f"{name}.datapoints[{i}]", p) for i, p in enumerate(points))
    method = params.get("method", "least_squares")
    if method not in ("least_squares", "exact"):
        raise FilterConfigError(
            f"{name}.method", 'expected "least_squares" (the default) or "exact"', method
        )
    xs = [x for x, _ in pairs]
    if method == "exact":
        for i in range(len(xs) - 1):
            if xs[i] >= xs[i + 1]:
                raise FilterConfigError(
                    f"{name}.datapoints[{i + 1}]",
                    "with method = \"exact\" the 'from' values must increase "
                    f"({xs[i + 1]:g} follows {xs[i]:g})",
                    points[i + 1],
                )
    elif all(x == xs[0] for x in xs):
        raise FilterConfigError(
            f"{name}.datapoints",
            "the 'from' values are all the same: no line fits them",
            points,
        )
    return CalibrateLinear(pairs, method)


def _clamp(value: object) -> FilterSpec:
    params = _table("clamp", value, ("min_value", "max_value", "ignore_out_of_range"))
    low = _number("clamp.min_value", params["min_value"]) if "min_value" in params else NAN
    high = _number("clamp.max_value", params["max_value"]) if "max_value" in params else NAN
    if math.isnan(low) and math.isnan(high):
        raise FilterConfigError("clamp", "needs min_value, max_value or both", value)
    if low > high:
        raise FilterConfigError(
            "clamp.min_value", f"must not be above max_value ({high:g})", params["min_value"]
        )
    ignore = params.get("ignore_out_of_range", False)
    if not isinstance(ignore, bool):
        raise FilterConfigError("clamp.ignore_out_of_range", "expected true or false", ignore)
    return Clamp(low, high, ignore)


def _round(value: object) -> FilterSpec:
    params = _table("round", value, ("accuracy_decimals",), simple="accuracy_decimals")
    decimals = params.get("accuracy_decimals")
    if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 15:
        raise FilterConfigError(
            "round.accuracy_decimals", "expected a whole number of decimals, 0 to 15", decimals
        )
    return Round(decimals)


def _bound(where: str, value: object) -> Bound:
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            percent = NAN
        if math.isfinite(percent) and percent >= 0:
            return Bound(percent / 100, relative=True)
        raise FilterConfigError(where, 'expected a percentage like "5%"', value)
    if not _is_number(value):
        raise FilterConfigError(where, 'expected a number or a percentage like "5%"', value)
    number = float(value)  # type: ignore[arg-type]  # checked by _is_number
    if math.isnan(number) or number < 0:
        raise FilterConfigError(where, "must be 0 or more", value)
    return Bound(number)


def _delta(value: object) -> FilterSpec:
    params = _table("delta", value, ("min_value", "max_value"), simple="min_value")
    if not params:
        raise FilterConfigError("delta", "needs min_value, max_value or both", value)
    low = _bound("delta.min_value", params.get("min_value", 0.0))
    high = _bound("delta.max_value", params.get("max_value", math.inf))
    if low.relative == high.relative and low.value > high.value:
        raise FilterConfigError(
            "delta.min_value", "must not be above max_value", params.get("min_value")
        )
    return Delta(low, high)


def _throttle(value: object) -> FilterSpec:
    return Throttle(_duration("throttle", value))


def _throttle_average(value: object) -> FilterSpec:
    return ThrottleAverage(_duration("throttle_average", value))


def _heartbeat(value: object) -> FilterSpec:
    params = _table("heartbeat", value, ("period", "optimistic"), simple="period")
    if "period" not in params:
        raise FilterConfigError("heartbeat.period", "is required", value)
    optimistic = params.get("optimistic", False)
    if not isinstance(optimistic, bool):
        raise FilterConfigError("heartbeat.optimistic", "expected true or false", optimistic)
    return Heartbeat(_duration("heartbeat.period", params["period"]), optimistic)


def _timeout(value: object) -> FilterSpec:
    params = _table("timeout", value, ("timeout", "value"), simple="timeout")
    if "timeout" not in params:
        raise FilterConfigError("timeout.timeout", "is required", value)
    period = _duration("timeout.timeout", params["timeout"])
    sent = params.get("value", NAN)
    if sent == "last":
        return Timeout(period, None)
    if not _is_number(sent):
        raise FilterConfigError(
            "timeout.value", 'expected a number, nan (unavailable, the default) or "last"', sent
        )
    return Timeout(period, float(sent))


def _simple_number(
    name: str, spec: Callable[[float], FilterSpec]
) -> Callable[[object], FilterSpec]:
    return lambda value: spec(_number(name, value))


# Every filter host.toml knows, by its ESPHome name, with what parses its parameters.
PARSERS: dict[str, Callable[[object], FilterSpec]] = {
    "offset": _simple_number("offset", Offset),
    "multiply": _simple_number("multiply", Multiply),
    "calibrate_linear": _calibrate_linear,
    "clamp": _clamp,
    "round": _round,
    "filter_out": _filter_out,
    "median": _median,
    "sliding_window_moving_average": _sliding,
    "exponential_moving_average": _ema,
    "throttle": _throttle,
    "throttle_average": _throttle_average,
    "delta": _delta,
    "heartbeat": _heartbeat,
    "timeout": _timeout,
}


def parse_filter(entry: object) -> FilterSpec:
    """One entry of a measurement's filter list: a table with one key, the
    filter's name, whose value holds its parameters (``{ median = { window_size
    = 5 } }``, ``{ offset = -0.5 }``). Raises ``FilterConfigError``."""
    if not isinstance(entry, dict) or len(entry) != 1:
        shown = f"{len(entry)} keys: {', '.join(entry)}" if isinstance(entry, dict) else entry
        raise FilterConfigError(
            "",
            "expected one filter per entry, a table with one key: the filter's name "
            f"(one of: {', '.join(PARSERS)})",
            shown,
        )
    ((name, value),) = entry.items()
    parser = PARSERS.get(name)
    if parser is None:
        raise FilterConfigError(name, f"unknown filter (expected one of: {', '.join(PARSERS)})")
    return parser(value)
