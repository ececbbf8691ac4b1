"""A plugin's health: one rule for the dashboard's health table, its cards and /healthz.

Health is judged, not counted: a sensor's odd failed read is not a problem, a
plugin that keeps failing is, and one that never worked is too (it would
otherwise look fine with no data). One function, so the dashboard and
/healthz can never disagree.
"""

from __future__ import annotations

from typing import Any

from wasihost.runtime.plugin import Plugin, PluginState
from wasihost.state import PluginView

# Why a plugin that is not running is unavailable, in words.
_UNAVAILABLE = {
    PluginState.LOADING: "is loading",
    PluginState.BACKOFF: "is backing off after a trap",
    PluginState.HUNG: "is hung in a call",
    PluginState.QUARANTINED: "is quarantined after repeated traps",
    PluginState.FAILED: "failed to load",
    PluginState.STOPPED: "is stopped",
}
# A polled plugin is failing after this many failed polls without a reading, or
# failed polls for three intervals (at least 5 s) since its last one, the age at
# which the dashboard calls a reading stale: a sensor's odd failed read is not one.
FAILING_AFTER_POLLS = 3


def plugin_health(plugin: Plugin, view: PluginView | None, interval_s: float) -> dict[str, Any]:
    """``health``: ``unavailable`` unless running, ``failing`` while a polled plugin's
    polls keep failing (one that never produced a reading included), else ``ok``;
    ``health_reason`` says why. The dashboard's health table and /healthz show it."""
    error = plugin.stats.last_error
    if plugin.state is not PluginState.RUNNING:
        why = _UNAVAILABLE.get(plugin.state, f"is {plugin.state.value}")
        return {"health": "unavailable", "health_reason": why + (f": {error}" if error else "")}
    if view is not None and view.error is not None and view.error_ms is not None:
        if view.reading is None and plugin.stats.polls >= FAILING_AFTER_POLLS:
            why = f"has not produced a reading: {view.error}"
            return {"health": "failing", "health_reason": why}
        failing_s = (view.error_ms - view.reading.timestamp_ms) / 1000 if view.reading else 0.0
        if failing_s > max(3 * interval_s, 5.0):
            why = f"has failed its polls for {failing_s:.0f} s: {view.error}"
            return {"health": "failing", "health_reason": why}
    return {"health": "ok", "health_reason": None}
