"""Fixtures for the seed plugins' own tests (``plugins/<name>/test_app.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.testing import Mode

BUILD = Path(__file__).resolve().parent.parent / "build"


@pytest.fixture(params=["native", "component", "runtime"])
def mode(request: pytest.FixtureRequest) -> Mode:
    """Run the test natively (milliseconds), on the plugin's own component and
    in the shared Python runtime (how the host runs it); each sandboxed run is
    skipped until ``wasihost build`` made what it needs."""
    name = request.path.parent.name
    if request.param == "component" and not (BUILD / f"{name}.wasm").exists():
        pytest.skip(f"build the component first: wasihost build {name}")
    if request.param == "runtime" and not (BUILD / "python-runtime.wasm").exists():
        pytest.skip("build the shared runtime first: wasihost build")
    mode: Mode = request.param
    return mode


@pytest.fixture
def board() -> SimBoard:
    return SimBoard(seed=1234)
