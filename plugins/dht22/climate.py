"""Pure climate maths and alarm latching for the dht22 plugin (stdlib only).

Kept apart from app.py so the logic can be tested natively in CPython.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def dew_point_c(temperature_c: float, humidity_percent: float) -> float:
    """Magnus formula (Alduchov & Eskridge constants), good to ±0.35 °C for -45..60 °C."""
    rh = max(1.0, min(100.0, humidity_percent))
    gamma = math.log(rh / 100.0) + 17.625 * temperature_c / (243.04 + temperature_c)
    return 243.04 * gamma / (17.625 - gamma)


def heat_index_c(temperature_c: float, humidity_percent: float) -> float:
    """NOAA heat index: Steadman's simple form, Rothfusz regression above 80 °F."""
    t = temperature_c * 9 / 5 + 32
    rh = humidity_percent
    simple = 0.5 * (t + 61.0 + (t - 68.0) * 1.2 + rh * 0.094)
    if (simple + t) / 2 < 80:
        return (simple - 32) * 5 / 9
    hi = (
        -42.379
        + 2.04901523 * t
        + 10.14333127 * rh
        - 0.22475541 * t * rh
        - 0.00683783 * t * t
        - 0.05481717 * rh * rh
        + 0.00122874 * t * t * rh
        + 0.00085282 * t * rh * rh
        - 0.00000199 * t * t * rh * rh
    )
    if rh < 13 and 80 <= t <= 112:
        hi -= ((13 - rh) / 4) * math.sqrt((17 - abs(t - 95)) / 17)
    elif rh > 85 and 80 <= t <= 87:
        hi += ((rh - 85) / 10) * ((87 - t) / 5)
    return (hi - 32) * 5 / 9


@dataclass
class Latch:
    """An alarm with hysteresis: on at ``on_at``, off only once past ``off_at``.

    For a high alarm ``on_at > off_at``; for a low alarm ``on_at < off_at``.
    A value hovering at one threshold therefore cannot make the alarm flap.
    """

    on_at: float
    off_at: float
    active: bool = False

    def update(self, value: float) -> bool:
        """Feed a value; returns True only on the poll the alarm latches on."""
        high = self.on_at >= self.off_at
        if not self.active and (value >= self.on_at if high else value <= self.on_at):
            self.active = True
            return True
        if self.active and (value <= self.off_at if high else value >= self.off_at):
            self.active = False
        return False
