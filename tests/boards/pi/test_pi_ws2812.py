"""The WS2812B driver against a fake SPI device that keeps the bit stream.

``decode_ws2812`` reads the stream as the chip does, by the width of each
high pulse at the SPI clock rate, so these tests check timing and order
against the datasheet rather than against the encoder's own table.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from wasihost.boards.pi.fakes import FakePi, decode_ws2812
from wasihost.boards.pi.ws2812 import SPI_HZ, SpidevFile, Ws2812Strip, encode
from wasihost.errors import BoardError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture
def pi(tmp_path: Path) -> FakePi:
    return FakePi(tmp_path)


def strip(pi: FakePi, count: int = 3, brightness: float = 1.0) -> Ws2812Strip:
    return Ws2812Strip(str(pi.dev / "spidev0.0"), count, brightness, pi.sys, pi.spi.open, pi.read)


def test_colours_survive_the_wire_at_full_brightness() -> None:
    colors = [RED, GREEN, BLUE, (1, 128, 254)]
    latched, _ = decode_ws2812(encode(colors, 1.0), SPI_HZ)
    assert latched == [colors]


def test_the_wire_order_is_green_red_blue() -> None:
    frame = encode([(0xFF, 0x00, 0x0F)], 1.0)
    body = frame[90:99]  # after the 300 µs reset gap: three SPI bytes per colour byte
    assert body[0:3] == bytes([0b10010010, 0b01001001, 0b00100100])  # green 0x00: 100 x 8
    assert body[3:6] == bytes([0b11011011, 0b01101101, 0b10110110])  # red 0xFF: 110 x 8
    assert body[6:9] == bytes([0b10010010, 0b01001101, 0b10110110])  # blue 0x0F


def test_brightness_scales_every_channel() -> None:
    latched, _ = decode_ws2812(encode([(255, 100, 10), (0, 1, 2)], 0.3), SPI_HZ)
    assert latched == [[(77, 30, 3), (0, 0, 1)]]


def test_frames_start_and_end_with_a_latching_reset_gap() -> None:
    frame = encode([RED] * 2, 1.0)
    _, gaps = decode_ws2812(frame, SPI_HZ)
    assert len(gaps) == 2 and all(gap >= 280_000 for gap in gaps)  # ns; V5 parts need 280 µs
    assert frame[-1] == 0 and frame[0] == 0


def test_one_frame_per_write_on_an_spi_device_opened_once(pi: FakePi) -> None:
    leds = strip(pi, count=3, brightness=0.5)
    leds.write([RED, GREEN, BLUE])
    leds.write([BLUE, BLUE, BLUE])
    assert len(pi.spi.ports) == 1 and pi.spi.ports[0].hz == 2_400_000
    assert len(pi.spi.frames) == 2
    assert pi.spi.shown() == [(0, 0, 128)] * 3


def test_a_wrong_number_of_colours_is_refused(pi: FakePi) -> None:
    with pytest.raises(BoardError, match="LED strip has 3 LEDs, got 2 colours"):
        strip(pi).write([RED, RED])


def test_close_leaves_the_strip_dark(pi: FakePi) -> None:
    leds = strip(pi)
    leds.write([RED] * 3)
    leds.close()
    assert pi.spi.shown() == [(0, 0, 0)] * 3
    assert pi.spi.ports[0].closed


def test_missing_spi_is_not_fatal_and_says_how_to_enable_it(pi: FakePi) -> None:
    pi.remove("dev/spidev0.0")
    leds = strip(pi)
    with pytest.raises(BoardError, match=r"LED strip missing: .*spidev0.0 .*dtparam=spi=on"):
        leds.write([RED] * 3)
    (pi.dev / "spidev0.0").touch()
    leds.write([RED] * 3)  # enabled later: the next write opens it
    assert pi.spi.shown() == [RED] * 3


def test_a_strip_too_long_for_the_spidev_buffer_says_how_to_grow_it(pi: FakePi) -> None:
    leds = strip(pi, count=500)  # 4680-byte frames, default bufsiz 4096
    problem = leds.problem()
    assert problem is not None and "spidev.bufsiz=65536" in problem.fix
    with pytest.raises(BoardError, match="4680-byte frame"):
        leds.write([RED] * 500)


def test_spi_write_errors_are_board_errors(pi: FakePi) -> None:
    leds = strip(pi)
    pi.spi.fail_with = errno.EMSGSIZE
    with pytest.raises(BoardError, match=r"SPI write to .* failed: .*EMSGSIZE"):
        leds.write([RED] * 3)


def test_the_real_spidev_opener_refuses_a_file_that_is_not_spi(tmp_path: Path) -> None:
    """The ioctl path itself: a regular file answers ENOTTY to SPI_IOC_WR_MODE."""
    fake = tmp_path / "spidev0.0"
    fake.touch()
    with pytest.raises(OSError) as refused:
        SpidevFile.open(str(fake), SPI_HZ)
    assert refused.value.errno == errno.ENOTTY
    leds = Ws2812Strip(str(fake), 3, 1.0, tmp_path)
    problem = leds.problem()
    assert problem is not None and "ioctl" in problem.what


def test_the_decoder_rejects_timings_a_strip_could_not_read() -> None:
    with pytest.raises(ValueError, match="high pulse"):
        decode_ws2812(bytes(90) + b"\xff\xff" + bytes(90), SPI_HZ)
    with pytest.raises(ValueError, match="never latched"):
        decode_ws2812(encode([RED], 1.0)[:-90], SPI_HZ)
