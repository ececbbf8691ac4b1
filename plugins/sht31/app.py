"""sht31: Sensirion SHT31 temperature and humidity on I2C (world sensor-plugin).

Measurements are pipelined, so a poll never waits for the chip: each poll reads the
single-shot measurement that the previous poll started and starts the next one. The
poll interval is seconds and a measurement takes at most 15 ms, so it is finished by
then; the reported values were measured just after the previous poll. The first poll
after a (re)load, and the first poll after an error, have nothing to read yet: they
start a measurement and report no values ("warming up" on the LED), and the next poll
has data again.

Settings (`[plugins.sht31.settings]` in host.toml), all optional:

- `i2c_address`: 0x44 (ADDR pin low, the default) or 0x45 (ADDR high); an integer or a
  string such as "0x45". It must also be granted in `[plugins.sht31.grants]`.
- `repeatability`: "high" (default), "medium" or "low".
- `led`: the LED to light (set by the host from `led =`).

The LED shows the relative humidity: orange below 30 % (dry), green up to 60 %
(comfortable), blue above (humid); dim blue while warming up and red after an error.
Every failure (bus error, refused address, CRC error) is reported as this poll's `Err`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from componentize_py_types import Err
from driver import ADDRESSES, DEFAULT_ADDRESS, SINGLE_SHOT, Chip, DriverError, dew_point_c
from wasihost_guest import jsonguard, settings
from wit_world import exports
from wit_world.exports.sensor import Measurement, MeasurementSpec, PluginInfo
from wit_world.imports import gpio_provider, i2c, led_controller

VERSION = "1.0.0"

MEASUREMENTS = [
    MeasurementSpec("temperature", "°C", "temperature"),
    MeasurementSpec("humidity", "%", "humidity"),
    MeasurementSpec("dew_point", "°C", "temperature"),
]

WARMING_UP_RGB = (0, 0, 40)
ERROR_RGB = (200, 0, 0)
DRY_RGB = (200, 90, 0)
COMFORT_RGB = (0, 160, 0)
HUMID_RGB = (0, 60, 200)


@dataclass(frozen=True)
class Config:
    i2c_address: int = DEFAULT_ADDRESS
    repeatability: str = "high"
    led: int | None = None


_config = Config()
_chip: Chip | None = None
_started_ms: int | None = None  # when the measurement in flight was started


def _address(given: object) -> int:
    """0x44 or 0x45, as an integer or a string such as "0x45"."""
    value = given
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = int(value, 0)
    address = jsonguard.integer(value)
    if address is None or address not in ADDRESSES:
        raise settings.SettingsError(f"setting i2c_address must be 0x44 or 0x45, got {given!r}")
    return address


def parse_settings(settings_json: str) -> Config:
    """Validate the settings JSON from the host; raises SettingsError naming the bad setting."""
    given = settings.parse(settings_json, Config)
    return Config(
        i2c_address=_address(given.get("i2c_address", DEFAULT_ADDRESS)),
        repeatability=settings.choice(given, "repeatability", Config.repeatability, SINGLE_SHOT),
        led=settings.led(given, Config.led),
    )


class Settings(exports.Settings):
    def configure(self, settings_json: str) -> None:
        global _config, _chip, _started_ms
        try:
            _config = parse_settings(settings_json)
        except settings.SettingsError as exc:
            raise Err(str(exc)) from None
        _chip = Chip(i2c.transfer, _config.i2c_address, _config.repeatability)
        _started_ms = None


def _set_led(rgb: tuple[int, int, int]) -> None:
    if _config.led is not None:
        led_controller.set_led(_config.led, *rgb)


def _humidity_rgb(humidity: float) -> tuple[int, int, int]:
    if humidity < 30.0:
        return DRY_RGB
    if humidity <= 60.0:
        return COMFORT_RGB
    return HUMID_RGB


def _where() -> str:
    return f"SHT31 at 0x{_config.i2c_address:02x}"


def _start(chip: Chip, now_ms: int) -> str | None:
    """Start the next measurement; the reason if the chip refused it."""
    global _started_ms
    try:
        chip.start_measurement()
    except Err as exc:
        _started_ms = None
        return f"{_where()}: starting a measurement failed: {exc.value}"
    _started_ms = now_ms
    return None


def _measure(chip: Chip) -> tuple[float, float] | None:
    """The measurement started by the previous poll (None if there is none yet), with
    the next one started; raises Err on a bus or CRC error."""
    now_ms = gpio_provider.get_timestamp_ms()
    if _started_ms is None:
        error = _start(chip, now_ms)
        if error is not None:
            raise Err(error)
        return None
    elapsed_ms = now_ms - _started_ms
    if 0 <= elapsed_ms < chip.measurement_ms:  # (a clock set back counts as long enough)
        raise Err(
            f"{_where()}: the measurement started {elapsed_ms} ms ago is not "
            f"finished (needs {chip.measurement_ms} ms); is the poll interval that short?"
        )
    try:
        reading: tuple[float, float] | None = chip.read_measurement()
        failure = None
    except Err as exc:
        reading, failure = None, f"{_where()}: reading the measurement failed: {exc.value}"
    except DriverError as exc:
        reading, failure = None, f"{_where()}: {exc}"
    # Start the next measurement even after a failed read, so the next poll has data.
    start_failure = _start(chip, now_ms)
    if failure is not None:
        raise Err(failure)
    if start_failure is not None:
        raise Err(start_failure)
    return reading


class Sensor(exports.Sensor):
    def describe(self) -> PluginInfo:
        return PluginInfo("SHT31 temperature and humidity", VERSION, MEASUREMENTS)

    def poll(self) -> list[Measurement]:
        global _chip
        if _chip is None:  # configure() not called: run on the defaults
            _chip = Chip(i2c.transfer, _config.i2c_address, _config.repeatability)
        try:
            reading = _measure(_chip)
        except Err as exc:
            with contextlib.suppress(Err):  # the measurement error is the one to report
                _set_led(ERROR_RGB)
            raise exc from None
        if reading is None:
            _set_led(WARMING_UP_RGB)
            return []
        temperature, humidity = reading
        _set_led(_humidity_rgb(humidity))
        measurements = [
            Measurement("temperature", temperature, "°C", "temperature", None),
            Measurement("humidity", humidity, "%", "humidity", None),
        ]
        dew_point = dew_point_c(temperature, humidity)
        if dew_point is not None:
            measurements.append(Measurement("dew_point", dew_point, "°C", "temperature", None))
        return measurements
