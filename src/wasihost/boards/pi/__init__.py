"""The Raspberry Pi board (Pi 4 and Pi 5, 64-bit Raspberry Pi OS), one module per device.

``dht22`` (kernel IIO driver), ``i2c`` (smbus2), ``thermal`` and ``procfs``
(sysfs and /proc), ``ws2812`` (the LED strip over SPI), ``relay`` and
``buzzer`` (libgpiod 2.x); ``board`` puts them behind the ``Board``
protocol. Beside them: ``problems`` (what a device lacks and its fix),
``setup`` (config.txt, chip labels, groups: what ``wasihost doctor``
reads), ``doctor`` (that command's checks and report), ``safe_off``
(relays off after a crash, run by systemd) and ``fakes`` (the test
backend, like gpiozero's mock pins). Hardware libraries are imported
lazily inside the device modules, so importing this package needs none
of them.
"""

from wasihost.boards.base import BoardProblem
from wasihost.boards.pi.board import PiBoard

__all__ = ["BoardProblem", "PiBoard"]
