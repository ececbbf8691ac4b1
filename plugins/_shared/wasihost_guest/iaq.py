"""The indoor air quality (IAQ) scale: the one band table.

The bme680 plugin colours its LED by band and the dashboard names the band
beside the value; two copies of the table once disagreed at IAQ 50.4 (the
LED said "moderate", the page "good"). Both read it from here.
"""

from __future__ import annotations

import math

# (upper bound of the IAQ value as shown, band), best first; past the last: WORST.
BANDS: tuple[tuple[int, str], ...] = (
    (50, "good"),
    (100, "moderate"),
    (150, "unhealthy for sensitive groups"),
    (200, "unhealthy"),
    (300, "very unhealthy"),
)
WORST = "hazardous"


def band(iaq: float) -> str:
    """The band of the value as people see it: rounded half up, the way the
    page's script rounds (``Math.round``), so 50.4 shows as 50, "good", and
    50.5 as 51, "moderate" (Python's ``round`` would make 50.5 an even 50)."""
    shown = math.floor(iaq + 0.5)
    for upper, name in BANDS:
        if shown <= upper:
            return name
    return WORST
