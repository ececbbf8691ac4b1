"""CPU temperature from a temporary sysfs tree; memory, load, uptime from /proc files."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasihost.boards.pi.fakes import FakePi
from wasihost.boards.pi.procfs import ProcStats
from wasihost.boards.pi.thermal import CpuThermal
from wasihost.errors import BoardError


@pytest.fixture
def pi(tmp_path: Path) -> FakePi:
    return FakePi(tmp_path)


def test_cpu_temperature_is_milli_degrees_rounded(pi: FakePi) -> None:
    (pi.sys / "class/thermal/thermal_zone0/temp").write_text("61873\n")
    assert CpuThermal(pi.sys).read() == 61.9


def test_missing_thermal_zone_is_a_problem_not_a_zero(pi: FakePi) -> None:
    pi.remove("sys/class/thermal/thermal_zone0/temp")
    thermal = CpuThermal(pi.sys)
    assert thermal.problem() is not None
    with pytest.raises(BoardError, match="CPU temperature missing"):
        thermal.read()


def test_garbage_in_the_thermal_zone_is_an_error(pi: FakePi) -> None:
    (pi.sys / "class/thermal/thermal_zone0/temp").write_text("hot\n")
    with pytest.raises(BoardError, match="does not hold a number"):
        CpuThermal(pi.sys).read()


def test_memory_load_and_uptime_come_from_proc(pi: FakePi) -> None:
    stats = ProcStats(pi.proc, cpu_count=lambda: 4)
    memory = stats.memory()
    assert (memory.total_kb, memory.available_kb) == (8245056, 7412345)
    assert stats.cpu_load_percent() == 13.0  # 0.52 over 4 cores
    assert stats.uptime_seconds() == 12345


def test_a_malformed_proc_file_is_an_error(pi: FakePi) -> None:
    (pi.proc / "meminfo").write_text("MemTotal: 100 kB\n")
    with pytest.raises(BoardError, match="lacks MemTotal/MemAvailable"):
        ProcStats(pi.proc).memory()
    pi.remove("proc/uptime")
    with pytest.raises(BoardError, match="cannot read"):
        ProcStats(pi.proc).uptime_seconds()
