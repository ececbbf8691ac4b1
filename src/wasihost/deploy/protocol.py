"""The deploy protocol, v1: topics and report states, one definition for both ends.

Deliveries are retained so a node that is offline gets its bundle when it
connects; reports are retained so a deployer that starts later sees where
every node is. The topic layout puts the audience in the topic (one node, a
label, everyone), so a broker's ACL can say who may publish what, and a node
subscribes to exactly what concerns it.

Each node also publishes, retained, which labels it carries and what each of
its plugins runs (``versions_payload``): a label names a group only the
nodes know, so without it a deployer could not tell which nodes a label
delivery is for, nor when they have all answered.

Both messages are read here once (``parse_versions``, ``parse_report``), with
one set of bounds, for the deployer and the hub alike: either message comes
from any client the broker lets write ``wasihost/<node>/#``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from wasihost import content
from wasihost.config import MAX_LABELS  # a node's config holds no more

PREFIX = "wasihost/deploy"

Source = Literal["node", "label", "all"]
# Most specific first: a node's own delivery beats its labels', which beat "all".
PRECEDENCE: tuple[Source, ...] = ("node", "label", "all")

State = Literal[
    "received", "refused", "needs-grants", "staging", "live", "healthy", "rolled-back", "failed"
]
STATES: tuple[State, ...] = (
    "received",
    "refused",
    "needs-grants",
    "staging",
    "live",
    "healthy",
    "rolled-back",
    "failed",
)


def node_topic(node_id: str, plugin: str) -> str:
    return f"{PREFIX}/node/{node_id}/{plugin}"


def label_topic(label: str, plugin: str) -> str:
    return f"{PREFIX}/label/{label}/{plugin}"


def all_topic(plugin: str) -> str:
    return f"{PREFIX}/all/{plugin}"


def subscriptions(node_id: str, labels: tuple[str, ...] | list[str]) -> list[str]:
    """What a node subscribes to: its own topic, each of its labels', and all."""
    return [
        f"{PREFIX}/node/{node_id}/+",
        *(f"{PREFIX}/label/{label}/+" for label in labels),
        f"{PREFIX}/all/+",
    ]


def parse_delivery(topic: str) -> tuple[Source, str, str] | None:
    """(source, audience, plugin) of a delivery topic; None for anything else.
    The audience is the node id, the label, or "" for all."""
    parts = topic.split("/")
    if parts[:2] != PREFIX.split("/"):
        return None
    rest = parts[2:]
    if len(rest) == 3 and rest[0] == "node":
        return "node", rest[1], rest[2]
    if len(rest) == 3 and rest[0] == "label":
        return "label", rest[1], rest[2]
    if len(rest) == 2 and rest[0] == "all":
        return "all", "", rest[1]
    return None


def report_topic(node_id: str, plugin: str) -> str:
    return f"wasihost/{node_id}/rollout/{plugin}"


def versions_topic(node_id: str) -> str:
    return f"wasihost/{node_id}/versions"


Running = Mapping[str, str | None]  # {"version": ..., "content_hash": ...} of one plugin


def versions_payload(labels: Iterable[str], plugins: Mapping[str, Running]) -> bytes:
    """``{"labels": [...], "plugins": {"<plugin>": {"version", "content_hash"}}}``;
    ``version`` is null for code from the node's config."""
    body = {"labels": list(labels), "plugins": {name: dict(v) for name, v in plugins.items()}}
    return json.dumps(body, sort_keys=True).encode()


# What a versions message may hold: it is untrusted input to the deployer and
# the hub (any client the ACL lets write wasihost/<node>/#), kept in memory.
MAX_NAME = 64  # a label or a plugin name
MAX_VERSION = 64
MAX_PLUGINS = 64
MAX_REASON = 500  # a report's reason (a load error can be long); cut with "…"


MAX_INT = 2**53  # counters and millisecond stamps beyond it are no real value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text} is not a finite number")
    return value


def load_json(payload: bytes) -> Any:
    """The JSON in ``payload``, or None when there is none. Stricter than
    ``json.loads``: NaN, Infinity and floats that overflow are refused, since
    kept they crash ``int()`` and make the hub's own JSON invalid for every
    dashboard. Deep nesting fits in a small message and makes ``json`` raise
    RecursionError, not ValueError."""
    try:
        return (
            json.loads(payload, parse_constant=_no_constant, parse_float=_finite)
            if payload
            else None
        )
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def bounded_int(value: object, minimum: int = -MAX_INT) -> int | None:
    """``value`` if it is an int in [minimum, MAX_INT), else None (bools are not)."""
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value < MAX_INT:
        return value
    return None


