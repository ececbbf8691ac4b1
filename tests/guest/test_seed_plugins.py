"""The seed plugins are built alike: the same files, the shared guest library.

Each plugin's behaviour is tested beside it, natively and as the built
component (``plugins/<name>/test_app.py``, the shape ``wasihost new`` gives a
plugin); here is what they have in common.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from wasihost.authoring.build import discover
from wasihost.runtime.source import library_for, module_files

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
SEEDS = discover(PLUGINS)


def test_the_seed_plugins_are_found_and_the_library_is_not_one() -> None:
    assert SEEDS == ["bme680", "dashboard", "dht22", "pi-monitor", "sht31"]


@pytest.mark.parametrize("name", SEEDS)
def test_every_seed_plugin_has_the_same_files(name: str) -> None:
    """app.py (the exports), plugin.toml (the world), test_app.py (its tests,
    in both modes); helper modules beside them as the plugin needs."""
    folder = PLUGINS / name
    assert {"app.py", "plugin.toml", "test_app.py"} <= {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("name", SEEDS)
def test_every_seed_plugin_builds_with_the_shared_library(name: str) -> None:
    assert library_for(PLUGINS / name) == (PLUGINS / "_shared").resolve()


@pytest.mark.parametrize("name", SEEDS)
def test_no_seed_plugin_parses_json_past_the_guards(name: str) -> None:
    """Untrusted JSON (settings, a snapshot, the app state) reaches ``json.loads``
    only through ``wasihost_guest.jsonguard``, which refuses what would trap."""
    calls = [
        f"{path.name}:{node.lineno}"
        for path in module_files(PLUGINS / name)
        for node in ast.walk(ast.parse(path.read_bytes()))
        if isinstance(node, ast.Attribute) and node.attr in ("loads", "load")
    ]
    assert calls == []
