"""``[board.pi]``: strict like every other section, defaults as documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wasihost.boards import create_board
from wasihost.boards.pi import PiBoard
from wasihost.config import PiBoardConfig, parse_config
from wasihost.errors import BoardError, ConfigError


def pi_config(**keys: Any) -> dict[str, Any]:
    return {"board": {"kind": "pi", "pi": keys}}


def test_defaults() -> None:
    pi = parse_config(pi_config()).board.pi
    assert pi == PiBoardConfig(
        i2c_bus=1,
        spi_device="/dev/spidev0.0",
        led_brightness=0.3,
        gpio_chip="/dev/gpiochip0",
        buzzer_pin=17,
        buzzer_active_low=True,
        fan_pin=27,
        fan_active_low=True,
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"i2c_bus": "1"}, "board.pi.i2c_bus: Input should be a valid integer"),
        ({"led_brightness": 1.5}, "board.pi.led_brightness: Input should be less than or equal"),
        ({"buzzer_pin": 28}, "board.pi.buzzer_pin"),
        ({"fan_active_low": "yes"}, "board.pi.fan_active_low"),
        ({"dht22_pin": 4}, "board.pi.dht22_pin: unknown key"),
        ({"buzzer_pin": 27}, "buzzer_pin and fan_pin are both GPIO 27"),
        ({"fan_pin": 10}, "fan_pin: GPIO 10 belongs to the I2C or SPI bus"),
    ],
)
def test_bad_keys_are_refused_with_the_key_named(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(pi_config(**keys), Path("host.toml"))
    assert message in str(refused.value)


def test_kind_pi_builds_the_pi_board_even_without_hardware() -> None:
    """On this machine nothing of a Pi exists: the board still starts, and each
    device says what it lacks when used (or works, if this machine has it)."""
    board = create_board(parse_config(pi_config(gpio_chip="/nonexistent/gpiochip0")))
    try:
        assert isinstance(board, PiBoard)
        problems = {p.device: p for p in board.problems()}
        assert "fan" in problems and "buzzer" in problems
        with pytest.raises(BoardError, match="fan missing: "):
            board.set_fan(True)
    finally:
        board.close()
