"""Indoor air quality (IAQ) estimate from BME680 gas resistance and humidity.

Bosch's own IAQ algorithm (BSEC) is a closed binary that cannot run in the
sandbox, so this is the widely used open heuristic instead: an air-quality
score of 0-100 points, 75 from the gas resistance relative to a learnt
clean-air baseline and 25 from the distance of the humidity to an ideal
40 %RH, mapped to an IAQ index 0 (excellent) .. 500 (hazardous).

Volatile organic compounds lower the metal-oxide sensor's resistance, so
readings below the baseline mean worse air. The baseline is learnt during a
burn-in period (the heated sensor drifts for its first minutes) and then
tracked by an asymmetric exponential moving average: it rises quickly, since
a higher resistance is cleaner air than the reference, and falls slowly, so
lasting pollution is not mistaken for the new normal while slow sensor
drift is still followed.

All timing uses the host clock passed in as `now_ms`; the guest's own clock
is not trusted. Stdlib only.
"""

import math
from collections import deque

HUMIDITY_IDEAL = 40.0  # %RH at which the humidity score is full
HUMIDITY_WEIGHT = 25.0  # points of the 100-point score from humidity
GAS_WEIGHT = 75.0  # points of the 100-point score from gas resistance
# Baseline time constants: cleaner air becomes the reference within ~5 min;
# a falling baseline follows over ~12 h (day-scale drift, not a cooking spell).
BASELINE_UP_TAU_S = 300.0
BASELINE_DOWN_TAU_S = 12 * 3600.0
# The baseline counts as stable while its coefficient of variation over the
# last burn-in-length window stays below this.
STABLE_REL_STD = 0.02
# Accuracy 2 after the baseline was stable for one burn-in length, 3 after this many.
ACCURACY_3_BURN_INS = 3.0

_BANDS = (
    (50.0, "good"),
    (100.0, "moderate"),
    (150.0, "unhealthy for sensitive groups"),
    (200.0, "unhealthy"),
    (300.0, "very unhealthy"),
)


def band(iaq: float) -> str:
    """The IAQ band name; each band includes its upper bound (50 is "good")."""
    for upper, name in _BANDS:
        if iaq <= upper:
            return name
    return "hazardous"


def humidity_score(humidity: float) -> float:
    """0..25 points: full at 40 %RH, falling linearly to 0 at 0 and 100 %RH."""
    offset = humidity - HUMIDITY_IDEAL
    if offset > 0:
        fraction = (100.0 - HUMIDITY_IDEAL - offset) / (100.0 - HUMIDITY_IDEAL)
    else:
        fraction = (HUMIDITY_IDEAL + offset) / HUMIDITY_IDEAL
    return HUMIDITY_WEIGHT * min(1.0, max(0.0, fraction))


def gas_score(gas_ohm: float, baseline_ohm: float) -> float:
    """0..75 points: full at or above the baseline, proportional below it."""
    return GAS_WEIGHT * min(1.0, gas_ohm / baseline_ohm)


class IaqEstimator:
    """Learns a gas baseline across polls and turns readings into (IAQ, accuracy).

    Keep one instance for the plugin's lifetime: the baseline and accuracy
    live in it. Accuracy is 0 during burn-in, 1 once a baseline exists, 2
    after the baseline has been stable for one burn-in length and 3 after
    `ACCURACY_3_BURN_INS` of them; a moving baseline drops it back to 1.
    """

    def __init__(
        self,
        burn_in_s: float = 300.0,
        up_tau_s: float = BASELINE_UP_TAU_S,
        down_tau_s: float = BASELINE_DOWN_TAU_S,
    ) -> None:
        """Raises ValueError unless all durations are positive."""
        if not (burn_in_s > 0 and up_tau_s > 0 and down_tau_s > 0):
            raise ValueError("burn-in and baseline time constants must be positive")
        self._burn_in_ms = burn_in_s * 1000.0
        self._up_tau_ms = up_tau_s * 1000.0
        self._down_tau_ms = down_tau_s * 1000.0
        self._start_ms: int | None = None
        self._clock_ms = 0  # latest now_ms seen; never runs backwards
        self._baseline: float | None = None
        self._burned_in = False
        # Burn-in: (time, gas) of the last half of the burn-in period, whose
        # mean is the baseline (the first minutes of heating read low).
        # Afterwards: (time, baseline) over the last burn-in length, for stability.
        self._window: deque[tuple[int, float]] = deque()
        self._stable_since_ms = 0

    @property
    def baseline_ohm(self) -> float | None:
        """The current clean-air gas resistance reference, None before the first update."""
        return self._baseline

    def update(self, gas_ohm: float, humidity: float, now_ms: int) -> tuple[float, int]:
        """Feed one valid reading; returns (IAQ 0..500, accuracy 0..3).

        Only pass gas readings the chip flagged valid and heat-stable. A host
        clock that steps backwards is treated as no time passing. Raises
        ValueError for a non-positive or non-finite gas resistance.
        """
        if not (math.isfinite(gas_ohm) and gas_ohm > 0):
            raise ValueError(f"gas resistance must be positive, got {gas_ohm}")
        if self._start_ms is None:
            self._start_ms = self._clock_ms = now_ms
        elapsed_ms = max(0, now_ms - self._clock_ms)
        self._clock_ms += elapsed_ms
        now = self._clock_ms

        if now - self._start_ms < self._burn_in_ms:
            accuracy = 0
            self._learn(now, gas_ohm)
        else:
            if not self._burned_in:
                self._burned_in = True
                self._window.clear()
                self._stable_since_ms = now
            self._track(elapsed_ms, gas_ohm)
            accuracy = self._accuracy(now)
        assert self._baseline is not None
        score = humidity_score(humidity) + gas_score(gas_ohm, self._baseline)
        return (100.0 - score) * 5.0, accuracy

    def _learn(self, now: int, gas_ohm: float) -> None:
        self._window.append((now, gas_ohm))
        while now - self._window[0][0] > self._burn_in_ms / 2:
            self._window.popleft()
        self._baseline = sum(g for _, g in self._window) / len(self._window)

    def _track(self, elapsed_ms: int, gas_ohm: float) -> None:
        assert self._baseline is not None
        tau = self._up_tau_ms if gas_ohm > self._baseline else self._down_tau_ms
        self._baseline += (1.0 - math.exp(-elapsed_ms / tau)) * (gas_ohm - self._baseline)

    def _accuracy(self, now: int) -> int:
        assert self._baseline is not None
        self._window.append((now, self._baseline))
        while now - self._window[0][0] > self._burn_in_ms:
            self._window.popleft()
        values = [b for _, b in self._window]
        mean = sum(values) / len(values)
        variance = sum((b - mean) ** 2 for b in values) / len(values)
        if math.sqrt(variance) > STABLE_REL_STD * mean:
            self._stable_since_ms = now
        stable_ms = now - self._stable_since_ms
        if stable_ms >= ACCURACY_3_BURN_INS * self._burn_in_ms:
            return 3
        return 2 if stable_ms >= self._burn_in_ms else 1
