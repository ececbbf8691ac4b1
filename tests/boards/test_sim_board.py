"""What only the simulated board does (the shared behaviour is test_board_contract.py)."""

from __future__ import annotations

from wasihost.boards.sim import BEEPS_KEPT, SimBoard


def test_the_beeps_it_remembers_are_bounded() -> None:
    """A demo left running for a year beeps on every alarm: the board keeps the
    newest patterns (what tests look at), not all of them."""
    board = SimBoard(seed=1)
    for i in range(BEEPS_KEPT + 5):
        board.beep(1, i + 1, 10)
    assert len(board.beeps) == BEEPS_KEPT
    assert board.beeps[0].duration_ms == 6 and board.beeps[-1].duration_ms == BEEPS_KEPT + 5
