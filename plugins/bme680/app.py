"""The bme680 plugin (world `bme680-plugin`): air quality on LED 2.

Measurements are pipelined: each poll collects the forced-mode measurement
that the previous poll triggered once it had read its own (the poll interval
is seconds, a conversion about 0.2 s, so it is normally finished) and
triggers the next one, instead of spinning on the status register for the
whole conversion. The reported values were therefore measured just after
the previous poll.
The reading feeds the IAQ estimator, which compensates the gas resistance for
the humidity (damp air lowers it too) before scoring it, and gives the
CO2-equivalent and breath-VOC estimates; the plugin latches the air-quality
alarm with hysteresis and colours the LED by IAQ band. All state lives in
module globals, which persist for the lifetime of the plugin instance:
the driver with its measurement in flight (created on the first poll,
dropped after a bus error so the next poll re-initialises the chip), the
estimator with its learnt baseline, the poll counter and the alarm latch.

The `state` export (plugin.toml: `state = true`) carries everything but the
driver across instances: the host snapshots it before a reload, every
`[state] save_interval_seconds` to disk and at shutdown, and restores it into
the next instance (after a reload, a trap or a host restart). The driver is a
hardware handle, so the first poll after a restore re-initialises the chip.

Every failure leaves an export as `Err(message)`: any other exception would
trap the whole plugin instance and lose the baseline.
"""

import json
from dataclasses import dataclass

from bme680_driver import Bme680, DriverError, Measurement, MeasurementLost
from componentize_py_types import Err
from iaq import (
    GAS_IAQ_MAX,
    HUMIDITY_SLOPE_MAX,
    HUMIDITY_SLOPE_PER_G_M3,
    IaqEstimator,
    band,
    breath_voc_ppm,
    co2_equivalent_ppm,
)
from wasihost_guest import jsonguard, settings
from wit_world import exports
from wit_world.exports.bme680_logic import Bme680Data
from wit_world.imports import gpio_provider, i2c, led_controller
from wit_world.imports.alarm_types import Alarm

# Status reads for the measurement triggered at the end of the previous poll.
# Seconds have passed, so on hardware the first read finds it done; the
# emulator counts conversion time in status reads (3 "measuring" reads after a
# trigger) and needs 4. A few more are cheap; hundreds would be a busy-wait.
STATUS_READS = 5
# The first poll after (re)initialisation has nothing in flight, so it
# triggers and waits, at most this many status reads. Waiting (rather than
# always answering "warming up") gives data on that first poll whenever the
# chip answers within a few round trips, as the emulated chip does, so a start
# or a recovery shows readings at once instead of a warning and an empty
# dashboard tile. The bound keeps it from becoming a busy-wait on hardware,
# where the ~0.2 s conversion needs hundreds of round trips (each a fraction of
# a ms): there the poll reports "warming up" once, the measurement stays in
# flight and the next poll collects it.
FIRST_POLL_STATUS_READS = 10

# The snapshot format `State.snapshot` writes. `State.restore` also reads
# version 1, from before humidity compensation: its baseline was learnt on raw
# ohms, so it restores like a stale snapshot (kept, but accuracy from 1).
STATE_VERSION = 2
_STATE_KEYS_V1 = ("v", "iaq", "alarm", "polls", "last_iaq")
_STATE_KEYS = (*_STATE_KEYS_V1, "last_gas_iaq")
# Bounds checked before parsing: a snapshot is under 12 KB and nests
# 4 deep. Deeply nested JSON would exhaust the wasm call stack in json.loads,
# which is a trap, not a catchable RecursionError.
STATE_MAX_BYTES = 64 * 1024
STATE_MAX_DEPTH = 8

CALIBRATING_RGB = (48, 0, 192)
BAND_RGB = {
    "good": (0, 160, 0),
    "moderate": (160, 160, 0),
    "unhealthy for sensitive groups": (200, 80, 0),
    "unhealthy": (200, 0, 0),
    "very unhealthy": (128, 0, 128),
    "hazardous": (128, 0, 0),
}


