"""The hub's view of every node, built from what the nodes publish on MQTT.

A hub (``[fleet] role = "hub"``) is an ordinary node whose ``MqttPublisher``
also subscribes to ``Fleet.subscriptions`` and passes every message to
``Fleet.handle``: one broker connection, one reconnect policy, and the broker's
ACLs are the only access control (nodes never push readings over HTTP).

Liveness is the hub's own judgement, by its clock: a node is online only if
its availability is not ``offline`` (the last will fires when its connection
dies) and the hub heard from it within ``offline_after_seconds``. Retained
messages replayed at subscription time say nothing about the present, so
they never count as "heard" and their age is unknown (null): a node that
stopped publishing shows offline, with its last readings and their age (the
time since the hub received them, null for a retained one), never as live.

Clocks: a Pi without a real-time clock boots in 1970 (or at its last
shutdown) and NTP steps its wall clock later, by hours to decades, sometimes
back, on the nodes and on the hub alike. So nothing here compares a node's
``timestamp_ms`` with the hub's clock (not even to show an age) or with its
earlier stamps to decide anything: liveness and ages are durations on the
hub's monotonic clock since a message arrived (none for a retained message,
whose arrival dates nothing), and the newest state is the one that arrived
last (the node's outbox publishes in order) unless it repeats a stamp the hub
already took, which is an at-least-once re-send. The node's stamp is only
shown.

Deploying (issue 19): nodes also publish, retained, ``<node>/versions`` (their
labels and what each plugin runs) and a report per plugin on
``<node>/rollout/<plugin>``. A retained one is the node's last word on it (the
broker keeps the newest), so unlike a state it is taken, and the one to arrive
last wins; it is still no sign of life, and its age is unknown. ``to_json``
adds per node its labels, per plugin its version and rollout report, and
``rollouts``: per (plugin, content hash) the nodes reporting on it, counted
by state, those offline apart, so a page can say "3/5 healthy, 1 rolled back,
1 offline".

Everything received is untrusted input (any client the ACL lets write
``wasihost/#``): payloads are size-capped and parsed defensively, and the
number of nodes and plugins kept is bounded. A full table must still take a
real node that is new: any topic under ``wasihost/+/availability`` makes an
entry, so junk could fill it for good. A new node therefore takes the place of
the oldest one never seen live (no live ``online``, no live state), which a
real node soon is; and a node offline and unheard for FORGET_AFTER_SECONDS on
the monotonic clock is forgotten, so neither junk nor nodes long gone hold
room for ever.

Thread rules: ``handle`` runs on the event loop; ``to_json`` may run anywhere.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wasihost.config import RESERVED_NODE_IDS
from wasihost.deploy import protocol
from wasihost.telemetry.discovery import AVAILABLE, NOT_AVAILABLE

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_NODES = 1000
# A node offline and unheard this long (hub monotonic clock) is dropped: a week
# covers a node off over a long holiday; one gone for good, or junk, goes.
FORGET_AFTER_SECONDS = 7 * 86_400.0
# The deploy protocol's bounds, which the nodes' versions messages keep to: plugins
# per node (states, versions and reports counted together here), and the length of
# a plugin name (here also of a node id, a measurement's or a status entry's name).
MAX_PLUGINS_PER_NODE = protocol.MAX_PLUGINS
MAX_NAME = protocol.MAX_NAME
# Stamps remembered per plugin to recognise re-sent duplicates: after a broken
# connection a node re-sends at most the batch in flight (mqtt.BATCH, 500 since
# issue 18: a state and a health message per plugin and cycle). 64 stamps cover a
# plugin's states in a batch when the node has 4 plugins or more. With fewer, a
# re-sent state older than the last 64 taken passes as new: the hub shows that older
# state for a moment, until the re-sent newer ones, which follow it in order, arrive
# and replace it (nothing is lost, nothing else depends on it). Sized when the batch
# was 100.
RECENT_STAMPS = 64
MAX_REASON = protocol.MAX_REASON  # a report's reason, cut with "…"
# What one state keeps (a 64 KiB payload holds thousands of entries): its first
# MAX_MEASUREMENTS measurements (and their units), its first MAX_STATUS status entries,
# each string cut to MAX_STATUS_TEXT characters with "…"; the rest is dropped.
MAX_MEASUREMENTS = 64
MAX_STATUS = 32
MAX_STATUS_TEXT = 256
# Rollouts listed in to_json (the most nodes first): nodes x plugins hashes at most,
# which a hostile node could make thousands of.
MAX_ROLLOUTS = 64


@dataclass
class PublishedState:
    """The latest state a node published for one plugin."""

    timestamp_ms: int  # the node's clock: shown, never compared with the hub's
    values: dict[str, float | None]
    units: dict[str, str]
    status: dict[str, Any]
    received: float | None = None  # hub monotonic clock; None: a retained message

    def to_json(self, mono_now: float) -> dict[str, Any]:
        age = _age(self.received, mono_now)
        return {
            "timestamp_ms": self.timestamp_ms,
            "age_seconds": None if age is None else round(age, 3),
            "measurements": [
                {"name": name, "value": value, "unit": self.units.get(name, "")}
                for name, value in self.values.items()
            ],
            "status": self.status,
        }


def _age(received: float | None, mono_now: float) -> float | None:
    """Seconds since the hub received a message, on its monotonic clock; None (unknown)
    for a retained one: its arrival says nothing about when it was sent, and the
    node's stamp is never compared with the hub's clock (a node's clock may be
    anywhere). Never raises."""
    return None if received is None else max(0.0, mono_now - received)


@dataclass
class RolloutReport:
    """A node's last report on one plugin's rollout (``deploy.report.Rollout``),
    checked field by field: what cannot be what the protocol says is None."""

    state: str  # one of protocol.STATES
    reason: str | None
    version: str | None
    content_hash: str | None
    source: str | None
    polls_ok: int | None
    since_ms: int | None  # the node's clock: shown, never compared
    timestamp_ms: int | None
    received: float | None  # hub monotonic clock; None: a retained message

    def to_json(self, mono_now: float) -> dict[str, Any]:
        age = _age(self.received, mono_now)
        return {
            "state": self.state,
            "reason": self.reason,
            "version": self.version,
            "content_hash": self.content_hash,
            "source": self.source,
            "polls_ok": self.polls_ok,
            "since_ms": self.since_ms,
            "timestamp_ms": self.timestamp_ms,
            "age_seconds": None if age is None else round(age, 3),
        }


@dataclass
class NodeState:
    node: str
    availability: str | None = None  # the last payload of <base>/availability
    last_seen: float | None = None  # hub monotonic clock, live messages only
    added: float = 0.0  # hub monotonic clock: when the hub first kept something of it
    plugins: dict[str, PublishedState] = field(default_factory=dict)
    # Per plugin, the stamps of the last RECENT_STAMPS states taken (duplicates).
    stamps: dict[str, deque[int]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)  # from <base>/versions
    # Per plugin, (version, content hash) from <base>/versions.
    versions: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    rollouts: dict[str, RolloutReport] = field(default_factory=dict)

    def plugin_names(self) -> set[str]:
        """Every plugin the node is known to have, from any of its topics."""
        return self.plugins.keys() | self.versions.keys() | self.rollouts.keys()

    def admits(self, plugin: str) -> bool:
        """Whether ``plugin`` may be kept: a name already known, or room for one
        more (MAX_PLUGINS_PER_NODE counts states, versions and reports together)."""
        if not protocol.is_name(plugin):
            return False
        names = self.plugin_names()
        return plugin in names or len(names) < MAX_PLUGINS_PER_NODE


class Fleet:
    """Nodes seen under ``<base_prefix>/<node>/...``, their liveness and latest readings."""

    def __init__(
        self,
        base_prefix: str = "wasihost",
        offline_after_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` is the hub's wall clock in epoch seconds (for the times shown),
        ``monotonic`` the clock durations are measured on: ``time.monotonic`` by
        default, but ``clock`` itself when only ``clock`` is injected (a test's
        stepped clock, which never jumps; a wall clock that does is then harmless
        but coarse: a node shows offline until it next speaks)."""
        self.base_prefix = base_prefix.rstrip("/")
        self.offline_after_seconds = offline_after_seconds
        self._clock = clock
        if monotonic is None:
            monotonic = time.monotonic if clock is time.time else clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # Least recently heard first (a live message moves a node to the end), so
        # forgetting the silent ones looks only at the front.
        self._nodes: dict[str, NodeState] = {}
        # Nodes never seen live, oldest first: the ones a new node may replace.
        self._unproven: dict[str, None] = {}
        self.ignored = 0  # malformed, oversized or over-limit messages

    @property
    def subscriptions(self) -> tuple[str, ...]:
        return (
            f"{self.base_prefix}/+/availability",
            f"{self.base_prefix}/+/+/state",
            f"{self.base_prefix}/+/versions",
            f"{self.base_prefix}/+/rollout/+",
        )

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Take one message (the ``MqttPublisher`` ``on_message`` callback)."""
        parts = topic.removeprefix(self.base_prefix + "/").split("/")
        if not topic.startswith(self.base_prefix + "/") or len(payload) > MAX_PAYLOAD_BYTES:
            self.ignored += 1
            return
        now = self._monotonic()
        with self._lock:
            self._forget_silent(now)
            if len(parts) == 2 and parts[1] == "availability":
                node = self._node(parts[0], now)
                if node is not None:
                    node.availability = payload.decode("utf-8", "replace")[:32]
                    if not retained:
                        self._heard(node, now, proven=node.availability == AVAILABLE)
                    return
            elif not payload and self._clear(parts):
                return
            elif len(parts) == 2 and parts[1] == "versions":
                parsed = protocol.parse_versions(payload)
                node = self._node(parts[0], now) if parsed is not None else None
                if node is not None and parsed is not None:
                    self._take_versions(node, list(parsed.labels or ()), parsed.plugins)
                    if not retained:
                        self._heard(node, now, proven=False)
                    return
            elif (
                len(parts) == 3
                and parts[1] == "rollout"
                and (
                    (report := _parse_report(parts[2], payload, None if retained else now))
                    is not None
                )
            ):
                # Before the state branch: <node>/rollout/state is also the state topic
                # of a plugin named "rollout"; a report names its plugin and a state.
                node = self._node(parts[0], now)  # the report named this plugin: a name
                if node is not None and node.admits(parts[2]):
                    node.rollouts[parts[2]] = report
                    if not retained:
                        self._heard(node, now, proven=False)
                    return
            elif len(parts) == 3 and parts[2] == "state":
                # A node is made only from a payload that parses as what its topic says.
                state = _parse_state(parts[1], payload, None if retained else now)
                node = self._node(parts[0], now) if state is not None else None
                if (
                    node is not None
                    and state is not None
                    and self._take_state(node, parts[1], state)
                ):
                    if not retained:
                        self._heard(node, now, proven=True)
                    return
            self.ignored += 1

    def _clear(self, parts: list[str]) -> bool:
        """An empty payload on a versions or report topic: the retained message was
        cleared (by hand, or a plugin removed), so the hub forgets what it said.
        True when ``parts`` is such a topic; a node is never made up from one."""
        node = self._nodes.get(parts[0])
        if len(parts) == 2 and parts[1] == "versions":
            if node is not None:
                node.labels, node.versions = [], {}
            return True
        if len(parts) == 3 and parts[1] == "rollout":
            if node is not None:
                node.rollouts.pop(parts[2], None)
            return True
        return False

    def _node(self, name: str, now: float) -> NodeState | None:
        """The node named ``name``, made if there is room, or None."""
        node = self._nodes.get(name)
        if node is None:
            if (
                not name
                or len(name) > MAX_NAME
                or name in RESERVED_NODE_IDS  # wasihost/deploy/# holds deliveries
                or (len(self._nodes) >= MAX_NODES and not self._make_room())
            ):
                return None
            node = self._nodes[name] = NodeState(name, added=now)
            self._unproven[name] = None
        return node

    def _make_room(self) -> bool:
        """Drop the oldest node never seen live: one that may be junk (any client
        can name a node), where a node seen live is kept. False when every node
        was seen live: the newcomer then waits for one to be forgotten."""
        oldest = next(iter(self._unproven), None)
        if oldest is None:
            return False
        self._drop(oldest)
        return True

    def _drop(self, name: str) -> None:
        del self._nodes[name]
        self._unproven.pop(name, None)

    def _heard(self, node: NodeState, now: float, *, proven: bool) -> None:
        """A live message from ``node``: a sign of life, which restarts its silence;
        ``proven`` when it is one only a real node sends (``online``, a state)."""
        node.last_seen = now
        self._nodes[node.node] = self._nodes.pop(node.node)  # now the most recently heard
        if proven:
            self._unproven.pop(node.node, None)

    def _forget_silent(self, now: float) -> None:
        """Drop the nodes offline and unheard for FORGET_AFTER_SECONDS, from the
        least recently heard on (a node never heard live counts from when it was
        kept). Stops at the first that stays, so each call costs what it drops."""
        while self._nodes:
            node = next(iter(self._nodes.values()))
            since = node.added if node.last_seen is None else node.last_seen
            if now - since <= FORGET_AFTER_SECONDS or self.is_online(node, now):
                return
            self._drop(node.node)

    @staticmethod
    def _take_state(node: NodeState, plugin: str, state: PublishedState) -> bool:
        """Store a parsed state unless it is a re-sent duplicate (its stamp is one
        of the last ones taken), retained while a live state is held, or one plugin
        too many. Arrival order decides what is newer, not the stamp: a node whose
        clock stepped back keeps being shown. True unless there was no room."""
        held = node.plugins.get(plugin)
        if held is None and not node.admits(plugin):
            return False
        stamps = node.stamps.setdefault(plugin, deque(maxlen=RECENT_STAMPS))
        if held is not None and (
            state.timestamp_ms in stamps or (state.received is None and held.received is not None)
        ):
            return True  # valid, just not news: still a sign of life
        stamps.append(state.timestamp_ms)
        node.plugins[plugin] = state
        return True

    @staticmethod
    def _take_versions(
        node: NodeState,
        labels: list[str],
        versions: dict[str, tuple[str | None, str | None]],
    ) -> None:
        """Replace the node's labels and versions: the document is its whole list,
        so a plugin it no longer runs goes. Plugins beyond the node's cap are dropped."""
        node.labels = labels
        node.versions = {}
        for plugin, version in versions.items():
            if node.admits(plugin):
                node.versions[plugin] = version

    def is_online(self, node: NodeState, now: float) -> bool:
        """Whether ``node`` counts as online at ``now`` on the monotonic clock.

        A negative age (only an injected clock that steps back can give one)
        is no sign of life: offline until the node speaks again, never online
        for as long as the clock stepped back.
        """
        return (
            node.availability != NOT_AVAILABLE
            and node.last_seen is not None
            and 0.0 <= now - node.last_seen <= self.offline_after_seconds
        )

    def to_json(self) -> dict[str, Any]:
        """The ``GET /api/fleet`` document. Ages are on the monotonic clock;
        ``last_seen_ms`` is today's wall clock minus that age."""
        wall, now = self._clock(), self._monotonic()
        with self._lock:
            self._forget_silent(now)
            nodes = []
            for name in sorted(self._nodes):
                node = self._nodes[name]
                seen = node.last_seen
                age = None if seen is None else max(0.0, now - seen)
                nodes.append(
                    {
                        "node": name,
                        "online": self.is_online(node, now),
                        "availability": node.availability,
                        "last_seen_ms": None if age is None else int((wall - age) * 1000),
                        "last_seen_age_seconds": None if age is None else round(age, 3),
                        "labels": list(node.labels),
                        "plugins": {
                            p: self._plugin_json(node, p, now) for p in sorted(node.plugin_names())
                        },
                    }
                )
            rollouts, omitted = self._rollouts(now)
        online = sum(1 for n in nodes if n["online"])
        doc: dict[str, Any] = {
            "offline_after_seconds": self.offline_after_seconds,
            "online": online,
            "offline": len(nodes) - online,
            "nodes": nodes,
            "rollouts": rollouts,
        }
        if omitted:
            doc["rollouts_omitted"] = omitted
        return doc

    @staticmethod
    def _plugin_json(node: NodeState, plugin: str, now: float) -> dict[str, Any]:
        """One plugin of a node: its latest state (or empty fields, for a plugin
        known only from versions or a report), its version and its rollout."""
        published = node.plugins.get(plugin)
        doc = (
            published.to_json(now)
            if published is not None
            else {"timestamp_ms": None, "age_seconds": None, "measurements": [], "status": {}}
        )
        version, content_hash = node.versions.get(plugin, (None, None))
        report = node.rollouts.get(plugin)
        doc["version"] = version
        doc["content_hash"] = content_hash
        doc["rollout"] = None if report is None else report.to_json(now)
        return doc

    def _rollouts(self, now: float) -> tuple[list[dict[str, Any]], int]:
        """Per (plugin, content hash) that a node's last report names: how many nodes,
        how many of the online ones are in each state, and how many are offline
        (whatever they said last: nobody knows what they do now). With the count of
        rollouts left out beyond MAX_ROLLOUTS (the ones with fewest nodes)."""
        groups: dict[tuple[str, str | None], list[tuple[RolloutReport, bool]]] = {}
        for node in self._nodes.values():
            online = self.is_online(node, now)
            for plugin, report in node.rollouts.items():
                if not _in_force(node, plugin, report):
                    continue
                groups.setdefault((plugin, report.content_hash), []).append((report, online))
        ranked = sorted(groups.items(), key=lambda g: (-len(g[1]), g[0][0], g[0][1] or ""))
        kept = sorted(ranked[:MAX_ROLLOUTS], key=lambda g: (g[0][0], g[0][1] or ""))
        rollouts = []
        for (plugin, content_hash), reports in kept:
            states = Counter(report.state for report, online in reports if online)
            votes = Counter(report.version for report, _ in reports if report.version is not None)
            version = min(votes, key=lambda v: (-votes[v], v)) if votes else None
            rollouts.append(
                {
                    "plugin": plugin,
                    "content_hash": content_hash,
                    "version": version,
                    "nodes": len(reports),
                    "states": {state: states[state] for state in protocol.STATES if states[state]},
                    "offline": sum(1 for _, online in reports if not online),
                }
            )
        return rollouts, len(ranked) - len(kept)


