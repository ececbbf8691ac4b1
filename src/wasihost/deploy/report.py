"""What a node reports on one plugin's rollout: the payload of its report topic.

A module of its own because two others write it: ``node`` publishes it at
every step, and ``disk`` keeps the report of a version rolled back in
deployed.json (one rolled back at start too, before the node runs), so that
a restart can say it again. The deployer reads it with ``protocol.parse_report``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from wasihost.deploy.protocol import Source, State


@dataclass
class Rollout:
    """What the node reports for one plugin (the report topic's payload)."""

    plugin: str
    version: str | None = None
    content_hash: str | None = None
    state: State = "received"
    reason: str | None = None
    previous: dict[str, str | None] | None = None
    polls_ok: int = 0
    since_ms: int = 0
    timestamp_ms: int = 0
    source: Source = "node"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
