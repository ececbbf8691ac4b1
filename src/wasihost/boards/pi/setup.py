"""How this Pi is set up: ``config.txt``, GPIO chip labels, device-file groups.

Facts ``wasihost doctor`` reads to explain a problem the board reports
(which line of ``config.txt`` is missing, which chip is the header's,
which group would open a device file). The ``Machine`` record bundles
where to look and how to ask, so tests can point it at a temporary tree.
"""

from __future__ import annotations

import fcntl
import getpass
import grp
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HEADER_CHIPS = {
    "pinctrl-rp1": "Raspberry Pi 5",
    "pinctrl-bcm2711": "Raspberry Pi 4",
    "pinctrl-bcm2835": "Raspberry Pi 3 or older",
}
GPIO_GET_CHIPINFO_IOCTL = 0x8044B401  # _IOR(0xB4, 0x01, struct gpiochip_info), 68 bytes
ON = {"", "on", "true", "yes", "okay"}


def devicetree_model(sys_root: Path) -> str | None:
    """The machine's own name (``Raspberry Pi 5 Model B Rev 1.0``), as its
    firmware gives it; None off a Pi. Doctor shows it; HA shows it as the
    device's model."""
    path = sys_root / "firmware/devicetree/base/model"
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rstrip("\0\n").strip()[:64] or None


def _rw_access(path: Path) -> bool:
    return os.access(path, os.R_OK | os.W_OK)


def _group_of(path: Path) -> str | None:
    try:
        return grp.getgrgid(path.stat().st_gid).gr_name
    except (OSError, KeyError):
        return None


def _membership(user: str, group: str) -> tuple[bool, bool]:
    """(listed in /etc/group, active in this process): a user just added to a
    group gets it only in sessions started afterwards."""
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return False, False
    return user in entry.gr_mem, entry.gr_gid in os.getgroups()


def _chip_label(path: Path) -> str | None:
    """The label the kernel gives a GPIO chip (GPIO_GET_CHIPINFO_IOCTL)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = bytearray(68)  # name[32], label[32], lines (u32)
        fcntl.ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, info, True)
    except OSError:
        return None
    finally:
        os.close(fd)
    return info[32:64].split(b"\0", 1)[0].decode("ascii", "replace")


@dataclass(frozen=True)
class Machine:
    """Where doctor looks and how it asks; the defaults are this machine."""

    sys_root: Path = Path("/sys")
    proc_root: Path = Path("/proc")
    dev_root: Path = Path("/dev")
    boot_configs: tuple[Path, ...] = (Path("/boot/firmware/config.txt"), Path("/boot/config.txt"))
    user: str = field(default_factory=getpass.getuser)
    access: Callable[[Path], bool] = _rw_access
    group_of: Callable[[Path], str | None] = _group_of
    membership: Callable[[str, str], tuple[bool, bool]] = _membership
    chip_label: Callable[[Path], str | None] = _chip_label


@dataclass(frozen=True)
class BootConfig:
    """The active lines of ``config.txt`` (comments dropped; section filters
    such as ``[pi4]`` are ignored, so a line under one counts everywhere)."""

    path: Path
    lines: tuple[str, ...]

    @classmethod
    def find(cls, candidates: tuple[Path, ...]) -> BootConfig | None:
        for path in candidates:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
            return cls(path, tuple(line for line in lines if line))
        return None

    def dtparam_on(self, *names: str) -> bool:
        for line in self.lines:
            if line.startswith("dtparam="):
                for item in line.removeprefix("dtparam=").split(","):
                    name, _, value = item.partition("=")
                    if name.strip() in names and value.strip().lower() in ON:
                        return True
        return False

    def overlays(self, name: str) -> list[dict[str, str]]:
        found = []
        for line in self.lines:
            if line.startswith("dtoverlay="):
                overlay, *params = line.removeprefix("dtoverlay=").split(",")
                if overlay.strip() == name:
                    found.append(dict(p.partition("=")[::2] for p in params))
        return found

    def has(self, line: str) -> bool:
        return line in self.lines
