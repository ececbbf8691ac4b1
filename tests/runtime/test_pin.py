"""Pinning: ``[plugins.<name>] pin`` lets a plugin load, and hot-reload, only
the content it names; anything else is refused with both hashes and the
running version keeps running (docs/BUNDLES.md#pinning)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wasihost.bundle.create import hash_plugin
from wasihost.config import HostConfig
from wasihost.host import Host
from wasihost.runtime.plugin import PluginState

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "tests" / "source-plugins" / "counter_app.py.tmpl"
OTHER = "sha256:" + "ab" * 32


def counter(folder: Path, version: str) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "plugin.toml").write_text('world = "sensor-plugin"\nstate = true\n')
    (folder / "app.py").write_text(TEMPLATE.read_text().replace("VERSION", version))
    return folder


def test_a_pinned_source_plugin_loads_when_its_content_matches(
    tmp_path: Path, source_host: Callable[..., Host]
) -> None:
    folder = counter(tmp_path / "counter", "1.0.0")
    pin = hash_plugin(folder)  # what `wasihost bundle hash` prints, and a bundle signs
    host = source_host({"counter": {"source": str(folder), "world": "sensor-plugin", "pin": pin}})
    plugin = host.plugins["counter"]
    assert plugin.state is PluginState.RUNNING
    assert plugin.call() is not None


def test_a_pinned_plugin_with_other_content_is_refused_naming_both_hashes(
    tmp_path: Path, source_host: Callable[..., Host]
) -> None:
    folder = counter(tmp_path / "counter", "1.0.0")
    actual = hash_plugin(folder)
    host = source_host({"counter": {"source": str(folder), "world": "sensor-plugin", "pin": OTHER}})
    plugin = host.plugins["counter"]
    assert plugin.state is PluginState.FAILED
    error = plugin.stats.last_error or ""
    assert f"content {actual} is not the pinned {OTHER}" in error
    assert "[plugins.counter] pin" in error and str(folder) in error


async def test_a_hot_reload_to_unpinned_content_is_refused_and_the_old_version_polls_on(
    tmp_path: Path, source_host: Callable[..., Host]
) -> None:
    folder = counter(tmp_path / "counter", "1.0.0")
    pin = hash_plugin(folder)
    host = source_host({"counter": {"source": str(folder), "world": "sensor-plugin", "pin": pin}})
    plugin = host.plugins["counter"]
    await host.cycle.run_once()
    loaded = plugin.loaded_sha256

    counter(folder, "2.0.0")  # an edit (or a deploy) the pin does not name
    changed = hash_plugin(folder)
    assert host.reloader is not None
    assert await host.reloader.reload("counter") is False
    assert plugin.loaded_sha256 == loaded
    assert plugin.info is not None and plugin.info["version"] == "1.0.0"
    assert plugin.stats.reload_error is not None
    assert f"content {changed} is not the pinned {pin}" in plugin.stats.reload_error
    for polls in (2.0, 3.0):  # the running version keeps polling, its count going on
        readings = await host.cycle.run_once()
        assert {m.name: m.value for m in readings[0].measurements}["polls"] == polls
    assert plugin.state is PluginState.RUNNING

    counter(folder, "1.0.0")  # back to the pinned content: nothing to refuse
    assert hash_plugin(folder) == pin


async def test_a_pinned_component_is_checked_against_the_bytes_it_compiles(
    tmp_path: Path,
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    built: dict[str, Path],
) -> None:
    wasm = tmp_path / "dht22.wasm"
    shutil.copy(built["dht22"], wasm)
    pin = hash_plugin(wasm)
    plugin: dict[str, Any] = {"world": "dht22-plugin", "wasm": str(wasm), "led": 3, "pin": pin}
    host = make_host(make_config({"dht22": plugin}))
    assert host.plugins["dht22"].state is PluginState.RUNNING
    await host.cycle.run_once()

    partial = tmp_path / ".dht22.wasm.tmp"
    partial.write_bytes(built["chaos"].read_bytes())
    partial.replace(wasm)
    assert host.reloader is not None
    assert await host.reloader.reload("dht22") is False
    reason = host.plugins["dht22"].stats.reload_error or ""
    assert f"content {hash_plugin(wasm)} is not the pinned {pin}" in reason
    await host.cycle.run_once()
    assert host.plugins["dht22"].stats.polls == 2  # the pinned version polls on
