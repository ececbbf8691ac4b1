"""A source plugin of the dashboard world (no capabilities) that imports one."""

from __future__ import annotations

from wit_world import exports
from wit_world.imports import system_info


class DashboardLogic(exports.DashboardLogic):
    def render(self, state_json: str) -> str:
        return str(system_info.get_uptime_seconds())