@dataclass(frozen=True)
class Config:
    """Validated settings; the defaults apply until `configure` is called."""

    i2c_address: int = 0x77
    led: int = 2
    burn_in_s: float = 300.0
    alarm_on_iaq: float = 150.0
    alarm_off_iaq: float = 120.0
    humidity_slope: float = HUMIDITY_SLOPE_PER_G_M3


_config = Config()
_driver: Bme680 | None = None
_estimator = IaqEstimator(_config.burn_in_s, humidity_slope=_config.humidity_slope)
_poll_count = 0
_alarm = False
_last_iaq: tuple[float, int] = (0.0, 0)
# The gas part of the last IAQ (the IAQ at ideal humidity), for the estimates.
_last_gas_iaq = 0.0


def parse_settings(settings_json: str) -> Config:
    """Validate the host's settings JSON; raises SettingsError naming the bad setting.

    Unknown keys are refused, like the other seed plugins do, so a typo in
    host.toml (``alarm_on_iqa``) is reported instead of silently ignored.
    """
    given = settings.parse(settings_json, Config)
    config = Config(
        i2c_address=settings.integer(given, "i2c_address", Config.i2c_address, 0x08, 0x77),
        led=settings.led(given, Config.led),
        burn_in_s=settings.number(given, "burn_in_s", Config.burn_in_s),
        alarm_on_iaq=settings.number(given, "alarm_on_iaq", Config.alarm_on_iaq),
        alarm_off_iaq=settings.number(given, "alarm_off_iaq", Config.alarm_off_iaq),
        humidity_slope=settings.number(given, "humidity_slope", Config.humidity_slope),
    )
    if not 0 <= config.humidity_slope <= HUMIDITY_SLOPE_MAX:
        raise settings.SettingsError(
            f"setting humidity_slope must be in 0..{HUMIDITY_SLOPE_MAX} per g/m3 "
            f"(0 turns humidity compensation off), got {config.humidity_slope}"
        )
    if not 0 < config.burn_in_s <= 86400:
        raise settings.SettingsError(
            f"setting burn_in_s must be in (0, 86400] seconds, got {config.burn_in_s}"
        )
    if not 0 <= config.alarm_off_iaq < config.alarm_on_iaq <= 500:
        raise settings.SettingsError(
            "settings need 0 <= alarm_off_iaq < alarm_on_iaq <= 500, got "
            f"{config.alarm_off_iaq} and {config.alarm_on_iaq}"
        )
    return config


def _transfer(address: int, data: bytes, read_len: int) -> bytes:
    """The host's I2C capability in the driver's `Transfer` shape."""
    try:
        return i2c.transfer(address, data, read_len)
    except Err as exc:
        raise OSError(str(exc.value)) from None


def _start_driver() -> Bme680:
    """A freshly initialised driver with its first measurement triggered."""
    driver = Bme680(_transfer, _config.i2c_address)
    driver.init()
    driver.trigger()
    return driver


def _read_sensor() -> Measurement:
    """This poll's measurement, leaving the next one triggered; raises Err.

    Never spins: a measurement that is not there when expected is reported
    as this poll's error, and the pipeline is restarted so the next poll has
    data again.
    """
    global _driver
    try:
        try:
            if _driver is None:
                _driver = _start_driver()
                reading = _driver.read_if_ready(FIRST_POLL_STATUS_READS)
                if reading is None:
                    raise Err("BME680: warming up: first measurement in progress")
            else:
                reading = _driver.read_if_ready(STATUS_READS)
                if reading is None:
                    # Still converting: left in flight for the next poll to collect.
                    raise Err(
                        "BME680: measurement triggered last poll still running; "
                        "is the poll interval shorter than a conversion (~0.2 s)?"
                    )
        except MeasurementLost as exc:
            # A reset also cleared the heater and oversampling settings, so
            # re-trigger through init and let the next poll collect it, seconds
            # later, rather than waiting here.
            _driver = _start_driver()
            raise Err(f"BME680: {exc}; re-initialised and re-triggered") from None
        _driver.trigger()
    except DriverError as exc:
        _driver = None
        raise Err(f"BME680: {exc}") from None
    return reading


