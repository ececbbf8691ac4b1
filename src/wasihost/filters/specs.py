"""The specs: a validated filter entry of host.toml, one dataclass per ESPHome filter.

Frozen values, so a config can be compared and reloaded; ``build`` makes the
running filter with fresh state, so two measurements never share a window.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Literal

from wasihost.filters.running import (
    NAN,
    Bound,
    DeltaFilter,
    EmaFilter,
    Filter,
    HeartbeatFilter,
    MapFilter,
    ThrottleAverageFilter,
    ThrottleFilter,
    TimeoutFilter,
    WindowedFilter,
)


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
        return MapFilter(lambda v: v + offset)


@dataclass(frozen=True)
class Multiply(FilterSpec):
    value: float
    name: str = field(default="multiply", init=False)

    def build(self) -> Filter:
        factor = self.value
        return MapFilter(lambda v: v * factor)


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
        return MapFilter(lambda v: None if self.matches(v) else v)


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
        return MapFilter(self.apply)


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
        return MapFilter(self.apply)


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

        return MapFilter(calibrate)


@dataclass(frozen=True)
class Median(FilterSpec):
    window_size: int = 5
    send_every: int = 5
    send_first_at: int = 1
    name: str = field(default="median", init=False)

    def build(self) -> Filter:
        return WindowedFilter(
            self.window_size, self.send_every, self.send_first_at, statistics.median
        )


@dataclass(frozen=True)
class SlidingWindowMovingAverage(FilterSpec):
    window_size: int = 15
    send_every: int = 15
    send_first_at: int = 1
    name: str = field(default="sliding_window_moving_average", init=False)

    def build(self) -> Filter:
        return WindowedFilter(
            self.window_size, self.send_every, self.send_first_at, statistics.fmean
        )


@dataclass(frozen=True)
class ExponentialMovingAverage(FilterSpec):
    alpha: float = 0.1
    send_every: int = 15
    send_first_at: int = 1
    name: str = field(default="exponential_moving_average", init=False)

    def build(self) -> Filter:
        return EmaFilter(self.alpha, self.send_every, self.send_first_at)


@dataclass(frozen=True)
class Throttle(FilterSpec):
    period: float
    name: str = field(default="throttle", init=False)

    def build(self) -> Filter:
        return ThrottleFilter(self.period)


@dataclass(frozen=True)
class ThrottleAverage(FilterSpec):
    period: float
    name: str = field(default="throttle_average", init=False)

    def build(self) -> Filter:
        return ThrottleAverageFilter(self.period)


@dataclass(frozen=True)
class Delta(FilterSpec):
    min_value: Bound = field(default=Bound(0.0))
    max_value: Bound = field(default=Bound(math.inf))
    name: str = field(default="delta", init=False)

    def build(self) -> Filter:
        return DeltaFilter(self.min_value, self.max_value)


@dataclass(frozen=True)
class Heartbeat(FilterSpec):
    period: float
    optimistic: bool = False
    name: str = field(default="heartbeat", init=False)

    def build(self) -> Filter:
        return HeartbeatFilter(self.period, self.optimistic)


@dataclass(frozen=True)
class Timeout(FilterSpec):
    period: float
    value: float | None = NAN  # None: the last value received ("last")
    name: str = field(default="timeout", init=False)

    def build(self) -> Filter:
        return TimeoutFilter(self.period, self.value)
