"""Host-side sensor filters: ESPHome's ``filters:`` for plugin measurements.

Calibration, smoothing and rate limiting belong to an installation, not to a
plugin: the same DHT22 plugin reads 0.5 °C high on one board and right on the
next, and one user wants a value every 2 s where another wants a minute's
average. So they are configured per measurement in ``host.toml``
(``[[plugins.<name>.filters.<measurement>]]``, docs/CONFIG.md) and applied by
the host, and a plugin stays tiny.

Semantics and defaults are ESPHome's (``esphome/components/sensor/filter.cpp``)
wherever ESPHome has the filter; the differences are listed in docs/CONFIG.md.
A chain is an ordered list of filters; a value goes through them in order and
any filter may drop it. Timer filters (``heartbeat``, ``timeout``,
``throttle_average``) also emit on their own; here they are evaluated once per
poll cycle (``FilterChain.step``), so their periods have the poll interval's
resolution. NaN travels through a chain as in ESPHome and means "unavailable"
at its end.

Pure logic, no I/O and no clock of its own: every call is handed ``now`` (the
host's monotonic seconds), so tests drive periods with a fake clock. The state
lives in a ``FilterBank`` the poll cycle owns, keyed by plugin and measurement
name, so a plugin's hot reload (a new instance, even a new version) keeps its
filters' windows.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from wasihost.model import Measurement, Reading, StatusValue

NAN = math.nan
# What a measurement's ``<name>_status`` says while its chain's last output was NaN.
UNAVAILABLE = "unavailable"


# -- the filters: what each does to one value ---------------------------------


class Filter:
    """One filter's state. ``new_value`` takes a value and returns what goes on
    down the chain, or None to drop it; ``tick`` is called once per cycle,
    after that cycle's value, and returns what a timer emits now, or None.

    The base passes every value on and has no timer.
    """

    def new_value(self, value: float, now: float) -> float | None:
        return value

    def tick(self, now: float) -> float | None:
        return None


class _Map(Filter):
    """A stateless function of the value (offset, multiply, calibrate_linear...)."""

    def __init__(self, function: Callable[[float], float | None]) -> None:
        self.function = function

    def new_value(self, value: float, now: float) -> float | None:
        return self.function(value)


class _Windowed(Filter):
    """ESPHome's window filters: keep the last ``window_size`` values, and send
    a result every ``send_every`` values, the first after ``send_first_at``.
    NaN values are kept in the window but left out of the result; a window of
    only NaN gives NaN."""

    def __init__(
        self,
        window_size: int,
        send_every: int,
        send_first_at: int,
        combine: Callable[[list[float]], float],
    ) -> None:
        self.window: deque[float] = deque(maxlen=window_size)
        self.send_every = send_every
        self.send_at = send_every - send_first_at
        self.combine = combine

    def new_value(self, value: float, now: float) -> float | None:
        self.window.append(value)
        self.send_at += 1
        if self.send_at < self.send_every:
            return None
        self.send_at = 0
        finite = [v for v in self.window if not math.isnan(v)]
        return self.combine(finite) if finite else NAN


class _ExponentialMovingAverage(Filter):
    def __init__(self, alpha: float, send_every: int, send_first_at: int) -> None:
        self.alpha = alpha
        self.send_every = send_every
        self.send_at = send_every - send_first_at
        self.accumulator: float | None = None

    def new_value(self, value: float, now: float) -> float | None:
        if not math.isnan(value):
            if self.accumulator is None:
                self.accumulator = value
            else:
                self.accumulator = self.alpha * value + (1 - self.alpha) * self.accumulator
        average = value if math.isnan(value) or self.accumulator is None else self.accumulator
        self.send_at += 1
        if self.send_at < self.send_every:
            return None
        self.send_at = 0
        return average


class _Throttle(Filter):
    """Pass a value when ``period`` has gone by since the last one passed."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.last: float | None = None

    def new_value(self, value: float, now: float) -> float | None:
        if self.last is None or now - self.last >= self.period:
            self.last = now
            return value
        return None


