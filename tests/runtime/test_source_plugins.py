"""Source plugins: a plugin folder run in the shared Python runtime, no build per plugin.

The seed plugins run unchanged from their folders; a bad folder is refused
at load with the file and line; an edit goes live as a reload with state
carried. The attacker's tests are in tests/hostile/test_hostile_source.py.
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.base import OFF
from wasihost.boards.sim import SimBoard
from wasihost.config import parse_config
from wasihost.errors import ConfigError
from wasihost.host import Host
from wasihost.runtime.plugin import PluginState

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "build" / "python-runtime.wasm"
SOURCES = ROOT / "tests" / "source-plugins"


PLUGINS = ROOT / "plugins"
SEEDS = {
    "pi_monitor": {"led": 0, "source": str(PLUGINS / "pi-monitor")},
    "dht22": {"led": 1, "source": str(PLUGINS / "dht22")},
    "bme680": {"led": 2, "source": str(PLUGINS / "bme680")},
    "sht31": {"led": 3, "source": str(PLUGINS / "sht31"), "world": "sensor-plugin",
              "grants": {"i2c_addresses": ["0x44"]}},
    "dashboard": {"source": str(PLUGINS / "dashboard")},
}  # fmt: skip


async def test_the_seed_plugins_run_unchanged_from_their_folders(
    source_host: Callable[..., Host], board: SimBoard
) -> None:
    host = source_host(SEEDS)
    for _ in range(3):
        readings = await host.cycle.run_once()
        await asyncio.sleep(0.02)  # the simulated SHT31 takes 16 ms to measure
    assert {r.plugin for r in readings} == {"pi-monitor", "dht22", "bme680", "sht31"}
    statuses = host.statuses()
    for name in ("pi-monitor", "dht22", "bme680", "sht31"):
        assert statuses[name]["state"] == "running", statuses[name]
        assert statuses[name]["polls"] == 3
    assert host.plugins["dht22"].spec.source == PLUGINS / "dht22"
    # Module globals persist between polls, as in a component of its own.
    dht22 = next(r for r in readings if r.plugin == "dht22")
    assert dht22.status["poll_count"] == 3
    assert board.leds[1] != OFF  # its LED write reached the strip
    assert host.dashboard is not None
    page = host.dashboard.call(host.snapshot_json())
    assert "<html" in page.lower() and "dht22" in page


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"app.py": "def broken(:\n"}, 'File "app.py", line 1'),
        ({"app.py": "import helper\n", "helper.py": "raise ValueError('no')\n"},
         "ValueError: no"),
        ({"app.py": "import json\n", "json.py": ""},
         "json.py: the module name 'json' is taken by the runtime"),
        ({"app.py": "x = 1\n"}, "app.py defines no class DashboardLogic"),
        ({"app.py": b"\xff\xfe"}, "app.py: not UTF-8 text"),
    ],
)  # fmt: skip
def test_a_bad_folder_is_refused_with_the_file_and_why(
    tmp_path: Path, source_host: Callable[..., Host], files: dict[str, Any], message: str
) -> None:
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "plugin.toml").write_text('world = "dashboard-plugin"\n')
    for name, text in files.items():
        path = folder / name
        path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    host = source_host({"bad": {"source": str(folder), "world": "dashboard-plugin"}})
    plugin = host.plugins["bad"]
    assert plugin.state is PluginState.FAILED
    assert message in (plugin.stats.last_error or "")


def test_a_folder_built_as_a_component_is_not_a_source(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "app.py").write_text("")
    (folder / "plugin.toml").write_text('world = "dashboard-plugin"\nkind = "component"\n')
    data = {"plugins": {"p": {"source": str(folder), "world": "dashboard-plugin"}}}
    config = parse_config(data, Path("test.toml"))
    from wasihost.runtime.contract import load_contract
    from wasihost.specs import plugin_specs

    with pytest.raises(ConfigError, match=r'plugins\.p\.source: .* says kind = "component"'):
        plugin_specs(config, load_contract())


async def test_an_edit_goes_live_as_a_reload_with_state_carried(
    tmp_path: Path, source_host: Callable[..., Host]
) -> None:
    folder = tmp_path / "counter"
    folder.mkdir()
    (folder / "plugin.toml").write_text('world = "sensor-plugin"\nstate = true\n')
    app = folder / "app.py"
    template = (ROOT / "tests" / "source-plugins" / "counter_app.py.tmpl").read_text()
    app.write_text(template.replace("VERSION", "1.0.0"))
    host = source_host({"counter": {"source": str(folder), "world": "sensor-plugin"}})
    for _ in range(2):
        await host.cycle.run_once()
    plugin = host.plugins["counter"]
    app.write_text(template.replace("VERSION", "2.0.0"))
    assert host.reloader is not None
    assert await host.reloader.reload("counter")
    assert plugin.info is not None and plugin.info["version"] == "2.0.0"
    readings = await host.cycle.run_once()
    values = {m.name: m.value for m in readings[0].measurements}
    assert values["polls"] == 3.0  # the count went on across the new version


def test_a_source_plugin_missing_its_entry_module_is_refused(
    tmp_path: Path, source_host: Callable[..., Host]
) -> None:
    (tmp_path / "plugin.toml").write_text('world = "dashboard-plugin"\n')
    host = source_host({"empty": {"source": str(tmp_path), "world": "dashboard-plugin"}})
    assert host.plugins["empty"].state is PluginState.FAILED
    assert "no app.py" in (host.plugins["empty"].stats.last_error or "")


def runtime_stdlib() -> tuple[str, ...]:
    """``STDLIB`` of the runtime's source, read without running it."""
    tree = ast.parse((ROOT / "plugins" / "_runtime" / "wasihost_runtime.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STDLIB":
            value: tuple[str, ...] = ast.literal_eval(node.value)
            return value
    raise AssertionError("no STDLIB in the runtime")


def test_the_curated_standard_library_is_importable_and_documented(
    source_host: Callable[..., Host],
) -> None:
    stdlib = runtime_stdlib()
    host = source_host({"std": {"source": str(SOURCES / "stdlib"), "world": "dashboard-plugin"}})
    page = host.plugins["std"].call(",".join(stdlib))
    assert page.splitlines() == ["2026-12-06"]  # every module imported, strptime works
    assert host.plugins["std"].call("logging").splitlines()[1:] == [
        "logging: No module named 'logging'"
    ]  # beyond the list: not in the runtime
    text = (ROOT / "docs" / "PLUGINS.md").read_text()
    listed = text.split("<!-- stdlib -->", 1)[1].split("<!-- /stdlib -->", 1)[0]
    assert sorted(re.findall(r"`([\w.]+)`", listed)) == sorted(stdlib)