def air_estimates() -> tuple[float, float]:
    """(CO2 equivalent ppm, breath-VOC equivalent ppm) of the last valid reading.

    Estimates derived from the gas part of the IAQ (docs/IAQ.md), not
    measurements: the sensor does not see CO2, and any VOC reads as breath.
    """
    return co2_equivalent_ppm(_last_gas_iaq), breath_voc_ppm(_last_gas_iaq)


def _measure_and_report() -> Bme680Data:
    global _alarm, _last_iaq, _last_gas_iaq
    now_ms = gpio_provider.get_timestamp_ms()
    reading = _read_sensor()

    if reading.gas_valid and reading.heat_stable:
        _last_iaq = _estimator.update(
            reading.gas_resistance_ohm,
            reading.humidity_percent,
            now_ms,
            temperature_c=reading.temperature_c,
        )
        gas_iaq = _estimator.gas_iaq
        _last_gas_iaq = 0.0 if gas_iaq is None else gas_iaq
    iaq, accuracy = _last_iaq
    # No alarm on a provisional burn-in baseline: it would fire on warm-up drift.
    if accuracy > 0 and iaq >= _config.alarm_on_iaq:
        _alarm = True
    elif iaq <= _config.alarm_off_iaq:
        _alarm = False
    rgb = CALIBRATING_RGB if accuracy == 0 else BAND_RGB[band(iaq)]
    led_controller.set_led(_config.led, *rgb)
    co2_equivalent, breath_voc = air_estimates()
    return Bme680Data(
        temperature_c=reading.temperature_c,
        humidity_percent=reading.humidity_percent,
        pressure_hpa=reading.pressure_hpa,
        gas_resistance_ohm=reading.gas_resistance_ohm,
        iaq=iaq,
        co2_equivalent_ppm=co2_equivalent,
        breath_voc_ppm=breath_voc,
        iaq_accuracy=accuracy,
        alarm=Alarm.HIGH if _alarm else Alarm.NONE,
        poll_count=_poll_count,
    )


def snapshot_document() -> dict[str, object]:
    """The plugin's state as the JSON object `State.snapshot` writes (version 2)."""
    iaq_value, accuracy = _last_iaq
    return {
        "v": STATE_VERSION,
        "iaq": _estimator.to_state(),
        "alarm": _alarm,
        "polls": _poll_count,
        "last_iaq": [iaq_value, accuracy],
        "last_gas_iaq": _last_gas_iaq,
    }


@dataclass
class Restored:
    """A validated snapshot, ready to become the module globals."""

    estimator: IaqEstimator
    alarm: bool
    polls: int
    last_iaq: tuple[float, int]
    last_gas_iaq: float


def parse_snapshot(data: bytes, config: Config) -> Restored:
    """Validate a snapshot (version 1 or 2) strictly; raises ValueError with the reason.

    The estimator is rebuilt with today's `burn_in_s` and `humidity_slope`,
    not resumed yet. A version 1 snapshot has no `last_gas_iaq` (0 then) and
    an estimator state learnt without humidity compensation.
    """
    try:
        document = jsonguard.load_object(
            bytes(data), max_depth=STATE_MAX_DEPTH, max_bytes=STATE_MAX_BYTES
        )
    except jsonguard.Refused:
        raise
    except ValueError as exc:
        raise ValueError(f"not valid UTF-8 JSON: {exc}") from None
    version = document.get("v")
    number = jsonguard.integer(version)
    if number not in (1, STATE_VERSION):
        raise ValueError(
            f"unsupported version {version!r} (this plugin reads 1 and {STATE_VERSION})"
        )
    keys = _STATE_KEYS_V1 if number == 1 else _STATE_KEYS
    missing = [key for key in keys if key not in document]
    unknown = sorted(str(key) for key in document if key not in keys)
    if missing or unknown:
        raise ValueError(f"missing keys {missing}, unknown keys {unknown}")
    alarm, polls, last = document["alarm"], document["polls"], document["last_iaq"]
    if not isinstance(alarm, bool):
        raise ValueError(f"alarm must be true or false, got {alarm!r}")
    count = jsonguard.integer(polls)
    if count is None or not 0 <= count <= 0xFFFF_FFFF:
        raise ValueError(f"polls must be an integer in 0..4294967295, got {polls!r}")
    if not (
        isinstance(last, list)
        and len(last) == 2
        and (value := jsonguard.number(last[0])) is not None
        and 0 <= value <= 500
        and (accuracy := jsonguard.integer(last[1])) is not None
        and 0 <= accuracy <= 3
    ):
        raise ValueError(f"last_iaq must be [IAQ 0..500, accuracy 0..3], got {last!r}")
    gas_iaq = 0.0
    if number != 1:
        given = document["last_gas_iaq"]
        checked = jsonguard.number(given)
        if checked is None or not 0 <= checked <= GAS_IAQ_MAX:
            raise ValueError(f"last_gas_iaq must be a number in 0..{GAS_IAQ_MAX}, got {given!r}")
        gas_iaq = float(checked)
    estimator = IaqEstimator.from_state(
        document["iaq"],
        config.burn_in_s,
        humidity_slope=config.humidity_slope,
        uncompensated=number == 1,
    )
    return Restored(estimator, alarm, count, (float(value), accuracy), gas_iaq)


