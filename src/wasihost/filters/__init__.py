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

The package, in the order a value meets it: ``parse`` turns a host.toml
entry into a ``FilterSpec`` (``specs``) or a ``FilterConfigError`` naming the
key; a spec builds a running ``Filter`` (``running``) with its own state; a
``FilterChain`` per measurement and the ``FilterBank`` the cycle owns
(``bank``) run them once per poll.
"""

from wasihost.filters.bank import FilterBank, FilterChain, Filtered
from wasihost.filters.parse import PARSERS, FilterConfigError, parse_filter
from wasihost.filters.running import UNAVAILABLE, Bound, Filter
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
    Segment,
    SlidingWindowMovingAverage,
    Throttle,
    ThrottleAverage,
    Timeout,
)

__all__ = [
    "PARSERS",
    "UNAVAILABLE",
    "Bound",
    "CalibrateLinear",
    "Clamp",
    "Delta",
    "ExponentialMovingAverage",
    "Filter",
    "FilterBank",
    "FilterChain",
    "FilterConfigError",
    "FilterOut",
    "FilterSpec",
    "Filtered",
    "Heartbeat",
    "Median",
    "Multiply",
    "Offset",
    "Round",
    "Segment",
    "SlidingWindowMovingAverage",
    "Throttle",
    "ThrottleAverage",
    "Timeout",
    "parse_filter",
]
