"""A 32-bit OS said plainly, before anything imports wasmtime (issue 20).

The command-line tests run ``wasihost.cli.main`` in a child Python that
pretends to be 32-bit Raspberry Pi OS on a Pi 4's 64-bit kernel
(``sys.maxsize`` of a 32-bit build, which is what wasmtime itself tests, and
``uname -m`` aarch64) and that cannot import wasmtime: a meta-path hook
raises wasmtime's own error and records the attempt.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wasihost.boards.platform_check import (
    WASMTIME_ERROR,
    PlatformFacts,
    problem,
)

CHILD = textwrap.dedent(
    """
    import importlib.abc, platform, sys

    class NoWasmtime(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] == "wasmtime":
                print("IMPORTED-WASMTIME", file=sys.stderr)
                raise RuntimeError({error!r})
            return None

    sys.meta_path.insert(0, NoWasmtime())
    sys.maxsize = 2**31 - 1
    platform.machine = lambda: {machine!r}
    from wasihost.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def wasihost(*argv: str, machine: str = "aarch64") -> subprocess.CompletedProcess[str]:
    code = CHILD.format(error=WASMTIME_ERROR, machine=machine)
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def pi_config(tmp_path: Path) -> Path:
    path = tmp_path / "host.toml"
    path.write_text('[board]\nkind = "pi"\n')
    return path


def test_run_on_a_32_bit_os_says_what_why_and_the_fix(pi_config: Path) -> None:
    result = wasihost("run", "--config", str(pi_config))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "IMPORTED-WASMTIME" not in result.stderr
    assert result.stdout == ""
    err = result.stderr
    assert err.startswith("wasihost: error: this OS is 32-bit: a 64-bit kernel (aarch64)")
    assert "why:   wasmtime, which runs the plugins" in err
    assert 'fix:   install the 64-bit image, "Raspberry Pi OS (64-bit)"' in err
    assert "getconf LONG_BIT says 64 and dpkg --print-architecture says arm64" in err


@pytest.mark.parametrize(
    "argv", [("build",), ("check", "plugins/dht22"), ("reference",), ("new", "x")]
)
def test_every_other_command_stops_the_same_way(argv: tuple[str, ...]) -> None:
    result = wasihost(*argv)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and "IMPORTED-WASMTIME" not in result.stderr
    assert "this OS is 32-bit" in result.stderr


def test_version_still_works() -> None:
    result = wasihost("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wasihost ") and result.stderr == ""


def test_doctor_lists_the_os_first_with_one_fix_and_no_wasmtime(pi_config: Path) -> None:
    result = wasihost("doctor", "--config", str(pi_config))
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""  # no traceback, and wasmtime was never imported
    findings = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert findings[0].startswith("  FAIL  OS and CPU: this OS is 32-bit"), result.stdout
    assert "getconf LONG_BIT says 64" in findings[0]
    fixes = [line for line in findings if line.strip().startswith("fix:")]
    assert fixes == [findings[1]] and "Raspberry Pi OS (64-bit)" in fixes[0]
    assert "The devices are checked once the OS is 64-bit" in result.stdout


def test_doctor_on_a_simulated_board_still_checks_the_os(tmp_path: Path) -> None:
    path = tmp_path / "host.toml"
    path.write_text('[board]\nkind = "sim"\n')
    result = wasihost("doctor", "--config", str(path))
    assert result.returncode == 1 and result.stderr == ""
    assert "FAIL  OS and CPU: this OS is 32-bit" in result.stdout


def test_a_pi_1_cpu_is_told_it_needs_another_pi() -> None:
    found = problem(PlatformFacts(32, "armv6l", 0xB76))
    assert found is not None
    assert "ARM1176" in found.what and "cannot run a 64-bit one" in found.what
    assert "a Pi 3, 4, 5 or Zero 2 W" in found.fix


def test_a_32_bit_kernel_on_a_pi_3_gets_the_image_fix() -> None:
    found = problem(PlatformFacts(32, "armv7l", 0xD03))
    assert found is not None and "Raspberry Pi OS (64-bit)" in found.fix
    assert "Cortex-A53" in found.what


def test_the_userland_decides_not_the_kernel() -> None:
    """32-bit Raspberry Pi OS on a Pi 4 boots a 64-bit kernel: uname -m says aarch64."""
    assert problem(PlatformFacts(64, "aarch64", 0xD08)) is None
    assert problem(PlatformFacts(64, "x86_64")) is None
    found = problem(PlatformFacts(32, "aarch64", 0xD08))
    assert found is not None and "runs 32-bit programs, this Python included" in found.what
    assert "Cortex-A72" in found.what


def test_a_64_bit_cpu_wasmtime_has_no_library_for() -> None:
    found = problem(PlatformFacts(64, "riscv64"))
    assert found is not None and "riscv64" in found.what and "aarch64" in found.fix


def test_the_cpu_part_comes_from_proc_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd08\n")
    assert PlatformFacts.current(cpuinfo).cpu_part == 0xD08
    assert PlatformFacts.current(tmp_path / "missing").cpu_part is None


def test_this_machine_passes() -> None:
    assert problem() is None
