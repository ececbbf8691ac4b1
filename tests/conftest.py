"""Shared fixtures: built plugins, configs and hosts on a seeded simulated board.

Plugins are built once per session through the same incremental build as
``make`` (so a warm checkout skips them); tests never sleep, they drive
poll cycles directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.build import build
from wasihost.config import HostConfig, parse_config
from wasihost.host import Host

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
TEST_BUILD = BUILD / "test-plugins"


@pytest.fixture(scope="session")
def built() -> dict[str, Path]:
    """Seed and test plugins, built (or found up to date); name -> .wasm path."""
    seed = build(plugins_dir=ROOT / "plugins", wit_dir=ROOT / "wit", out_dir=BUILD)
    tests = build(plugins_dir=ROOT / "tests" / "plugins", wit_dir=ROOT / "wit", out_dir=TEST_BUILD)
    return {r.name: r.output for r in seed + tests}


@pytest.fixture
def make_config(built: dict[str, Path], tmp_path: Path) -> Callable[..., HostConfig]:
    """A config dict → HostConfig, with wasm paths pointing at the built plugins
    and the history database in the test's temporary folder."""

    def make(plugins: dict[str, dict[str, Any]], **sections: Any) -> HostConfig:
        data: dict[str, Any] = {
            "web": {"enabled": False},
            "history": {"path": str(tmp_path / "history.sqlite3")},
            "state": {"dir": str(tmp_path / "state")},
            **sections,
            "plugins": {},
        }
        for name, plugin in plugins.items():
            plugin = dict(plugin)
            source = plugin.pop("source", name.replace("_", "-"))
            if "wasm" not in plugin:
                plugin["wasm"] = str(built[source])
            data["plugins"][name] = plugin
        return parse_config(data, Path("test.toml"))

    return make


@pytest.fixture
def board() -> SimBoard:
    return SimBoard(seed=1234)


@pytest.fixture
def make_host(board: SimBoard) -> Iterator[Callable[[HostConfig], Host]]:
    hosts: list[Host] = []

    def make(config: HostConfig) -> Host:
        host = Host(config, board=board)
        hosts.append(host)
        host.load_plugins()
        return host

    yield make
    for host in hosts:
        host.close()


SEED_PLUGINS = {
    "pi_monitor": {"led": 0},
    "dht22": {"led": 1},
    "bme680": {"led": 2},
    "dashboard": {},
}


@pytest.fixture
async def seed_host(
    make_config: Callable[..., HostConfig], make_host: Callable[[HostConfig], Host]
) -> AsyncIterator[Host]:
    yield make_host(make_config(SEED_PLUGINS))
