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

from tests.mosquitto import Broker
from wasihost.authoring.build import build
from wasihost.boards.sim import SimBoard
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
    and the history database in the test's temporary folder.

    A plugin runs the component built from ``plugins/<built>`` (default: its own
    name); one given ``source`` runs that folder in the shared runtime instead.
    """

    def make(plugins: dict[str, dict[str, Any]], **sections: Any) -> HostConfig:
        data: dict[str, Any] = {
            "web": {"enabled": False},
            "history": {"path": str(tmp_path / "history.sqlite3")},
            "state": {"dir": str(tmp_path / "state")},
            **sections,
            "plugins": {},
        }
        # Source plugins run in the shared runtime this checkout built, whatever the cwd.
        data["runtime"] = {"python_runtime": str(BUILD / "python-runtime.wasm"),
                           **sections.get("runtime", {})}  # fmt: skip
        for name, plugin in plugins.items():
            plugin = dict(plugin)
            which = plugin.pop("built", name.replace("_", "-"))
            if "wasm" not in plugin and "source" not in plugin:
                plugin["wasm"] = str(built[which])
            data["plugins"][name] = plugin
        return parse_config(data, Path("test.toml"))

    return make


@pytest.fixture
def board() -> SimBoard:
    return SimBoard(seed=1234)


class SteppedClock:
    """A monotonic clock tests advance by hand, e.g. past a backoff, without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float = 3600.0) -> None:
        self.now += seconds


@pytest.fixture
def monotonic() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def make_host(board: SimBoard, monotonic: SteppedClock) -> Iterator[Callable[[HostConfig], Host]]:
    """Hosts on the test's board; supervision runs on the test's ``monotonic`` clock."""
    hosts: list[Host] = []

    def make(config: HostConfig) -> Host:
        host = Host(config, board=board, monotonic=monotonic)
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


# -- hostile-plugin suite report (tests/hostile/test_hostile.py) --------------
HOSTILE_ROWS = pytest.StashKey[list[tuple[str, str, float | None]]]()


@pytest.fixture
def hostile_report(request: pytest.FixtureRequest) -> Callable[[str, str, float | None], None]:
    """Records one row (attack, outcome, time to recover in ms) for the summary table."""
    rows = request.config.stash.setdefault(HOSTILE_ROWS, [])

    def record(attack: str, outcome: str, recover_ms: float | None) -> None:
        rows.append((attack, outcome, recover_ms))

    return record


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print the hostile-plugin table, only when the hostile tests ran."""
    rows = config.stash.get(HOSTILE_ROWS, None)
    if not rows:
        return
    width = max(len("attack"), *(len(attack) for attack, _, _ in rows)) + 2
    outcome_width = max(len("outcome"), *(len(outcome) for _, outcome, _ in rows)) + 2
    terminalreporter.section("hostile-plugin suite", sep="=")
    terminalreporter.write_line(
        f"{'attack':<{width}}{'outcome':<{outcome_width}}{'recover ms':>10}"
    )
    for attack, outcome, recover_ms in rows:
        shown = "-" if recover_ms is None else f"{recover_ms:.1f}"
        terminalreporter.write_line(f"{attack:<{width}}{outcome:<{outcome_width}}{shown:>10}")


@pytest.fixture
def source_host(
    make_config: Callable[..., HostConfig], make_host: Callable[[HostConfig], Host]
) -> Callable[[dict[str, dict[str, Any]]], Host]:
    """A host whose plugins (each given a ``source`` folder) run in the shared runtime."""
    return lambda plugins: make_host(make_config(plugins))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free loopback port, stopped after the test."""
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()
