"""What the web may read from, and do to, the node it serves.

The host starts the web (``cli`` hands ``server.serve`` to ``Host.run``) and
the web needs a few of the host's parts, but it never imports the host: it
depends on ``Node`` alone, and ``Host`` satisfies it structurally. mypy checks
that where ``cli`` hands ``serve`` to ``Host.run`` (``tests/web/test_node.py`` checks
it on its own); tests may serve a small fake instead of a whole host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from wasihost.boards.base import Board, BoardProblem
    from wasihost.config import WebConfig
    from wasihost.runtime.plugin import Plugin
    from wasihost.state import AppState
    from wasihost.telemetry.fleet import Fleet
    from wasihost.telemetry.history import History
    from wasihost.telemetry.metrics import Metrics
    from wasihost.telemetry.stream import StateStream


@runtime_checkable
class Node(Protocol):
    """Every member the web reads or calls; nothing else of the host is its business."""

    # -- where to listen, and who may change things --------------------------

    @property
    def web_config(self) -> WebConfig:
        """The ``[web]`` section: the address ``serve`` listens on and the operator token."""
        ...

    # -- the state the pages and the read-only API show -----------------------

    @property
    def state(self) -> AppState:
        """The last cycle: /api/readings, /healthz's age, and when to render the page again."""
        ...

    def snapshot_json(self) -> str:
        """State plus plugin health as JSON: the page renders it; a stream starts with it."""
        ...

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Each plugin's health, with its board problems: /api/plugins."""
        ...

    def board_problems(self) -> list[BoardProblem]:
        """The board's problems, never raising: /healthz lists them."""
        ...

    def running(self) -> list[str]:
        """Names of the plugins running now: /healthz counts them."""
        ...

    @property
    def history_unsaved(self) -> int:
        """Readings waiting for the history database: /healthz reports them."""
        ...

    @property
    def history_dropped(self) -> int:
        """Readings dropped while the history database failed: /healthz reports them."""
        ...

    @property
    def history_problem(self) -> str | None:
        """Why readings are not being saved (a full disk...), None while they are:
        /healthz says degraded and gives it as the reason."""
        ...

    @property
    def snapshot_problem(self) -> str | None:
        """Why plugin state is not being saved to disk, None while it is: /healthz
        says degraded (a restart would restore an older state)."""
        ...

    @property
    def outbox_problem(self) -> str | None:
        """Why MQTT messages are being lost (the outbox cannot be written), None
        while they are queued: /healthz says degraded (a restart frees no disk)."""
        ...

    # -- what the web serves or drives ----------------------------------------

    @property
    def plugins(self) -> Mapping[str, Plugin]:
        """The plugins by name: /healthz counts them, the operator resets one."""
        ...

    @property
    def dashboard(self) -> Plugin | None:
        """The renderer plugin that writes the dashboard page, if one is configured."""
        ...

    @property
    def board(self) -> Board:
        """/healthz names its kind; the operator's test endpoints beep and switch the fan."""
        ...

    @property
    def stream(self) -> StateStream:
        """The states /api/stream sends; ``serve`` closes it at shutdown."""
        ...

    @property
    def history(self) -> History | None:
        """The history database /api/history queries; None when disabled."""
        ...

    @property
    def metrics(self) -> Metrics:
        """The Prometheus series /metrics renders."""
        ...

    @property
    def fleet(self) -> Fleet | None:
        """The nodes a hub hears, for /api/fleet; None unless this node is a hub."""
        ...

    async def reload_plugin(self, name: str) -> bool:
        """Reload a plugin from its file now (the operator's reload); True when live."""
        ...