class _Interval:
    """A fixed cadence from the first time a filter is called (the host's first
    cycle: ESPHome's intervals run from boot)."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.due: float | None = None

    def start(self, now: float) -> None:
        if self.due is None:
            self.due = now + self.period

    def fired(self, now: float) -> bool:
        """True once per period; a long gap (a stalled host) fires once, not a burst."""
        self.start(now)
        assert self.due is not None
        if now < self.due:
            return False
        while self.due <= now:
            self.due += self.period
        return True


class _ThrottleAverage(Filter):
    """Average the values of each period and send it at the period's end;
    nothing when the period had no value, NaN when it had only NaN."""

    def __init__(self, period: float) -> None:
        self.interval = _Interval(period)
        self.total = 0.0
        self.count = 0
        self.had_nan = False

    def new_value(self, value: float, now: float) -> float | None:
        self.interval.start(now)
        if math.isnan(value):
            self.had_nan = True
        else:
            self.total += value
            self.count += 1
        return None

    def tick(self, now: float) -> float | None:
        if not self.interval.fired(now):
            return None
        out: float | None = None
        if self.count:
            out = self.total / self.count
        elif self.had_nan:
            out = NAN
        self.total, self.count, self.had_nan = 0.0, 0, False
        return out


class _Heartbeat(Filter):
    """Re-send the last value every period; ``optimistic`` also passes each new
    value at once (without it, values go out only on the heartbeat)."""

    def __init__(self, period: float, optimistic: bool) -> None:
        self.interval = _Interval(period)
        self.optimistic = optimistic
        self.last: float | None = None

    def new_value(self, value: float, now: float) -> float | None:
        self.interval.start(now)
        self.last = value
        return value if self.optimistic else None

    def tick(self, now: float) -> float | None:
        fired = self.interval.fired(now)
        return self.last if fired else None


class _Timeout(Filter):
    """Pass every value; ``period`` after the last one, send ``value`` once (NaN:
    unavailable; None: the last value again)."""

    def __init__(self, period: float, value: float | None) -> None:
        self.period = period
        self.value = value
        self.deadline: float | None = None
        self.last = NAN

    def new_value(self, value: float, now: float) -> float | None:
        self.deadline = now + self.period
        self.last = value
        return value

    def tick(self, now: float) -> float | None:
        if self.deadline is None or now < self.deadline:
            return None
        self.deadline = None
        return self.last if self.value is None else self.value


class _Delta(Filter):
    """Pass a value that differs from the last one passed by more than
    ``min_value`` and at most ``max_value`` (absolute, or a fraction of the last
    value). The first value passes; NaN passes once (unavailable is worth
    saying) and the next number after it passes like a first value."""

    def __init__(self, low: Bound, high: Bound) -> None:
        self.low = low
        self.high = high
        self.last: float | None = None

    def new_value(self, value: float, now: float) -> float | None:
        last = self.last
        if math.isnan(value):
            if last is None or math.isnan(last):
                return None
            self.last = value
            return value
        if last is None or math.isnan(last):
            self.last = value
            return value
        change = abs(value - last)
        if self.low.of(last) < change <= self.high.of(last):
            self.last = value
            return value
        return None


# -- the specs: a validated filter entry of host.toml ---------------------------


class FilterSpec:
    """A validated filter entry; ``build`` makes a fresh filter with its state.
    ``name`` is its ESPHome (and host.toml) name."""

    name: str = ""

    def build(self) -> Filter:
        raise NotImplementedError


@dataclass(frozen=True)
class Offset(FilterSpec):
    value: float
    name: str = field(default="offset", init=False)

    def build(self) -> Filter:
        offset = self.value
        return _Map(lambda v: v + offset)


@dataclass(frozen=True)
class Multiply(FilterSpec):
    value: float
    name: str = field(default="multiply", init=False)

    def build(self) -> Filter:
        factor = self.value
        return _Map(lambda v: v * factor)


# ESPHome compares at the sensor's accuracy_decimals, which the host does not
# have; the values it sees are f32s, so "equal" is equal to 7 significant digits.
FILTER_OUT_REL_TOL = 1e-6


@dataclass(frozen=True)
class FilterOut(FilterSpec):
    values: tuple[float, ...]
    name: str = field(default="filter_out", init=False)

    def matches(self, value: float) -> bool:
        for target in self.values:
            if math.isnan(target) or math.isnan(value):
                if math.isnan(target) and math.isnan(value):
                    return True
            elif math.isclose(value, target, rel_tol=FILTER_OUT_REL_TOL, abs_tol=1e-12):
                return True
        return False

    def build(self) -> Filter:
        return _Map(lambda v: None if self.matches(v) else v)


@dataclass(frozen=True)
class Clamp(FilterSpec):
    """NaN bounds are unset (ESPHome's defaults); values that are not finite pass."""

    min_value: float = NAN
    max_value: float = NAN
    ignore_out_of_range: bool = False
    name: str = field(default="clamp", init=False)

    def apply(self, value: float) -> float | None:
        if not math.isfinite(value):
            return value
        if math.isfinite(self.min_value) and value < self.min_value:
            return None if self.ignore_out_of_range else self.min_value
        if math.isfinite(self.max_value) and value > self.max_value:
            return None if self.ignore_out_of_range else self.max_value
        return value

    def build(self) -> Filter:
        return _Map(self.apply)


@dataclass(frozen=True)
class Round(FilterSpec):
    accuracy_decimals: int
    name: str = field(default="round", init=False)

    def apply(self, value: float) -> float:
        """Half away from zero, as C's roundf (Python's round() rounds half to even)."""
        if not math.isfinite(value):
            return value
        scale = 10.0**self.accuracy_decimals
        return math.copysign(math.floor(abs(value) * scale + 0.5), value) / scale

    def build(self) -> Filter:
        return _Map(self.apply)


@dataclass(frozen=True)
class Segment:
    """``slope * x + bias`` for x below ``upper`` (NaN: no upper end)."""

    slope: float
    bias: float
    upper: float


@dataclass(frozen=True)
class CalibrateLinear(FilterSpec):
    datapoints: tuple[tuple[float, float], ...]
    method: Literal["least_squares", "exact"] = "least_squares"
    name: str = field(default="calibrate_linear", init=False)

    @property
    def segments(self) -> tuple[Segment, ...]:
        """ESPHome's: one least-squares line, or the line through each pair of
        neighbouring points, the first and last extended beyond the ends."""
        xs = [x for x, _ in self.datapoints]
        ys = [y for _, y in self.datapoints]
        if self.method == "least_squares":
            mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
            s_xy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
            s_xx = sum((x - mean_x) ** 2 for x in xs)
            slope = s_xy / s_xx
            return (Segment(slope, mean_y - slope * mean_x, NAN),)
        segments: list[Segment] = []
        for i in range(len(xs) - 1):
            slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
            bias = ys[i] - slope * xs[i]
            upper = xs[i + 1] if i < len(xs) - 2 else NAN
            segments.append(Segment(slope, bias, upper))
        return tuple(segments)

    def build(self) -> Filter:
        segments = self.segments

        def calibrate(value: float) -> float:
            for s in segments:
                if math.isnan(s.upper) or value < s.upper:
                    return s.slope * value + s.bias
            return NAN  # only NaN gets here: no segment takes it

        return _Map(calibrate)


@dataclass(frozen=True)
class Median(FilterSpec):
    window_size: int = 5
    send_every: int = 5
    send_first_at: int = 1
    name: str = field(default="median", init=False)

    def build(self) -> Filter:
        return _Windowed(self.window_size, self.send_every, self.send_first_at, statistics.median)


@dataclass(frozen=True)
class SlidingWindowMovingAverage(FilterSpec):
    window_size: int = 15
    send_every: int = 15
    send_first_at: int = 1
    name: str = field(default="sliding_window_moving_average", init=False)

    def build(self) -> Filter:
        return _Windowed(self.window_size, self.send_every, self.send_first_at, statistics.fmean)


@dataclass(frozen=True)
class ExponentialMovingAverage(FilterSpec):
    alpha: float = 0.1
    send_every: int = 15
    send_first_at: int = 1
    name: str = field(default="exponential_moving_average", init=False)

    def build(self) -> Filter:
        return _ExponentialMovingAverage(self.alpha, self.send_every, self.send_first_at)


@dataclass(frozen=True)
class Throttle(FilterSpec):
    period: float
    name: str = field(default="throttle", init=False)

    def build(self) -> Filter:
        return _Throttle(self.period)


@dataclass(frozen=True)
class ThrottleAverage(FilterSpec):
    period: float
    name: str = field(default="throttle_average", init=False)

    def build(self) -> Filter:
        return _ThrottleAverage(self.period)


@dataclass(frozen=True)
class Bound:
    """A delta bound: ``value`` itself, or ``value`` times the last value (a percentage)."""

    value: float
    relative: bool = False

    def of(self, last: float) -> float:
        return self.value * abs(last) if self.relative else self.value


@dataclass(frozen=True)
class Delta(FilterSpec):
    min_value: Bound = Bound(0.0)
    max_value: Bound = Bound(math.inf)
    name: str = field(default="delta", init=False)

    def build(self) -> Filter:
        return _Delta(self.min_value, self.max_value)


@dataclass(frozen=True)
class Heartbeat(FilterSpec):
    period: float
    optimistic: bool = False
    name: str = field(default="heartbeat", init=False)

    def build(self) -> Filter:
        return _Heartbeat(self.period, self.optimistic)


@dataclass(frozen=True)
class Timeout(FilterSpec):
    period: float
    value: float | None = NAN  # None: the last value received ("last")
    name: str = field(default="timeout", init=False)

    def build(self) -> Filter:
        return _Timeout(self.period, self.value)


# -- parsing a host.toml filter list ------------------------------------------------


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


# -- chains and the bank -----------------------------------------------------------


class FilterChain:
    """One measurement's filters, in order, with their state."""

    def __init__(self, specs: Sequence[FilterSpec]) -> None:
        self.filters = [spec.build() for spec in specs]

    def step(self, value: float | None, now: float) -> float | None:
        """One cycle: first ``value`` (None: the measurement had no value this
        cycle), then every filter's timer, in order (what one emits goes on
        through the filters after it). Returns the chain's last output of the
        cycle, or None when nothing came out; NaN means unavailable.

        The value goes first so that a timer due in the same cycle sees it: a
        heartbeat sends the newest value, and a timeout reset by it stays quiet
        rather than send unavailable just before the value.
        """
        out: float | None = None
        if value is not None:
            out = self._feed(0, value, now)
        for i, filter_ in enumerate(self.filters):
            fired = filter_.tick(now)
            if fired is not None:
                passed = self._feed(i + 1, fired, now)
                out = passed if passed is not None else out
        return out

    def _feed(self, start: int, value: float, now: float) -> float | None:
        current: float | None = value
        for filter_ in self.filters[start:]:
            assert current is not None
            current = filter_.new_value(current, now)
            if current is None:
                return None
        return current


@dataclass
class _Tracked:
    """A chain and what the host last knew of its measurement."""

    chain: FilterChain
    template: Measurement | None = None  # the last input: its unit and device class
    shown: Measurement | None = None  # the last value the chain let out
    unavailable: bool = False  # its last output was NaN
    checked: bool = False  # told whether the plugin reports it


@dataclass(frozen=True)
class Filtered:
    """A plugin's cycle after its filters.

    ``passed``: the reading for history and MQTT (only what the filters let out
    this cycle, with what they held back in its ``held``); ``shown``: the
    reading for the app state and the dashboard, in which a value the filters
    held back keeps its last one and an unavailable one is absent; both None
    when nothing changed. ``unreported``: measurement names with filters that
    the plugin's first reading lacked (to warn about once).
    """

    passed: Reading | None
    shown: Reading | None
    unreported: tuple[str, ...] = ()


class FilterBank:
    """Every configured chain, keyed by plugin and measurement name.

    It belongs to the poll cycle, not to a plugin instance: a reload or a
    recycled instance keeps the windows, averages and timers.
    """

    def __init__(self, specs: Mapping[str, Mapping[str, Sequence[FilterSpec]]]) -> None:
        self.plugins: dict[str, dict[str, _Tracked]] = {
            plugin: {name: _Tracked(FilterChain(chain)) for name, chain in chains.items() if chain}
            for plugin, chains in specs.items()
        }
        self.plugins = {plugin: chains for plugin, chains in self.plugins.items() if chains}
        self._shown: dict[str, Reading] = {}

    def has(self, plugin: str) -> bool:
        return plugin in self.plugins

    def apply(
        self, plugin: str, world: str, reading: Reading | None, now: float, now_ms: int
    ) -> Filtered:
        """Run ``plugin``'s chains for one cycle: ``reading`` is its poll's (None
        when it was not polled or the poll failed, for the timers alone); ``now``
        is monotonic seconds, ``now_ms`` the wall clock stamp of timer outputs."""
        chains = self.plugins.get(plugin)
        if chains is None:
            return Filtered(reading, reading)
        stamp = reading.timestamp_ms if reading is not None else now_ms
        outputs: dict[str, float | None] = {}
        unreported: list[str] = []
        present = {m.name: m for m in reading.measurements} if reading is not None else {}
        for name, tracked in chains.items():
            measurement = present.get(name)
            if measurement is not None:
                tracked.template = measurement
            elif reading is not None and not tracked.checked and tracked.template is None:
                unreported.append(name)
            if reading is not None:
                tracked.checked = True
            outputs[name] = tracked.chain.step(
                measurement.value if measurement is not None else None, now
            )
        passed: list[Measurement] = []
        for m in reading.measurements if reading is not None else ():
            if m.name not in chains:
                passed.append(m)
        changed = False
        held: list[Measurement] = []
        for name, out in outputs.items():
            tracked = chains[name]
            if out is None:
                if reading is not None and tracked.shown is not None:
                    held.append(tracked.shown)
                continue
            changed = True
            if not math.isfinite(out):
                tracked.unavailable, tracked.shown = True, None
                continue
            assert tracked.template is not None  # nothing comes out before a value went in
            emitted = replace(tracked.template, value=out, timestamp_ms=stamp)
            tracked.unavailable, tracked.shown = False, emitted
            passed.append(emitted)
        if reading is None and not changed:
            return Filtered(None, None)
        status = self._status(chains, reading)
        order = self._order(plugin, reading, chains)
        passed.sort(key=lambda m: order.get(m.name, len(order)))
        base = reading if reading is not None else self._shown.get(plugin)
        out_reading = Reading(plugin, world, stamp, tuple(passed), status, tuple(held))
        shown_measurements = [
            m for m in (base.measurements if base is not None else ()) if m.name not in chains
        ] + [t.shown for t in chains.values() if t.shown is not None]
        shown_measurements.sort(key=lambda m: order.get(m.name, len(order)))
        shown = Reading(
            plugin,
            world,
            base.timestamp_ms if base is not None else stamp,
            tuple(shown_measurements),
            {**self._status(chains, base), **status},
        )
        self._shown[plugin] = shown
        return Filtered(out_reading, shown, tuple(unreported))

    def _status(
        self, chains: Mapping[str, _Tracked], reading: Reading | None
    ) -> dict[str, StatusValue]:
        """The reading's status with ``<name>_status = "unavailable"`` for each
        measurement whose chain last let out NaN, and without that mark (from a
        reading shown before) for the others."""
        status = dict(reading.status) if reading is not None else {}
        for name, tracked in chains.items():
            key = f"{name}_status"
            if tracked.unavailable:
                status[key] = UNAVAILABLE
            elif status.get(key) == UNAVAILABLE:
                del status[key]
        return status

    def _order(
        self, plugin: str, reading: Reading | None, chains: Mapping[str, _Tracked]
    ) -> dict[str, int]:
        """Measurements keep the order the plugin reports them in (the dashboard's)."""
        source = reading if reading is not None else self._shown.get(plugin)
        names = [m.name for m in source.measurements] if source is not None else []
        names += [n for n in chains if n not in names]
        return {name: i for i, name in enumerate(names)}
