"""Hardware backends behind the ``Board`` protocol."""

from __future__ import annotations

from wasihost.boards.base import Board
from wasihost.config import HostConfig


def create_board(config: HostConfig) -> Board:
    """The board ``[board] kind`` names, built from the config.

    Boards are imported here, lazily, so the simulated board never loads the
    Pi board's modules (which in turn import their hardware libraries only
    when a device starts).
    """
    if config.board.kind == "pi":
        from wasihost.boards.pi import PiBoard

        return PiBoard.from_config(config)
    from wasihost.boards.sim import SimBoard

    return SimBoard(led_count=config.board.led_count, seed=config.board.seed)
