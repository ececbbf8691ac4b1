"""The Pi board's I2C driver against a fake SMBus answering like a BME680.

The fake records every ``i2c_rdwr`` so the tests can see that a
write-then-read is one combined transaction and the bus is opened once.
"""

from __future__ import annotations

import errno
import importlib
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.pi.fakes import FakeMessage, FakePi
from wasihost.boards.pi.i2c import SmbusI2c
from wasihost.errors import BoardError


@pytest.fixture
def pi(tmp_path: Path) -> FakePi:
    return FakePi(tmp_path)


def i2c(pi: FakePi, bus: int = 1) -> SmbusI2c:
    return SmbusI2c(bus, pi.dev, pi.adapter.open, FakeMessage)


def test_write_then_read_is_one_combined_transaction(pi: FakePi) -> None:
    assert i2c(pi).transfer(0x77, b"\xd0", 1) == b"\x61"  # BME680 chip id
    assert pi.bus.transactions == [[("w", 0x77, b"\xd0"), ("r", 0x77, 1)]]


def test_pure_write_pure_read_and_quick_probe_are_single_messages(pi: FakePi) -> None:
    bus = i2c(pi)
    assert bus.transfer(0x77, b"\x74\x00", 0) == b""
    assert bus.transfer(0x77, b"", 1) == b"\x00"  # reads on from the register pointer
    assert bus.transfer(0x77, b"", 0) == b""
    assert pi.bus.transactions[-3:] == [
        [("w", 0x77, b"\x74\x00")],
        [("r", 0x77, 1)],
        [("w", 0x77, b"")],
    ]


def test_the_bus_is_opened_once_and_reused(pi: FakePi) -> None:
    bus = i2c(pi)
    for _ in range(5):
        bus.transfer(0x77, b"\xd0", 1)
    assert pi.adapter.opened == [str(pi.dev / "i2c-1")]
    bus.close()
    assert pi.bus.closed


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (errno.ENXIO, "I2C bus 1: no device answered at 0x77"),
        (errno.EREMOTEIO, "I2C bus 1: no device answered at 0x77"),
        (errno.EIO, "I/O error talking to 0x77 (EIO"),
        (errno.ETIMEDOUT, "timed out talking to 0x77 (ETIMEDOUT"),
        (errno.EACCES, "permission denied on"),
        (errno.EINVAL, "error talking to 0x77: EINVAL (EINVAL)"),
    ],
)
def test_bus_errors_become_clear_messages(pi: FakePi, code: int, message: str) -> None:
    pi.bus.fail_with.append(code)
    with pytest.raises(BoardError) as failure:
        i2c(pi).transfer(0x77, b"\xd0", 1)
    assert message in str(failure.value)
    if code == errno.EACCES:
        assert "sudo usermod -aG i2c $USER" in str(failure.value)


def test_an_empty_address_is_a_nack(pi: FakePi) -> None:
    with pytest.raises(BoardError, match="no device answered at 0x44"):
        i2c(pi).transfer(0x44, b"\x24\x00", 6)


def test_missing_bus_is_not_fatal_and_recovers_once_enabled(pi: FakePi) -> None:
    pi.remove("dev/i2c-1")
    bus = i2c(pi)
    problem = bus.problem()
    assert problem is not None and "dtparam=i2c_arm=on" in problem.fix
    with pytest.raises(BoardError, match=r"I2C missing: .*/dev/i2c-1 \(the interface is off\)"):
        bus.transfer(0x77, b"\xd0", 1)
    (pi.dev / "i2c-1").touch()  # I2C enabled (and the host not restarted)
    assert bus.transfer(0x77, b"\xd0", 1) == b"\x61"
    assert bus.problem() is None


def test_no_permission_names_the_group(pi: FakePi) -> None:
    pi.adapter.deny = True
    with pytest.raises(BoardError, match=r"permission to open .*usermod -aG i2c \$USER"):
        i2c(pi).transfer(0x77, b"\xd0", 1)


def test_bus_number_is_configurable(pi: FakePi) -> None:
    (pi.dev / "i2c-3").touch()
    i2c(pi, bus=3).transfer(0x77, b"\xd0", 1)
    assert pi.adapter.opened == [str(pi.dev / "i2c-3")]


def test_without_smbus2_the_fix_is_the_pi_extra(
    pi: FakePi, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.import_module

    def no_smbus2(name: str, package: str | None = None) -> Any:
        if name == "smbus2":
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_smbus2)
    bus = SmbusI2c(1, pi.dev)
    with pytest.raises(BoardError, match=r"I2C missing: the smbus2 package \(fix: pip install"):
        bus.transfer(0x77, b"\xd0", 1)


def test_real_smbus2_messages_through_the_fake_bus(pi: FakePi) -> None:
    """The same transaction built from smbus2's own ``i2c_msg`` (ctypes)."""
    smbus2 = pytest.importorskip("smbus2")
    bus = SmbusI2c(1, pi.dev, pi.adapter.open, smbus2.i2c_msg)
    assert bus.transfer(0x77, b"\xd0", 1) == b"\x61"
    assert bus.transfer(0x77, b"\x8a", 3) == bytes([0x65, 0x67, 0x03])  # par_t2, par_t3
    assert pi.bus.transactions[0] == [("w", 0x77, b"\xd0"), ("r", 0x77, 1)]
