"""WIT binding of the dashboard plugin (world `dashboard-plugin`).

Kept to a single delegation so that everything worth testing lives in
`render.py`, which runs natively without the generated `wit_world` bindings.
"""

from render import render_json
from wit_world import exports


class DashboardLogic(exports.DashboardLogic):
    """Export of `dashboard-logic`: the host calls `render` once per page request."""

    def render(self, state_json: str) -> str:
        """Return the dashboard page; `render_json` never raises, so this never traps."""
        return render_json(state_json)
