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