@dataclass(frozen=True)
class Versions:
    """A node's versions message as read by the other end, bounded."""

    labels: tuple[str, ...] | None  # None: the message does not say
    plugins: dict[str, tuple[str | None, str | None]]  # plugin -> (version, content hash)


def is_name(value: object) -> bool:
    """A label or plugin name as a message may carry it: a string of 1 to MAX_NAME."""
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME


def parse_versions(payload: bytes) -> Versions | None:
    """A versions message, or None for an empty (cleared), unreadable or
    otherwise shaped one.
    Lenient per field and bounded: labels and plugin names that are not short
    strings are dropped, a version or content hash that is not one reads as
    unknown, and only the first MAX_LABELS labels and MAX_PLUGINS plugins count."""
    data = load_json(payload)
    if not isinstance(data, dict) or not isinstance(data.get("plugins"), dict):
        return None  # not this shape (the one before labels was {<plugin>: ...})
    raw_labels, raw_plugins = data.get("labels"), data["plugins"]
    labels = None
    if isinstance(raw_labels, list):
        labels = tuple(label for label in raw_labels if is_name(label))[:MAX_LABELS]
    plugins: dict[str, tuple[str | None, str | None]] = {}
    for name, entry in raw_plugins.items():
        if len(plugins) == MAX_PLUGINS:
            break
        if not is_name(name):
            continue
        entry = entry if isinstance(entry, dict) else {}
        version, content_hash = entry.get("version"), entry.get("content_hash")
        plugins[name] = (version_of(version), content_hash_of(content_hash))
    return Versions(labels, plugins)


def version_of(value: object) -> str | None:
    """A version string, or None (code from the node's config, or not one at all)."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_VERSION else None


def content_hash_of(value: object) -> str | None:
    """A content hash as ``content`` writes them, or None."""
    return value if isinstance(value, str) and content.PATTERN.match(value) else None


@dataclass(frozen=True)
class Report:
    """A node's rollout report as read by the other end, bounded. A field that
    cannot be what the protocol says reads as None (unknown) rather than
    refusing the report: its state is still worth showing."""

    plugin: str
    state: State
    version: str | None
    content_hash: str | None
    reason: str | None  # at most MAX_REASON characters
    previous: dict[str, str | None] | None  # {"version", "content_hash"}
    source: Source | None
    polls_ok: int | None
    since_ms: int | None  # the node's clock
    timestamp_ms: int | None


def parse_report(payload: bytes) -> Report | None:
    """A rollout report, or None for an empty (cleared), unreadable or otherwise
    shaped one: no plugin name, or a state the protocol does not have.
    Counters and stamps are ints in [0, MAX_INT) or None."""
    data = load_json(payload)
    if not isinstance(data, dict):
        return None
    plugin = data.get("plugin")
    state = next((s for s in STATES if s == data.get("state")), None)
    if state is None or not isinstance(plugin, str) or not is_name(plugin):
        return None
    previous = data.get("previous")
    return Report(
        plugin=plugin,
        state=state,
        version=version_of(data.get("version")),
        content_hash=content_hash_of(data.get("content_hash")),
        reason=short_text(data.get("reason"), MAX_REASON),
        previous=(
            {
                "version": version_of(previous.get("version")),
                "content_hash": content_hash_of(previous.get("content_hash")),
            }
            if isinstance(previous, dict)
            else None
        ),
        source=next((s for s in PRECEDENCE if s == data.get("source")), None),
        polls_ok=bounded_int(data.get("polls_ok"), minimum=0),
        since_ms=bounded_int(data.get("since_ms"), minimum=0),
        timestamp_ms=bounded_int(data.get("timestamp_ms"), minimum=0),
    )


def short_text(value: object, limit: int) -> str | None:
    """``value`` if it is a string, cut to ``limit`` characters (ending in "…"), or None."""
    if not isinstance(value, str):
        return None
    return value if len(value) <= limit else value[: limit - 1] + "…"
