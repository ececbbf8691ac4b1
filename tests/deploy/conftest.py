"""The deploy tests' shared fixture: real hosts on one real broker (``Fleet``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_deploy_node import Fleet
from tests.mosquitto import Broker


@pytest.fixture
async def fleet(
    broker: Broker, make_config: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[Fleet]:
    made = Fleet(broker, make_config, tmp_path)
    yield made
    await made.close()
