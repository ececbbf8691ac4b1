"""Hostile source plugins: the shared runtime imports every capability, so for a
source plugin the linker, not the guest, is what keeps it to its world.

The attacker's tests: a plugin reaching past the runtime's hidden bindings
through componentize-py's import trampoline, and one importing a capability
its world does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.errors import PluginTrap
from wasihost.host import Host
from wasihost.runtime.plugin import PluginState

SOURCES = Path(__file__).resolve().parents[1] / "source-plugins"


# The runtime's import numbers (componentize-py numbers the world's imports in
# WIT order): 12 is system-info.get-memory, 10 fan-controller.get-fan-state,
# 2 gpio-provider.get-timestamp-ms. If the WIT changes, the refusal texts
# below say which capability a number now reaches.
GET_MEMORY, GET_FAN_STATE, GET_TIMESTAMP = 12, 10, 2


def test_a_source_plugin_cannot_reach_a_capability_outside_its_world(
    source_host: Callable[..., Host], board: SimBoard
) -> None:
    """The attacker's test: the dashboard world has no capabilities; the plugin
    calls the runtime's import trampoline directly, past the hidden bindings."""
    host = source_host({"snoop": {"source": str(SOURCES / "snoop"), "world": "dashboard-plugin"}})
    snoop = host.plugins["snoop"]
    page = snoop.call(f"{GET_MEMORY},{GET_FAN_STATE}")
    assert page.splitlines() == [
        f"{GET_MEMORY} returned Err(value='system-info is not a capability of world "
        "dashboard-plugin')",
        f"{GET_FAN_STATE} returned Err(value='fan-controller is not a capability of world "
        "dashboard-plugin')",
    ]
    assert snoop.ctx.refusals["world"] == 2
    # A capability without an error case cannot answer a refusal: the call traps.
    with pytest.raises(PluginTrap, match="get-timestamp-ms failed"):
        snoop.call(str(GET_TIMESTAMP))


def test_importing_a_capability_outside_the_world_is_refused_at_load(
    source_host: Callable[..., Host],
) -> None:
    folder = SOURCES / "bad-import"
    host = source_host({"bad": {"source": str(folder), "world": "dashboard-plugin"}})
    plugin = host.plugins["bad"]
    assert plugin.state is PluginState.FAILED
    error = plugin.stats.last_error or ""
    assert f"{folder}: cannot load" in error
    assert 'File "app.py", line 6' in error
    assert "system-info is not a capability of this plugin's world (it imports: none)" in error


@pytest.mark.parametrize("link", ["assets/secret.txt", "assets"])
def test_a_symlink_among_the_assets_reads_nothing_outside_the_folder(
    tmp_path: Path, source_host: Callable[..., Host], link: str
) -> None:
    """The attacker's test: a shared plugin whose asset is a link to the host's
    config would hand its secrets to whoever views the page."""
    secret = tmp_path / "host.toml"
    secret.write_text('token = "s3cret"\n')
    folder = tmp_path / "plugin"
    (folder / "assets").mkdir(parents=True)
    (folder / "plugin.toml").write_text('world = "dashboard-plugin"\n')
    (folder / "app.py").write_text(
        "from _embedded_assets import FILES\n"
        "from wit_world import exports\n\n\n"
        "class DashboardLogic(exports.DashboardLogic):\n"
        "    def render(self, state_json: str) -> str:\n"
        "        return repr(FILES)\n"
    )
    if link == "assets":
        (folder / "assets").rmdir()
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").symlink_to(secret)
        (folder / "assets").symlink_to(outside)
    else:
        (folder / link).symlink_to(secret)
    host = source_host({"p": {"source": str(folder), "world": "dashboard-plugin"}})
    plugin = host.plugins["p"]
    assert plugin.state is PluginState.FAILED
    assert "a symlink" in (plugin.stats.last_error or "")
    assert "s3cret" not in (plugin.stats.last_error or "")


def test_a_huge_module_is_refused_before_it_is_read(
    tmp_path: Path, source_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasihost.runtime import source

    monkeypatch.setattr(source, "MAX_BYTES", 1000)
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "plugin.toml").write_text('world = "dashboard-plugin"\n')
    (folder / "app.py").write_text("import helper\n")
    (folder / "helper.py").write_text("x = 1\n" * 1000)
    reads: list[Path] = []
    read_bytes = Path.read_bytes

    def counted(self: Path) -> bytes:
        reads.append(self)
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    host = source_host({"p": {"source": str(folder), "world": "dashboard-plugin"}})
    assert "helper.py: larger than" in (host.plugins["p"].stats.last_error or "")
    assert folder / "helper.py" not in reads
