"""Fixtures for the seed plugins' own tests (``plugins/<name>/test_app.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.testing import Mode

BUILD = Path(__file__).resolve().parent.parent / "build"


@pytest.fixture(params=["native", "component"])
def mode(request: pytest.FixtureRequest) -> Mode:
    """Run the test natively (milliseconds) and on the built component; the
    component run is skipped until ``wasihost build <name>`` made it."""
    name = request.path.parent.name
    if request.param == "component" and not (BUILD / f"{name}.wasm").exists():
        pytest.skip(f"build the component first: wasihost build {name}")
    return "native" if request.param == "native" else "component"


@pytest.fixture
def board() -> SimBoard:
    return SimBoard(seed=1234)
