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

Water vapour lowers the sensor's resistance too, so damp air would read as
pollution. Every reading is therefore first compensated to a reference
humidity (`compensate_gas`): over indoor ranges the log of the resistance
falls about linearly with the absolute humidity, so the reading is scaled by
exp(slope * (AH - AH_ref)). The baseline, the score and the CO2-equivalent
and breath-VOC estimates (`co2_equivalent_ppm`, `breath_voc_ppm`) all work on
the compensated resistance.

All timing uses the host clock passed in as `now_ms`, which is the wall clock:
on a Pi without a real-time clock it starts in 1970 (or at the last shutdown)
and NTP steps it forward by hours to decades a minute after boot, sometimes
back. So the gap between two readings is only believed up to a bound: at most
`MAX_STEP_FACTOR` typical gaps (`FIRST_STEP_MAX_S` before any is known), and
a negative gap counts as none. The time not believed is treated like a pause:
every stored time moves with the clock, so a jump neither ends the burn-in
early nor stalls it, and neither drags the baseline nor the accuracy along.
`IaqEstimator.to_state` / `from_state` / `resume` carry the
learnt state across plugin reloads and host restarts (the plugin's `state`
export stores it as JSON). Stdlib and the shared guest library only; the
IAQ band scale (`band`) is the library's, the one the dashboard names too.
"""

import math
from collections import deque

from wasihost_guest.iaq import band as band
from wasihost_guest.jsonguard import integer, number

HUMIDITY_IDEAL = 40.0  # %RH at which the humidity score is full
HUMIDITY_WEIGHT = 25.0  # points of the 100-point score from humidity
GAS_WEIGHT = 75.0  # points of the 100-point score from gas resistance
# The gas part of the IAQ runs from 0 (at or above the baseline) to this (no
# resistance left): the IAQ the air would have at the ideal humidity.
GAS_IAQ_MAX = 5.0 * GAS_WEIGHT
# Baseline time constants: cleaner air becomes the reference within ~5 min;
# a falling baseline follows over ~12 h (day-scale drift, not a cooking spell).
BASELINE_UP_TAU_S = 300.0
BASELINE_DOWN_TAU_S = 12 * 3600.0
# The baseline counts as stable while its coefficient of variation over the
# last burn-in-length window stays below this.
STABLE_REL_STD = 0.02
# Accuracy 2 after the baseline was stable for one burn-in length, 3 after this many.
ACCURACY_3_BURN_INS = 3.0
# A saved state whose last reading is older than this (two falling-baseline time
# constants: the tracker would have followed 86 % of any drift meanwhile) is
# stale: its baseline is kept but no longer trusted beyond accuracy 1.
STATE_STALE_S = 2 * BASELINE_DOWN_TAU_S
# The window is bounded by time (the burn-in length) and, so that polling far faster
# than designed cannot grow memory and per-poll work without bound, by count too:
# past this many entries it covers the most recent ones only.
WINDOW_MAX = 4096
# `to_state` thins the window to at most this many entries (evenly spread) so a
# snapshot stays small whatever `burn_in_s`; 300 s at 2 s polls is 151 entries.
STATE_WINDOW_MAX = 256
# Humidity compensation (docs/IAQ.md, "Humidity compensation"). The log of a
# metal-oxide sensor's resistance falls about linearly with the water vapour
# it sees, i.e. with the absolute humidity, not the relative one (the same
# %RH holds more water in warm air, and the chip's own heating lowers its
# %RH but not the absolute humidity). 0.03 per g/m3 is the slope fitted for a
# BME680 at the same heater profile (320 degC, 150 ms) by thstielow's
# raspi-bme680-iaq; 0 turns compensation off. Readings are referred to
# 40 %RH at 20 degC, typical indoor air, so a baseline learnt without
# compensation is close to the compensated one.
HUMIDITY_SLOPE_PER_G_M3 = 0.03
HUMIDITY_SLOPE_MAX = 0.2  # per g/m3; larger would over-correct any chip by far
REFERENCE_TEMPERATURE_C = 20.0
# The linear model only holds over ordinary indoor air: beyond this absolute
# humidity (saturation at ~29 degC) the factor stops growing, at most x2.0.
ABSOLUTE_HUMIDITY_MAX_G_M3 = 30.0
# Magnus formula over water (Sonntag 1990 constants), valid -45..60 degC.
_MAGNUS_HPA, _MAGNUS_B, _MAGNUS_C = 6.112, 17.62, 243.12
_WATER_VAPOUR_J_KG_K = 461.52  # specific gas constant of water vapour
# CO2-equivalent and breath-VOC estimates (docs/IAQ.md). The learnt clean air
# is taken to hold BVOC_CLEAN_PPM of breath VOCs (BSEC's floor) and
# CO2_OUTDOOR_PPM of CO2; a metal-oxide sensor's resistance follows a power
# law of the concentration, R ~ C^-MOX_EXPONENT, so bVOC = floor * r^-2 for a
# compensated gas ratio r; people exhale CO2 and breath VOCs together, so
# CO2eq rises linearly with the bVOC above the floor, CO2_PER_BVOC_PPM ppm per
# ppm, chosen so that gas IAQ 100 (the top of "moderate") reads 1000 ppm.
BVOC_CLEAN_PPM = 0.5
CO2_OUTDOOR_PPM = 400.0
MOX_EXPONENT = 0.5
CO2_AT_IAQ_100_PPM = 1000.0
# Exhaled breath is about 4 % CO2: no mixture of room air and breath can
# exceed it, so both estimates saturate where CO2eq reaches it.
CO2_MAX_PPM = 40_000.0
# Clock jumps. The guest has no monotonic clock capability, and its own
# time.monotonic() (WASI's) could not be driven by the clock tests inject, nor
# agree between a native test run and the component: so the gaps of the host
# clock are bounded instead, which keeps every test a deterministic sequence of
# `now_ms` values. One gap counts as at most MAX_STEP_FACTOR times the typical
# gap (the lower median of the last TYPICAL_GAPS positive gaps: a one-off jump
# does not move it), or FIRST_STEP_MAX_S while no gap is known yet (the first
# reading after a start or a restore). A few typical gaps leave room for the odd
# reading lost to an invalid gas flag or a bus error; longer really elapsed gaps
# (the host paused) are undercounted, which errs on the side of a longer burn-in.
MAX_STEP_FACTOR = 4.0
FIRST_STEP_MAX_S = 10.0
TYPICAL_GAPS = 9
# Times in a state must lie within this of 0 (the host clock is u64 ms).
_STATE_TIME_LIMIT = 2**63
_STATE_KEYS_V1 = (
    "start_ms",
    "clock_ms",
    "baseline_ohm",
    "burned_in",
    "window",
    "stable_since_ms",
)
# Since humidity compensation: the slope the baseline and window were learnt with.
_STATE_KEYS = (*_STATE_KEYS_V1, "humidity_slope")


def absolute_humidity_g_m3(temperature_c: float, humidity: float) -> float:
    """Water vapour in g/m3 of air at `temperature_c` and `humidity` %RH.

    Magnus saturation pressure and the ideal gas law; the temperature is
    clamped to -40..85 degC (the chip's range) and the humidity to 0..100 %RH,
    so a damaged reading cannot overflow. Raises ValueError if either is NaN.
    """
    if not (math.isfinite(temperature_c) and math.isfinite(humidity)):
        raise ValueError(f"temperature {temperature_c} and humidity {humidity} must be finite")
    t = min(85.0, max(-40.0, temperature_c))
    rh = min(100.0, max(0.0, humidity))
    saturation_pa = _MAGNUS_HPA * 100.0 * math.exp(_MAGNUS_B * t / (_MAGNUS_C + t))
    return rh / 100.0 * saturation_pa / (_WATER_VAPOUR_J_KG_K * (t + 273.15)) * 1000.0


REFERENCE_ABSOLUTE_HUMIDITY_G_M3 = absolute_humidity_g_m3(REFERENCE_TEMPERATURE_C, 40.0)


def compensate_gas(
    gas_ohm: float,
    temperature_c: float,
    humidity: float,
    slope: float = HUMIDITY_SLOPE_PER_G_M3,
) -> float:
    """The resistance the sensor would read in the same air at the reference
    humidity (40 %RH at 20 degC, about 6.9 g/m3).

    ln(R) is taken to fall by `slope` per g/m3 of water vapour, so the reading
    is scaled by exp(slope * (AH - AH_ref)): damp air, which lowers the
    resistance, is scaled up, dry air down. AH is capped at
    ABSOLUTE_HUMIDITY_MAX_G_M3, beyond the range the linear model was fitted on.
    """
    absolute = min(ABSOLUTE_HUMIDITY_MAX_G_M3, absolute_humidity_g_m3(temperature_c, humidity))
    return gas_ohm * math.exp(slope * (absolute - REFERENCE_ABSOLUTE_HUMIDITY_G_M3))


def gas_ratio_of(gas_iaq: float) -> float:
    """The compensated gas / baseline ratio a gas IAQ stands for (1 = clean)."""
    return 1.0 - min(GAS_IAQ_MAX, max(0.0, gas_iaq)) / GAS_IAQ_MAX


def _co2_per_bvoc() -> float:
    """ppm of CO2eq per ppm of bVOC above the floor: CO2_AT_IAQ_100_PPM at gas IAQ 100."""
    bvoc_100 = BVOC_CLEAN_PPM * math.pow(gas_ratio_of(100.0), -1.0 / MOX_EXPONENT)
    return (CO2_AT_IAQ_100_PPM - CO2_OUTDOOR_PPM) / (bvoc_100 - BVOC_CLEAN_PPM)


CO2_PER_BVOC_PPM = _co2_per_bvoc()  # 1396 ppm per ppm
BVOC_MAX_PPM = BVOC_CLEAN_PPM + (CO2_MAX_PPM - CO2_OUTDOOR_PPM) / CO2_PER_BVOC_PPM  # 28.9


def breath_voc_ppm(gas_iaq: float) -> float:
    """Estimated breath-VOC equivalent in ppm for a gas IAQ (0..375).

    An estimate, not a measurement: BVOC_CLEAN_PPM in the learnt clean air,
    rising as the power law of the compensated gas ratio, bVOC = 0.5 * r^-2,
    up to BVOC_MAX_PPM (where CO2eq saturates). Never decreases with the IAQ.
    """
    bvoc = BVOC_CLEAN_PPM * math.pow(max(gas_ratio_of(gas_iaq), 1e-6), -1.0 / MOX_EXPONENT)
    return min(BVOC_MAX_PPM, bvoc)


def co2_equivalent_ppm(gas_iaq: float) -> float:
    """Estimated CO2 equivalent in ppm for a gas IAQ (0..375).

    An estimate, not a measurement: CO2_OUTDOOR_PPM in the learnt clean air,
    plus CO2_PER_BVOC_PPM per ppm of breath VOC above its floor (people
    exhale both together), up to CO2_MAX_PPM. Never decreases with the IAQ.
    The sensor does not react to CO2 itself; VOCs from any other source read
    as CO2 too.
    """
    extra = CO2_PER_BVOC_PPM * (breath_voc_ppm(gas_iaq) - BVOC_CLEAN_PPM)
    return min(CO2_MAX_PPM, CO2_OUTDOOR_PPM + extra)


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
    live in it (`to_state`, `from_state` and `resume` carry them to a new
    instance). Accuracy is 0 during burn-in, 1 once a baseline exists, 2
    after the baseline has been stable for one burn-in length and 3 after
    `ACCURACY_3_BURN_INS` of them; a moving baseline drops it back to 1.
    The baseline and everything learnt are in humidity-compensated ohms
    (`compensate_gas` with `humidity_slope`).
    """

    def __init__(
        self,
        burn_in_s: float = 300.0,
        up_tau_s: float = BASELINE_UP_TAU_S,
        down_tau_s: float = BASELINE_DOWN_TAU_S,
        humidity_slope: float = HUMIDITY_SLOPE_PER_G_M3,
    ) -> None:
        """Raises ValueError unless all durations are positive and the slope is
        in 0..HUMIDITY_SLOPE_MAX per g/m3."""
        if not (burn_in_s > 0 and up_tau_s > 0 and down_tau_s > 0):
            raise ValueError("burn-in and baseline time constants must be positive")
        if not 0.0 <= humidity_slope <= HUMIDITY_SLOPE_MAX:
            raise ValueError(f"humidity slope must be in 0..{HUMIDITY_SLOPE_MAX}")
        self._burn_in_ms = burn_in_s * 1000.0
        self._up_tau_ms = up_tau_s * 1000.0
        self._down_tau_ms = down_tau_s * 1000.0
        self._slope = humidity_slope
        # The slope a restored state was learnt with, until `resume` settles it.
        self._restored_slope: float | None = None
        self._reset()

    def _reset(self) -> None:
        """Forget everything learnt (the durations stay)."""
        self._start_ms: int | None = None
        self._clock_ms = 0  # the latest now_ms seen
        # The last positive gaps between readings (not state: relearnt after a restore).
        self._gaps: deque[int] = deque(maxlen=TYPICAL_GAPS)
        self._baseline: float | None = None
        self._burned_in = False
        # Burn-in: (time, gas) of the last half of the burn-in period, whose
        # mean is the baseline (the first minutes of heating read low).
        # Afterwards: (time, baseline) over the last burn-in length, for stability.
        self._window: deque[tuple[int, float]] = deque(maxlen=WINDOW_MAX)
        self._stable_since_ms = 0
        self._gas_iaq: float | None = None  # the gas part of the last IAQ

    @property
    def baseline_ohm(self) -> float | None:
        """The current clean-air gas resistance reference (compensated to the
        reference humidity), None before the first update."""
        return self._baseline

    @property
    def gas_iaq(self) -> float | None:
        """The gas part of the last IAQ, 0..GAS_IAQ_MAX: the IAQ at the ideal
        humidity, which the CO2eq and bVOC estimates derive from. None before
        the first update."""
        return self._gas_iaq

    def update(
        self, gas_ohm: float, humidity: float, now_ms: int, temperature_c: float
    ) -> tuple[float, int]:
        """Feed one valid reading; returns (IAQ 0..500, accuracy 0..3).

        Only pass gas readings the chip flagged valid and heat-stable, with the
        temperature and humidity of the same measurement (the absolute humidity
        they give compensates the gas reading). The gap since the previous
        reading counts as at most a few typical gaps, a host clock that steps
        backwards as no time passing (see `_advance`). Raises ValueError for a
        non-positive or non-finite gas resistance, or a NaN temperature or
        humidity.
        """
        if not (math.isfinite(gas_ohm) and gas_ohm > 0):
            raise ValueError(f"gas resistance must be positive, got {gas_ohm}")
        gas_ohm = compensate_gas(gas_ohm, temperature_c, humidity, self._slope)
        elapsed_ms = self._advance(now_ms)
        assert self._start_ms is not None
        now = self._clock_ms

        # Once burnt in, always burnt in (a restored state may meet a longer burn_in_s).
        if not self._burned_in and now - self._start_ms < self._burn_in_ms:
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
        gas_points = gas_score(gas_ohm, self._baseline)
        self._gas_iaq = (GAS_WEIGHT - gas_points) * 5.0
        return (100.0 - humidity_score(humidity) - gas_points) * 5.0, accuracy

    def _advance(self, now_ms: int) -> int:
        """Move the clock to `now_ms`; returns the time counted as observed.

        A gap beyond `_max_step_ms` (a forward jump of the wall clock) or below
        zero (a backward one) is counted only up to that bound, or as nothing;
        the rest is a pause, as in `resume`: every stored time moves by it.
        """
        if self._start_ms is None:
            self._start_ms = self._clock_ms = now_ms
            return 0
        gap = now_ms - self._clock_ms
        counted = min(max(0, gap), self._max_step_ms())
        if gap > 0:
            self._gaps.append(gap)
        if counted != gap:
            self._shift(gap - counted)
        self._clock_ms = now_ms
        return counted

    def _max_step_ms(self) -> int:
        """The longest gap believed: a few typical gaps (see MAX_STEP_FACTOR)."""
        if not self._gaps:
            return int(FIRST_STEP_MAX_S * 1000)
        typical = sorted(self._gaps)[(len(self._gaps) - 1) // 2]
        return int(MAX_STEP_FACTOR * typical)

    def _shift(self, ms: int) -> None:
        """Move every stored time by `ms`: time that passed unobserved."""
        assert self._start_ms is not None
        self._start_ms += ms
        self._clock_ms += ms
        self._window = deque(((t + ms, value) for t, value in self._window), maxlen=WINDOW_MAX)
        if self._burned_in:
            self._stable_since_ms += ms

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

    # -- persistence ------------------------------------------------------------

    def to_state(self) -> dict[str, object]:
        """Everything learnt, as a JSON-ready dict (times in host-clock ms).

        `from_state` rebuilds it exactly, except that a window longer than
        `STATE_WINDOW_MAX` is thinned to that many evenly spread entries
        (always keeping the oldest and the newest).
        """
        if self._start_ms is None:
            return {
                "start_ms": None,
                "clock_ms": None,
                "baseline_ohm": None,
                "burned_in": False,
                "window": [],
                "stable_since_ms": None,
                "humidity_slope": self._slope,
            }
        window = list(self._window)
        if len(window) > STATE_WINDOW_MAX:
            # Steps of more than one entry, so the rounded indices never repeat.
            step = (len(window) - 1) / (STATE_WINDOW_MAX - 1)
            window = [window[round(i * step)] for i in range(STATE_WINDOW_MAX)]
        return {
            "start_ms": self._start_ms,
            "clock_ms": self._clock_ms,
            "baseline_ohm": self._baseline,
            "burned_in": self._burned_in,
            "window": [[t, value] for t, value in window],
            "stable_since_ms": self._stable_since_ms if self._burned_in else None,
            "humidity_slope": self._slope,
        }

    @classmethod
    def from_state(
        cls,
        state: object,
        burn_in_s: float = 300.0,
        up_tau_s: float = BASELINE_UP_TAU_S,
        down_tau_s: float = BASELINE_DOWN_TAU_S,
        humidity_slope: float = HUMIDITY_SLOPE_PER_G_M3,
        *,
        uncompensated: bool = False,
    ) -> "IaqEstimator":
        """An estimator continuing from `to_state`'s dict; raises ValueError naming
        the first problem (missing or unknown key, wrong type, a non-finite or
        non-positive resistance, a slope out of range, times out of order).

        `uncompensated` reads a state from before humidity compensation
        (snapshot version 1): it has no `humidity_slope` and was learnt on raw
        ohms, i.e. with slope 0. The durations and the slope are today's
        settings; a state learnt with another slope is kept but, by `resume`,
        no longer trusted beyond accuracy 1. Call `resume` next, with the host
        clock, before feeding readings.
        """
        estimator = cls(burn_in_s, up_tau_s, down_tau_s, humidity_slope)
        if not isinstance(state, dict):
            raise ValueError(f"iaq state must be an object, got {type(state).__name__}")
        keys = _STATE_KEYS_V1 if uncompensated else _STATE_KEYS
        missing = [key for key in keys if key not in state]
        unknown = sorted(str(key) for key in state if key not in keys)
        if missing or unknown:
            raise ValueError(f"iaq state: missing keys {missing}, unknown keys {unknown}")
        if uncompensated:
            learnt_slope = 0.0
        else:
            slope = number(state["humidity_slope"])
            if slope is None or not 0.0 <= slope <= HUMIDITY_SLOPE_MAX:
                raise ValueError(
                    f"iaq state: humidity_slope must be a number in 0..{HUMIDITY_SLOPE_MAX}, "
                    f"got {state['humidity_slope']!r}"
                )
            learnt_slope = float(slope)
        start = state["start_ms"]
        if start is None:
            learnt = {key: state[key] for key in _STATE_KEYS_V1}
            fresh = {key: value for key, value in estimator.to_state().items() if key in learnt}
            if learnt != fresh or type(state["burned_in"]) is not bool:
                raise ValueError("iaq state: without start_ms every other field must be empty")
            return estimator  # nothing learnt: the slope it was kept with does not matter
        start = _state_time(state["start_ms"], "start_ms")
        clock = _state_time(state["clock_ms"], "clock_ms")
        baseline = _state_resistance(state["baseline_ohm"], "baseline_ohm")
        burned_in = state["burned_in"]
        if not isinstance(burned_in, bool):
            raise ValueError(f"iaq state: burned_in must be true or false, got {burned_in!r}")
        if clock < start:
            raise ValueError(f"iaq state: clock_ms {clock} is before start_ms {start}")
        raw_window = state["window"]
        if not isinstance(raw_window, list) or len(raw_window) > STATE_WINDOW_MAX:
            raise ValueError(f"iaq state: window must be a list of at most {STATE_WINDOW_MAX}")
        window: deque[tuple[int, float]] = deque(maxlen=WINDOW_MAX)
        previous = start
        for index, entry in enumerate(raw_window):
            if not isinstance(entry, list) or len(entry) != 2:
                raise ValueError(f"iaq state: window[{index}] must be [time_ms, ohm]")
            t = _state_time(entry[0], f"window[{index}] time")
            if not previous <= t <= clock:
                raise ValueError(f"iaq state: window[{index}] time {t} out of order")
            window.append((t, _state_resistance(entry[1], f"window[{index}] ohm")))
            previous = t
        stable_since = state["stable_since_ms"]
        if burned_in:
            stable_since = _state_time(state["stable_since_ms"], "stable_since_ms")
            if not start <= stable_since <= clock:
                raise ValueError(f"iaq state: stable_since_ms {stable_since} out of range")
        elif stable_since is not None:
            raise ValueError("iaq state: stable_since_ms must be null during burn-in")
        estimator._start_ms, estimator._clock_ms = start, clock
        estimator._baseline, estimator._burned_in = baseline, burned_in
        estimator._window = window
        estimator._stable_since_ms = stable_since if burned_in else 0
        estimator._restored_slope = learnt_slope
        return estimator

    def resume(self, now_ms: int) -> bool:
        """Continue on the host clock at `now_ms` after a pause (a reload, a
        restart); returns whether the state was stale.

        The pause is not observed time: every stored time moves forward by
        the gap since the last reading, so burn-in and the stability clock
        resume where they stopped and the first reading afterwards does not
        pull the baseline by the whole gap. The state is stale when that gap
        is negative (the host clock went backwards) or longer than
        `STATE_STALE_S`, or when it was learnt with another humidity slope
        (a snapshot from before compensation, or the setting changed): a
        burnt-in baseline is then kept but its stability restarts, so
        accuracy is 1 at the next reading and rises to 2 and 3 as usual; an
        unfinished burn-in starts again from scratch.
        """
        restored_slope, self._restored_slope = self._restored_slope, None
        if self._start_ms is None:
            return False
        gap = now_ms - self._clock_ms
        recompensated = restored_slope is not None and restored_slope != self._slope
        stale = gap < 0 or gap > STATE_STALE_S * 1000.0 or recompensated
        if stale and not self._burned_in:
            self._reset()
            return True
        self._shift(gap)
        self._gaps.clear()  # the spacing of readings after a pause is not known yet
        if stale:
            self._window.clear()
            self._stable_since_ms = now_ms
        return stale


def _state_time(value: object, name: str) -> int:
    checked = integer(value)
    if checked is None or abs(checked) >= _STATE_TIME_LIMIT:
        raise ValueError(f"iaq state: {name} must be an integer of ms, got {value!r}")
    return checked


def _state_resistance(value: object, name: str) -> float:
    checked = number(value)
    if checked is None or checked <= 0:
        raise ValueError(f"iaq state: {name} must be a positive finite number, got {value!r}")
    return float(checked)
