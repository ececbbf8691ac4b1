"""The I2C bus through ``smbus2`` on ``/dev/i2c-N``.

Write-then-read is ONE ``I2C_RDWR`` ioctl (a write message and a read
message joined by a repeated start), which is what register-based chips
such as the BME680 expect: two separate transfers would put a stop
between them, and another process on the bus could move the register
pointer in that gap. A pure write or a pure read is a single message.

The bus is opened once and reused (opening per transfer costs a syscall
pair and a udev-visible open each poll). If it cannot be opened at start,
the board still starts: transfers raise the reason, and each one tries to
open the bus again, so enabling I2C and restarting nothing else recovers
once the device appears. ``smbus2`` is imported lazily, only here.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from wasihost.boards.base import BoardProblem
from wasihost.boards.pi.problems import RELOGIN, describe, missing_library, open_failure
from wasihost.errors import BoardError


class Bus(Protocol):
    """The part of ``smbus2.SMBus`` used here."""

    def i2c_rdwr(self, *messages: Any) -> None: ...

    def close(self) -> None: ...


class Messages(Protocol):
    """The part of ``smbus2.i2c_msg`` used here (static constructors)."""

    def write(self, address: int, buf: bytes) -> Any: ...

    def read(self, address: int, length: int) -> Any: ...


def enable_fix(bus: int) -> str:
    if bus == 1:
        return (
            "sudo raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on in "
            "/boot/firmware/config.txt), then sudo reboot"
        )
    return f"enable I2C bus {bus} with its dtoverlay (e.g. dtoverlay=i2c{bus}), then sudo reboot"


class SmbusI2c:
    """Combined I2C transactions on ``/dev/i2c-<bus>``; thread-safe.

    ``open_bus`` (a path → bus) and ``messages`` are the seams tests replace;
    by default both come from ``smbus2``.
    """

    def __init__(
        self,
        bus: int = 1,
        dev_root: Path = Path("/dev"),
        open_bus: Callable[[str], Bus] | None = None,
        messages: Messages | None = None,
    ) -> None:
        self.number = bus
        self.path = dev_root / f"i2c-{bus}"
        self._lock = threading.Lock()
        self._bus: Bus | None = None
        self._problem: BoardProblem | None = None
        self._library_missing = False
        if open_bus is None or messages is None:
            try:
                smbus2: Any = importlib.import_module("smbus2")
            except ImportError:
                self._library_missing = True
                self._problem = missing_library("i2c", "I2C", "smbus2")
                return
            open_bus = open_bus or smbus2.SMBus
            messages = messages or smbus2.i2c_msg
        self._open_bus: Callable[[str], Bus] = open_bus
        self._messages: Messages = messages
        self._open()

    def _open(self) -> Bus | None:
        try:
            self._bus = self._open_bus(str(self.path))
        except OSError as exc:
            self._problem = open_failure(
                "i2c", "I2C", self.path, exc, enable_fix(self.number), "i2c"
            )
            return None
        self._problem = None
        return self._bus

    def problem(self) -> BoardProblem | None:
        return self._problem

    def transfer(self, address: int, data: bytes, read_len: int) -> bytes:
        """Write ``data`` then read ``read_len`` bytes in one transaction.

        Both empty is a zero-length write: the "quick" probe ``i2cdetect``
        uses, answering only whether a device acknowledges.
        """
        with self._lock:
            bus = self._bus
            if bus is None and not self._library_missing:
                bus = self._open()
            if bus is None:
                assert self._problem is not None
                raise self._problem.error()
            messages = []
            if data or not read_len:
                messages.append(self._messages.write(address, bytes(data)))
            read = self._messages.read(address, read_len) if read_len else None
            if read is not None:
                messages.append(read)
            try:
                bus.i2c_rdwr(*messages)
            except OSError as exc:
                if exc.errno in (errno.ENODEV, errno.EBADF):  # adapter gone: reopen next time
                    self._close_bus()
                raise BoardError(self._describe(address, exc)) from None
            return bytes(read) if read is not None else b""

    def _describe(self, address: int, exc: OSError) -> str:
        where = f"I2C bus {self.number}"
        code = exc.errno
        if code in (errno.ENXIO, errno.EREMOTEIO):
            return (
                f"{where}: no device answered at 0x{address:02x} "
                "(NACK: check wiring, power and the address)"
            )
        if code == errno.EIO:
            return (
                f"{where}: I/O error talking to 0x{address:02x} "
                "(EIO: loose wire, missing pull-ups or a bus glitch)"
            )
        if code == errno.ETIMEDOUT:
            return (
                f"{where}: timed out talking to 0x{address:02x} "
                "(ETIMEDOUT: a device may be holding the bus low; power-cycle it)"
            )
        if code in (errno.EACCES, errno.EPERM):
            return (
                f"{where}: permission denied on {self.path} "
                f"(fix: sudo usermod -aG i2c $USER, {RELOGIN})"
            )
        return f"{where}: error talking to 0x{address:02x}: {describe(exc)}"

    def _close_bus(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            # Closing a dead adapter's file may fail; there is nothing to do about it.
            with contextlib.suppress(OSError):
                bus.close()

    def close(self) -> None:
        with self._lock:
            self._close_bus()
