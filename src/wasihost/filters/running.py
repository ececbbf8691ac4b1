"""The running filters: what each does to one value, with its state.

One class per behaviour, not per ESPHome name: offset, multiply and
calibrate_linear are all a ``MapFilter``; median and the moving average are a
``WindowedFilter`` with another combine. Specs build them, fresh for every chain.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

NAN = math.nan
# What a measurement's ``<name>_status`` says while its chain's last output was NaN.
UNAVAILABLE = "unavailable"


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


class MapFilter(Filter):
    """A stateless function of the value (offset, multiply, calibrate_linear...)."""

    def __init__(self, function: Callable[[float], float | None]) -> None:
        self.function = function

    def new_value(self, value: float, now: float) -> float | None:
        return self.function(value)


class WindowedFilter(Filter):
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


class EmaFilter(Filter):
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


class ThrottleFilter(Filter):
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


class ThrottleAverageFilter(Filter):
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


class HeartbeatFilter(Filter):
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


class TimeoutFilter(Filter):
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


@dataclass(frozen=True)
class Bound:
    """A delta bound: ``value`` itself, or ``value`` times the last value (a percentage)."""

    value: float
    relative: bool = False

    def of(self, last: float) -> float:
        return self.value * abs(last) if self.relative else self.value


class DeltaFilter(Filter):
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
