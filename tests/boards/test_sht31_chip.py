"""The emulated SHT31 follows the Sensirion datasheet."""

from __future__ import annotations

import pytest

from wasihost.boards.sht31_chip import Sht31Chip, crc8


def test_crc_matches_the_datasheet_example() -> None:
    assert crc8(b"\xbe\xef") == 0x92  # SHT3x-DIS, table 19


def test_single_shot_measurement_decodes_per_the_datasheet() -> None:
    chip = Sht31Chip()
    chip.set_environment(23.5, 61.0)
    assert chip.transfer(b"\x24\x00", 0) == b""
    data = chip.transfer(b"", 6)
    assert crc8(data[0:2]) == data[2] and crc8(data[3:5]) == data[5]
    temperature = -45 + 175 * int.from_bytes(data[0:2], "big") / 65535
    humidity = 100 * int.from_bytes(data[3:5], "big") / 65535
    assert temperature == pytest.approx(23.5, abs=0.1)
    assert humidity == pytest.approx(61.0, abs=0.2)


def test_reading_without_a_measurement_is_a_nack() -> None:
    chip = Sht31Chip()
    with pytest.raises(ValueError, match="NACK"):
        chip.transfer(b"", 6)
    chip.transfer(b"\x24\x00", 0)
    chip.transfer(b"", 6)
    with pytest.raises(ValueError, match="NACK"):  # one measurement, read once
        chip.transfer(b"", 6)
    with pytest.raises(ValueError, match="0x1234"):
        chip.transfer(b"\x12\x34", 0)
