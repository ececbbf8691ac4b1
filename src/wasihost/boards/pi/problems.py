"""What is missing on a Pi, said once, in the same words everywhere.

(``BoardProblem`` itself lives in ``boards.base``: every board reports them.)

A device that cannot start (library not installed, interface off, no
permission, line busy) does not stop the host: it records a
``BoardProblem`` and raises it as a ``BoardError`` each time it is used.
The same record feeds ``PiBoard.problems()``, which ``wasihost doctor`` and
``/api/plugins`` show, so a plugin author, an operator and the doctor all
read the same reason and the same fix.
"""

from __future__ import annotations

import errno
from pathlib import Path

from wasihost.boards.base import BoardProblem

RELOGIN = "then log out and back in (or restart the service)"
PI_EXTRA = "pip install 'wasihost[pi]'"


def missing_library(device: str, label: str, package: str) -> BoardProblem:
    return BoardProblem(device, label, f"the {package} package", PI_EXTRA)


def open_failure(
    device: str, label: str, path: Path | str, exc: OSError, enable: str, group: str
) -> BoardProblem:
    """The problem an ``OSError`` opening a device file means.

    ``enable`` says how to switch the interface on (for ENOENT/ENODEV);
    ``group`` is the group Raspberry Pi OS gives the device file, for EACCES.
    """
    if exc.errno in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return BoardProblem(device, label, f"{path} (the interface is off)", enable)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return BoardProblem(
            device,
            label,
            f"permission to open {path}",
            f"sudo usermod -aG {group} $USER, {RELOGIN}",
        )
    if exc.errno == errno.EBUSY:
        return BoardProblem(
            device,
            label,
            f"{path} is held by another process",
            "stop the other user (is wasihost already running? `gpioinfo` names consumers)",
            busy=True,
        )
    reason = exc.strerror or str(exc)
    return BoardProblem(device, label, f"{path} ({reason})", "see `wasihost doctor`")


def errno_name(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def describe(exc: OSError) -> str:
    """An ``OSError`` as the kernel's words and its errno name: "No such device (ENODEV)"."""
    return f"{exc.strerror or exc} ({errno_name(exc)})"
