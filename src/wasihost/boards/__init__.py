"""Hardware backends behind the ``Board`` protocol."""

from __future__ import annotations

from wasihost.boards.base import Board
from wasihost.config import HostConfig
from wasihost.errors import ConfigError


def create_board(config: HostConfig) -> Board:
    """The board ``[board] kind`` names, built from the config."""
    if config.board.kind == "sim":
        from wasihost.boards.sim import SimBoard

        return SimBoard(led_count=config.board.led_count, seed=config.board.seed)
    raise ConfigError(
        f'{config.path}: board.kind: the Raspberry Pi board is not available yet (expected "sim")'
    )