class State(exports.State):
    """The `state` export: the learnt IAQ state as a small versioned JSON document.

    `{"v": 2, "iaq": {...IaqEstimator.to_state()...}, "alarm": bool,
    "polls": int, "last_iaq": [iaq, accuracy], "last_gas_iaq": number}`;
    never the driver. Version 1 (no `last_gas_iaq`, no `iaq.humidity_slope`)
    is still read.
    """

    def snapshot(self) -> bytes:
        return json.dumps(snapshot_document(), separators=(",", ":")).encode()

    def restore(self, data: bytes) -> None:
        """Take over a snapshot, or refuse it with Err (the host then keeps the
        old version on reload, or starts fresh at start-up).

        The gap since the snapshot's last reading does not count as observed
        time; a stale snapshot (see `IaqEstimator.resume`) keeps its baseline,
        but its accuracy starts again at 1 and the alarm latch and last IAQ
        are dropped.
        """
        global _driver, _estimator, _alarm, _poll_count, _last_iaq, _last_gas_iaq
        try:
            restored = parse_snapshot(data, _config)
            stale = restored.estimator.resume(gpio_provider.get_timestamp_ms())
        except ValueError as exc:
            raise Err(f"bme680 snapshot refused: {exc}") from None
        except Exception as exc:  # anything else would trap the instance
            raise Err(f"bme680 snapshot refused: {type(exc).__name__}: {exc}") from None
        _driver = None  # a hardware handle, not state: the next poll re-initialises the chip
        _estimator = restored.estimator
        _poll_count = restored.polls
        _alarm = False if stale else restored.alarm
        _last_iaq = (0.0, 0) if stale else restored.last_iaq
        _last_gas_iaq = 0.0 if stale else restored.last_gas_iaq


class Settings(exports.Settings):
    """The `settings` export."""

    def configure(self, settings_json: str) -> None:
        """Apply settings and start afresh (the host calls this once per instance,
        before the first poll and before restoring any snapshot)."""
        global _config, _driver, _estimator, _alarm, _last_iaq, _last_gas_iaq
        try:
            _config = parse_settings(settings_json)
        except settings.SettingsError as exc:
            raise Err(str(exc)) from None
        _driver = None
        _estimator = IaqEstimator(_config.burn_in_s, humidity_slope=_config.humidity_slope)
        _alarm = False
        _last_iaq = (0.0, 0)
        _last_gas_iaq = 0.0


class Bme680Logic(exports.Bme680Logic):
    """The `bme680-logic` export."""

    def poll(self) -> Bme680Data:
        """Collect one measurement (triggering the next), update IAQ, alarm and LED 2.

        Errors come back as Err.
        """
        global _poll_count
        _poll_count += 1
        try:
            return _measure_and_report()
        except Err:
            raise
        except Exception as exc:  # a bug must not trap the instance and lose the baseline
            raise Err(f"bme680 plugin error: {type(exc).__name__}: {exc}") from None