# States that say the node runs the reported version (it publishes its versions
# message just before "live"; while received or staging, that still names the old).
_RUNNING_STATES = frozenset({"live", "healthy"})


def _in_force(node: NodeState, plugin: str, report: RolloutReport) -> bool:
    """Whether a node's last report still describes it. Nodes never clear their
    reports: one set back by hand, or whose plugin left its config, would count
    as healthy on a version it no longer runs. Its versions message (when it sent
    one) says what runs; a report of a version on its way in, rolled back or
    refused names a version that is not running, so it holds whatever runs."""
    if not node.versions:
        return True  # no versions message: the report is all there is
    if plugin not in node.versions:
        return False
    running = node.versions[plugin][1]
    return report.state not in _RUNNING_STATES or running is None or running == report.content_hash


def _parse_state(plugin: str, payload: bytes, received: float | None) -> PublishedState | None:
    """A state payload as kept (bounded: see MAX_MEASUREMENTS), or None when it is
    malformed or ``plugin`` is no plugin name. ``received``: None if retained."""
    if not protocol.is_name(plugin):  # before parsing up to 64 KiB of JSON
        return None
    doc = protocol.load_json(payload)
    if not isinstance(doc, dict):
        return None
    # A stamp beyond any real value (400 digits is valid JSON) is no state.
    timestamp = protocol.bounded_int(doc.get("timestamp_ms"), minimum=0)
    if timestamp is None:
        return None
    units = doc.get("units")
    units = units if isinstance(units, dict) else {}
    status = doc.get("status")
    status = status if isinstance(status, dict) else {}
    values: dict[str, float | None] = {}
    for key, value in doc.items():
        if len(values) == MAX_MEASUREMENTS:
            break
        if key in ("timestamp_ms", "units", "status") or len(key) > MAX_NAME:
            continue
        if value is None:
            values[key] = None
        elif isinstance(value, int | float) and not isinstance(value, bool):
            values[key] = _finite(value)
    kept_status: dict[str, Any] = {}
    for key, value in status.items():
        if len(kept_status) == MAX_STATUS:
            break
        if len(key) <= MAX_NAME and _status_value(value):
            text = protocol.short_text(value, MAX_STATUS_TEXT)
            kept_status[key] = value if text is None else text
    return PublishedState(
        timestamp,
        values,
        {k: str(units[k])[:32] for k in values if k in units},
        kept_status,
        received,
    )


def _finite(value: int | float) -> float | None:
    """A measurement as a float, or None when it is none (NaN, Infinity, or an int
    of hundreds of digits: valid JSON, beyond any float)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _status_value(value: object) -> bool:
    """Whether a status entry's value is kept: a string, a bool, None, an int within
    protocol.bounded_int's range or a finite float (NaN and Infinity would make the
    hub's JSON invalid, should a parser ever let them through)."""
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return protocol.bounded_int(value) is not None
    return isinstance(value, float) and math.isfinite(value)


def _parse_report(plugin: str, payload: bytes, received: float | None) -> RolloutReport | None:
    """A rollout report for ``plugin`` (its topic's), or None: one
    ``protocol.parse_report`` does not read, or another plugin's."""
    read = protocol.parse_report(payload)
    if read is None or read.plugin != plugin:
        return None
    return RolloutReport(
        state=read.state,
        reason=read.reason,
        version=read.version,
        content_hash=read.content_hash,
        source=read.source,
        polls_ok=read.polls_ok,
        since_ms=read.since_ms,
        timestamp_ms=read.timestamp_ms,
        received=received,
    )
