"""The DHT22 through the kernel's IIO driver (``dtoverlay=dht11,gpiopin=N``).

Why the kernel and not userspace: the DHT22 answers with 40 bits whose
meaning is in pulse widths of 26-70 µs, which a Python process on a busy
Linux system cannot time reliably; the kernel's ``dht11`` driver (which
also decodes the DHT22/AM2302) timestamps the edges in an interrupt
handler and needs no root. The userspace libraries on PyPI were checked
and none fits Pi 4 and Pi 5 without root: ``adafruit-circuitpython-dht``
needs Blinka's ``libgpiod_pulsein`` helper, which does not work on the
Pi 5, or a Python bit-bang; ``pigpio-dht`` needs the ``pigpiod`` daemon
(root, and no Pi 5 support); ``Adafruit_DHT``, ``rpi-dht`` and
``dht-pi`` are unmaintained or unproven. So the overlay is required and
``wasihost doctor`` says how to enable it.

The driver's files: ``in_temp_input`` (milli-°C) and
``in_humidityrelative_input`` (milli-%RH) of the IIO device whose ``name``
is ``dht11``. Each read of a file makes the driver measure (unless its own
last good measurement is under 2 s old). A read often fails: ``EIO`` for a
corrupt frame, ``ETIMEDOUT`` when the sensor does not answer (the driver
waits up to 1 s for it). So a read here retries within a bounded budget,
caches the last good reading for the sensor's 2 s minimum sampling
interval, and turns a failure into a ``BoardError`` with the reason; it
never returns a made-up value.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from pathlib import Path

from wasihost.boards.base import BoardProblem, Dht22Reading
from wasihost.boards.pi.problems import describe
from wasihost.boards.pi.thermal import read_text
from wasihost.errors import BoardError

IIO_DEVICES = Path("bus/iio/devices")
DRIVER_NAME = "dht11"  # the kernel driver's name, also for the DHT22
TEMPERATURE = "in_temp_input"
HUMIDITY = "in_humidityrelative_input"
# The DHT22 datasheet: at most one measurement every 2 s, -40..80 °C, 0..100 %RH.
MIN_INTERVAL_S = 2.0
# How long the kernel driver waits for a sensor that does not answer
# (wait_for_completion_killable_timeout(..., HZ) in drivers/iio/humidity/dht11.c).
DRIVER_TIMEOUT_S = 1.0
TEMPERATURE_RANGE = (-40.0, 80.0)
HUMIDITY_RANGE = (0.0, 100.0)


def overlay_line(pin: int) -> str:
    return f"dtoverlay={DRIVER_NAME},gpiopin={pin}"


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ETIMEDOUT:
        return "no answer from the sensor (ETIMEDOUT: check power, wiring and the pull-up)"
    if exc.errno == errno.EIO:
        return "corrupt frame (EIO: bad checksum or missed edges)"
    return describe(exc)


class IioDht22:
    """One DHT22 on ``pin``, read through the IIO device the overlay creates.

    ``tries`` reads at most, and a retry starts only if it could run into the
    driver's 1 s timeout and still end within ``budget_s`` of the first try:
    so a silent sensor costs one timeout plus a fast failure or two, never
    more than the budget. ``monotonic``, ``sleep`` and ``read`` are the seams
    tests replace; the defaults are the real clock and files.
    Thread-safe: concurrent readers wait for one measurement and share it.
    """

    def __init__(
        self,
        pin: int,
        sys_root: Path = Path("/sys"),
        *,
        tries: int = 3,
        budget_s: float = 1.5,
        retry_delay_s: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        read: Callable[[Path], str] = read_text,
    ) -> None:
        self.pin = pin
        self.devices = sys_root / IIO_DEVICES
        self.tries = tries
        self.budget_s = budget_s
        self.retry_delay_s = retry_delay_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._read = read
        self._lock = threading.Lock()
        self._last: tuple[float, Dht22Reading] | None = None
        self._device: Path | None = None

    def find_device(self) -> Path | None:
        """The IIO device for this pin: the ``dht11`` device whose devicetree
        node is ``dht11@<pin>`` (the overlay names it so), or the only one."""
        found: list[Path] = []
        for device in sorted(self.devices.glob("iio:device*")):
            try:
                name = self._read(device / "name").strip()
            except OSError:
                continue
            if name == DRIVER_NAME:
                found.append(device)
        if len(found) <= 1:
            return found[0] if found else None
        wanted = {f"{DRIVER_NAME}@{self.pin:x}", f"{DRIVER_NAME}@{self.pin}"}
        for device in found:
            node = device / "of_node"
            if node.is_symlink() and node.resolve().name in wanted:
                return device
        return None

    def problem(self) -> BoardProblem | None:
        if self._device is None:
            self._device = self.find_device()
        if self._device is not None:
            return None
        return BoardProblem(
            "dht22",
            "DHT22",
            f"the kernel DHT driver for GPIO {self.pin} (no IIO device named {DRIVER_NAME})",
            f"add {overlay_line(self.pin)} to /boot/firmware/config.txt, then sudo reboot",
        )

    def read(self, pin: int) -> Dht22Reading:
        """One reading, at most ``MIN_INTERVAL_S`` old; raises BoardError."""
        if pin != self.pin:
            raise BoardError(
                f"DHT22 on GPIO {pin}: this board reads the DHT22 on GPIO {self.pin} "
                f"([sensors.dht22] gpio_pin, {overlay_line(self.pin)})"
            )
        with self._lock:
            started = self._monotonic()
            if self._last is not None and started - self._last[0] < MIN_INTERVAL_S:
                return self._last[1]
            problem = self.problem()
            if problem is not None:
                raise problem.error()
            reason = "no try made"
            attempts = 0
            while attempts < self.tries:
                if attempts:
                    worst = self._monotonic() - started + self.retry_delay_s + DRIVER_TIMEOUT_S
                    if worst > self.budget_s:
                        break
                    self._sleep(self.retry_delay_s)
                attempts += 1
                try:
                    reading = self._measure()
                except _TryFailed as failed:
                    reason = str(failed)
                    continue
                self._last = (self._monotonic(), reading)
                return reading
            elapsed = self._monotonic() - started
            raise BoardError(
                f"DHT22 on GPIO {pin}: no reading after {attempts} "
                f"tr{'y' if attempts == 1 else 'ies'} in {elapsed:.1f} s: {reason}"
            )

    def _measure(self) -> Dht22Reading:
        """One try: both files (the driver serves both from one measurement)."""
        device = self._device
        assert device is not None  # problem() found it
        try:
            temperature = int(self._read(device / TEMPERATURE).strip()) / 1000.0
            humidity = int(self._read(device / HUMIDITY).strip()) / 1000.0
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENODEV):
                self._device = None  # the overlay was unloaded; look again next time
            raise _TryFailed(_reason(exc)) from None
        except ValueError:
            raise _TryFailed("the driver returned something other than a number") from None
        low, high = TEMPERATURE_RANGE
        if not low <= temperature <= high:
            raise _TryFailed(f"temperature {temperature} °C outside the sensor's {low}..{high}")
        low, high = HUMIDITY_RANGE
        if not low <= humidity <= high:
            raise _TryFailed(f"humidity {humidity} %RH outside {low}..{high}")
        return Dht22Reading(round(temperature, 1), round(humidity, 1))


class _TryFailed(Exception):
    """One try failed; the message is the reason reported if all do."""
