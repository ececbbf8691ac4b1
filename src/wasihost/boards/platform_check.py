"""Can wasmtime run on this machine? Asked before anything imports it (issue 20).

wasmtime's Python package carries its native library only for 64-bit x86_64
and aarch64. On 32-bit Raspberry Pi OS pip still installs it (the
pure-Python wheel, with no Linux library in it), and ``import wasmtime``
then raises ``RuntimeError: wasmtime only works on 64-bit platforms right
now`` from every command. ``wasihost.cli`` asks ``problem()`` first and
says what, why and the fix instead; ``wasihost doctor`` shows it as its
first finding.

The userland decides, not the kernel: 32-bit Raspberry Pi OS on a Pi 4 or 5
boots a 64-bit kernel (``uname -m`` says aarch64) under 32-bit programs, this
Python included. So the bitness is this Python's own (``sys.maxsize``, the
test wasmtime itself makes), and ``uname -m`` and the CPU's part number in
``/proc/cpuinfo`` only say whether a 64-bit OS would run on this CPU.

Only the standard library is imported here.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path

# The architectures wasmtime's Python wheels carry a library for (uname -m).
SUPPORTED = frozenset({"x86_64", "amd64", "aarch64", "arm64"})
# What uname -m says for a 64-bit ARM CPU (armv8l: a 64-bit kernel's 32-bit personality).
ARM64_CAPABLE_MACHINES = frozenset({"aarch64", "arm64", "armv8l", "armv8b"})
# /proc/cpuinfo "CPU part" of the Raspberry Pis' cores: (name, can run a 64-bit OS, boards).
ARM_CORES = {
    0xB76: ("ARM1176", False, "Pi 1, Zero or Zero W"),
    0xC07: ("Cortex-A7", False, "Pi 2 v1.1"),
    0xD03: ("Cortex-A53", True, "Pi 3, Zero 2 W or Pi 2 v1.2"),
    0xD08: ("Cortex-A72", True, "Pi 4, 400 or CM4"),
    0xD0B: ("Cortex-A76", True, "Pi 5, 500 or CM5"),
}
WASMTIME_ERROR = "wasmtime only works on 64-bit platforms right now"
CHECK = (
    "on a 64-bit OS getconf LONG_BIT says 64 and dpkg --print-architecture says arm64 "
    "(uname -m names the kernel: aarch64 even on 32-bit Raspberry Pi OS on a Pi 4 or 5)"
)
IMAGE_FIX = (
    'install the 64-bit image, "Raspberry Pi OS (64-bit)" in Raspberry Pi Imager (this '
    "replaces the whole card: copy off what you need first), then install wasihost again"
)
PIS_THAT_CAN = "a Pi 3, 4, 5 or Zero 2 W"


@dataclass(frozen=True)
class PlatformFacts:
    """What decides whether wasmtime can run: this Python's bitness (the
    userland's), the kernel's machine (``uname -m``), the ARM core's part."""

    pointer_bits: int
    machine: str
    cpu_part: int | None = None

    @classmethod
    def current(cls, cpuinfo: Path = Path("/proc/cpuinfo")) -> PlatformFacts:
        return cls(
            pointer_bits=64 if sys.maxsize > 2**32 else 32,
            machine=platform.machine().lower(),
            cpu_part=_cpu_part(cpuinfo),
        )

    def describe(self) -> str:
        userland = "64-bit" if self.pointer_bits == 64 else "32-bit"
        core = ARM_CORES.get(self.cpu_part) if self.cpu_part is not None else None
        cpu = f", CPU {core[0]} ({core[2]})" if core else ""
        return f"{userland} userland (this Python), kernel {self.machine or 'unknown'}{cpu}"


@dataclass(frozen=True)
class PlatformProblem:
    """Why wasmtime cannot run here: ``what`` (the facts), ``why``, one ``fix``
    and how to ``check`` the OS afterwards."""

    what: str
    why: str
    fix: str
    check: str = CHECK

    def render(self) -> str:
        return (
            f"wasihost: error: {self.what}\n"
            f"  why:   {self.why}\n"
            f"  fix:   {self.fix}\n"
            f"  check: {self.check}\n"
        )


def _cpu_part(cpuinfo: Path) -> int | None:
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "CPU part":
            try:
                return int(value.strip(), 0)
            except ValueError:
                return None
    return None


def problem(facts: PlatformFacts | None = None) -> PlatformProblem | None:
    """Why wasmtime cannot run on this machine, or None when it can."""
    facts = facts or PlatformFacts.current()
    why = (
        "wasmtime, which runs the plugins, has a library only for 64-bit x86_64 and "
        "aarch64; on a 32-bit OS pip installs it without one, and importing it fails "
        f'("{WASMTIME_ERROR}")'
    )
    if facts.pointer_bits == 64:
        if facts.machine in SUPPORTED:
            return None
        return PlatformProblem(
            f"this machine is {facts.machine}: wasmtime has no library for it ({facts.describe()})",
            why,
            f"run wasihost on an x86_64 or aarch64 machine, such as {PIS_THAT_CAN} with "
            "Raspberry Pi OS (64-bit)",
        )
    core = ARM_CORES.get(facts.cpu_part) if facts.cpu_part is not None else None
    if core is not None and not core[1]:
        return PlatformProblem(
            f"this OS is 32-bit and this CPU ({core[0]}: a {core[2]}) cannot run a 64-bit one "
            f"({facts.describe()})",
            why,
            f"wasihost needs {PIS_THAT_CAN}, with Raspberry Pi OS (64-bit)",
        )
    if facts.machine in ARM64_CAPABLE_MACHINES:
        cpu = f" (CPU {core[0]}: a {core[2]})" if core else ""
        what = (
            f"this OS is 32-bit: a 64-bit kernel ({facts.machine}) runs 32-bit programs, "
            f"this Python included, as 32-bit Raspberry Pi OS does{cpu}"
        )
    else:
        what = f"this OS is 32-bit ({facts.describe()})"
    fix = IMAGE_FIX
    if core is None and facts.machine.startswith("arm"):
        fix += f" (the 64-bit image runs on {PIS_THAT_CAN}; a Pi 1, 2 v1.1 or Zero W cannot)"
    elif facts.machine in {"i386", "i486", "i586", "i686", "x86"}:
        fix = "install a 64-bit (x86_64) OS, then install wasihost again"
        return PlatformProblem(what, why, fix, "getconf LONG_BIT says 64, uname -m says x86_64")
    return PlatformProblem(what, why, fix)
