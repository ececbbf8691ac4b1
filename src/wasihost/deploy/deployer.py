"""The deployer's side of a rollout over MQTT, as a state machine without I/O.

``Rollout`` is fed what the broker says (nodes' availability and their
rollout reports) and the time; it answers with the retained messages to
publish and the progress lines to print. ``deployer_mqtt`` does the network
and the terminal. The protocol (v1) is in docs/MQTT.md; what the deployer
does with it is in docs/BUNDLES.md ("Deploying with ``wasihost deploy``").

The stages:

1. Canaries (``--canary ID ...`` or ``--canary-label L``), when given: the
   bundle goes to their delivery topics. Every canary must report this
   content hash ``healthy`` before the rollout goes on; a canary that reports
   ``rolled-back``, ``failed``, ``refused`` or ``needs-grants`` stops it, and so
   does the timeout. A stopped canary stage clears the canaries' deliveries
   (an empty retained payload), so no node is handed the version again when
   it reconnects.
2. The targets (node topics, a label topic or the all topic): the rollout is
   done when every known target that is online has reached a final state. A
   node that is offline does not hold the rollout up: the retained delivery
   reaches it when it comes back, and the summary counts it as offline; but
   one that went offline after reporting this version, before a final state,
   does (a crash during the gate looks like that). When
   a target rolls back or fails, the deliveries that could hand the version
   to more nodes are cleared: that node's own topic, or the shared label or
   all topic (nodes that already run it keep running it; the node decides
   that, by its health gate). ``refused`` and ``needs-grants`` are about one
   node's config and clear nothing shared.

Who the targets are: each node publishes, retained, the labels it carries
and its plugins' versions (``wasihost/<node>/versions``). The targets of a
label are the nodes whose versions message lists it; of ``all``, every node
with a versions message (a node without one does not run the deploy side, or
has not said so yet); of either, only nodes whose versions message lists the
plugin (the others ignore a shared delivery of it). A node whose labels are
unknown (no versions message, or one without labels) may still be a target:
it counts once it reports this content hash, and while one is online a label
or all stage also waits until no new node has reported for
``settle_seconds``, as it must when nobody says who the targets are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from wasihost.deploy.protocol import all_topic, label_topic, node_topic
from wasihost.deploy.protocol import parse_report as read_report

BAD = frozenset({"refused", "needs-grants", "rolled-back", "failed"})
SPREADS = frozenset({"rolled-back", "failed"})  # a version that broke, not a config mismatch
FINAL = BAD | {"healthy"}
LABEL_SETTLE_SECONDS = 5.0

# Exit codes of ``wasihost deploy`` (2 is any bad input, from the CLI).
EXIT_HEALTHY, EXIT_STOPPED, EXIT_TIMEOUT = 0, 1, 5

Kind = Literal["node", "label", "all"]
Outcome = Literal["healthy", "stopped", "timeout"]
Echo = Callable[[str], None]


def availability_topic(node: str) -> str:
    return f"wasihost/{node}/availability"


def node_of(topic: str, suffix: str) -> str | None:
    """The node id in ``wasihost/<node>/<suffix...>``, else None."""
    parts = topic.split("/")
    tail = suffix.split("/")
    if len(parts) != 2 + len(tail) or parts[0] != "wasihost" or parts[2:] != tail:
        return None
    return parts[1] if parts[1] and parts[1] != "deploy" else None


@dataclass(frozen=True)
class Target:
    """Where a stage delivers: node topics, one label's topic, or the all topic."""

    kind: Kind
    nodes: tuple[str, ...] = ()
    label: str = ""

    def topics(self, plugin: str) -> list[str]:
        if self.kind == "node":
            return [node_topic(node, plugin) for node in self.nodes]
        if self.kind == "label":
            return [label_topic(self.label, plugin)]
        return [all_topic(plugin)]

    def describe(self) -> str:
        if self.kind == "node":
            return "node " + ", ".join(self.nodes)
        if self.kind == "label":
            return f"label {self.label}"
        return "all nodes"


@dataclass(frozen=True)
class Report:
    """One node's retained ``wasihost/<node>/rollout/<plugin>`` message."""

    node: str
    plugin: str
    version: str
    content_hash: str
    state: str
    reason: str = ""
    previous: dict[str, str | None] | None = None
    polls_ok: int = 0
    since_ms: int = 0
    timestamp_ms: int = 0
    source: str = ""


def parse_report(node: str, payload: bytes) -> Report | None:
    """A report, or None for an empty (cleared) or unreadable payload: a node
    that publishes nonsense is shown as not reporting, never trusted. Read by
    ``protocol.parse_report``, with the hub's bounds; one without a content
    hash names no version the deployer could wait for."""
    read = read_report(payload)
    if read is None or read.content_hash is None:
        return None
    return Report(
        node=node,
        plugin=read.plugin,
        version=read.version or "",
        content_hash=read.content_hash,
        state=read.state,
        reason=read.reason or "",
        previous=read.previous,
        polls_ok=read.polls_ok or 0,
        since_ms=read.since_ms or 0,
        timestamp_ms=read.timestamp_ms or 0,
        source=read.source or "",
    )


def short(content_hash: str) -> str:
    return content_hash.removeprefix("sha256:")[:12]


@dataclass
class NodeView:
    """What the deployer knows of one node: online, and its state for this version."""

    online: bool | None = None  # None: no availability seen
    known: bool = False  # a versions message seen: the node runs the deploy side
    labels: frozenset[str] | None = None  # from its versions message; None: not said
    plugins: frozenset[str] | None = None  # the plugins it runs, likewise
    state: str | None = None  # of this content hash; None until it reports it
    reason: str = ""
    other: str = ""  # the version it reports while not (yet) on this one
    first_report_at: float | None = None


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes  # b"": clear the retained delivery


@dataclass
class Rollout:
    """One rollout of one bundle. Feed it ``availability``, ``report`` and
    ``tick``; each returns the messages to publish (retained, QoS 1)."""

    plugin: str
    version: str
    content_hash: str
    bundle: bytes
    target: Target
    canary: Target | None
    timeout_seconds: float
    echo: Echo
    settle_seconds: float = LABEL_SETTLE_SECONDS
    nodes: dict[str, NodeView] = field(default_factory=dict)
    stage: Literal["new", "canary", "target", "done"] = "new"
    outcome: Outcome | None = None
    why: str = ""
    cleared: set[str] = field(default_factory=set)
    ended_in: Literal["canary", "target"] | None = None  # the stage it finished in
    ended_at: float = 0.0
    _deadline: float = 0.0
    _stage_started: float = 0.0
    _last_new_reporter: float = 0.0
    _stage_reporters: set[str] = field(default_factory=set)
    _published: list[str] = field(default_factory=list)  # topics this rollout delivered on

    # -- inputs ---------------------------------------------------------------
    def availability(self, node: str, online: bool, now: float) -> list[Publish]:
        view = self.nodes.setdefault(node, NodeView())
        if view.online is not None and view.online != online and self.stage != "new":
            self.echo(f"  {node}: {'online' if online else 'offline'}")
        view.online = online
        return self._advance(now)

    def versions(
        self,
        node: str,
        labels: Iterable[str] | None,
        now: float,
        plugins: Iterable[str] | None = None,
    ) -> list[Publish]:
        """A node's versions message: it takes deliveries, carries ``labels`` and
        runs ``plugins`` (None: the message does not say)."""
        view = self.nodes.setdefault(node, NodeView())
        view.known = True
        view.labels = frozenset(labels) if labels is not None else None
        view.plugins = frozenset(plugins) if plugins is not None else None
        return self._advance(now)

    def report(self, report: Report, now: float) -> list[Publish]:
        if report.plugin != self.plugin:
            return []
        view = self.nodes.setdefault(report.node, NodeView())
        if report.content_hash != self.content_hash:
            # Another version (the one it runs, or an older rollout's): shown, not counted.
            view.other = f"{report.version} ({short(report.content_hash)}) {report.state}"
            return []
        if self.stage == "new" and report.state != "healthy":
            # Retained from an earlier attempt: the grants may be fixed since, the
            # bundle signed anew, the node long gone. Only "already healthy" holds.
            return []
        if view.state == report.state:
            return []
        if view.first_report_at is None:
            view.first_report_at = now
        if report.node not in self._stage_reporters and self.stage in ("canary", "target"):
            self._stage_reporters.add(report.node)
            self._last_new_reporter = now
        view.state, view.reason = report.state, report.reason
        if self.stage != "new":
            self.echo(self._line(report))
        return self._advance(now)

    def start(self, now: float) -> list[Publish]:
        """The first deliveries: the canaries', else the targets'."""
        # Retained reports seen before the start count: a node already on this
        # version says so.
        self._deadline = now + self.timeout_seconds
        if self.canary is not None:
            self.echo(f"canary: {self.canary.describe()}")
            out = self._enter("canary", self.canary, now)
        else:
            self.echo(f"deploying to {self.target.describe()}")
            out = self._enter("target", self.target, now)
        for node, view in sorted(self.nodes.items()):
            if view.state is not None and self._counts(node):
                self.echo(f"  {node}: already {view.state} on {self.version}")
        return out + self._advance(now)

    def tick(self, now: float) -> list[Publish]:
        return self._advance(now)

    # -- the stages -------------------------------------------------------------
    def _enter(
        self, stage: Literal["canary", "target"], target: Target, now: float
    ) -> list[Publish]:
        self.stage = stage
        self._stage_started = now
        self._last_new_reporter = now
        self._stage_reporters = {n for n, v in self.nodes.items() if v.state is not None}
        topics = target.topics(self.plugin)
        if stage == "target" and self.canary is not None and target.kind == "node":
            # A canary that is also a target already has it on its node topic.
            done = set(self.canary.topics(self.plugin))
            topics = [t for t in topics if t not in done]
        self._published += topics
        out = [Publish(topic, self.bundle) for topic in topics]
        if stage == "target" and self.canary is not None and target.kind != "node":
            # Promoted to a shared topic: the canaries' own deliveries (the same
            # bytes) would outrank the next label/all delivery and pin them to
            # this version whatever the targets do now, so they go at once.
            out += self._clear(self.canary.topics(self.plugin))
        return out

    def deliveries(self) -> list[Publish]:
        """The deliveries in force: published by this rollout and not cleared
        (what to publish again to a broker that lost its retained messages)."""
        return [Publish(t, self.bundle) for t in self._published if t not in self.cleared]

    def _stage_target(self) -> Target:
        if self.stage == "canary" or (self.stage == "done" and self.ended_in == "canary"):
            assert self.canary is not None
            return self.canary
        return self.target

    def carries(self, node: str, target: Target) -> bool | None:
        """Whether ``node`` is one of ``target``'s; None when it cannot be told
        (it never said which labels it carries, or whether it takes deliveries)."""
        if target.kind == "node":
            return node in target.nodes
        view = self.nodes.get(node, NodeView())
        if view.plugins is not None and self.plugin not in view.plugins:
            # A shared delivery of a plugin it does not run: the node ignores it.
            return False
        if target.kind == "label":
            return None if view.labels is None else target.label in view.labels
        return True if view.known else None

    def _counts(self, node: str) -> bool:
        """Whether ``node`` is one the current stage waits for: a known target,
        or an unknown node that reported this content hash in the stage."""
        carries = self.carries(node, self._stage_target())
        return node in self._stage_reporters if carries is None else carries

    def unknown_online(self, target: Target) -> bool:
        """Whether an online node might be one of ``target``'s without having said so."""
        return any(
            view.online and self.carries(node, target) is None for node, view in self.nodes.items()
        )

    def waited_for(self) -> list[str]:
        target = self._stage_target()
        if target.kind == "node":
            return list(target.nodes)
        return sorted(n for n in self.nodes if self._counts(n))

    def _advance(self, now: float) -> list[Publish]:
        if self.stage in ("new", "done"):
            return []
        out: list[Publish] = []
        waited = self.waited_for()
        views = {node: self.nodes.setdefault(node, NodeView()) for node in waited}
        bad = sorted(n for n, v in views.items() if v.state in BAD)
        if self.stage == "canary":
            if bad:
                what = "; ".join(f"{n} {views[n].state}: {views[n].reason}" for n in bad)
                return self._stop(f"canary {what}", self._published, now)
            if self._complete(views, now, canary=True):
                self.echo(f"canaries healthy: promoting to {self.target.describe()}")
                out += self._enter("target", self.target, now)
                waited = self.waited_for()
                views = {node: self.nodes.setdefault(node, NodeView()) for node in waited}
            elif now >= self._deadline:
                return self._finish("timeout", "the canaries did not all report healthy", now)
            else:
                return out
        # The target stage.
        spread = sorted(n for n, v in views.items() if v.state in SPREADS)
        if spread:
            out += self._clear_spreading(spread)
        if self._complete(views, now, canary=False):
            bad = sorted(n for n, v in views.items() if v.state in BAD)
            if bad:
                what = "; ".join(f"{n} {views[n].state}" for n in bad)
                self._finish("stopped", what, now)
            else:
                self._finish("healthy", "", now)
        elif now >= self._deadline:
            bad = sorted(n for n, v in views.items() if v.state in BAD)
            if bad:
                self._finish("stopped", "; ".join(f"{n} {views[n].state}" for n in bad), now)
            else:
                gone = sorted(
                    n
                    for n, v in views.items()
                    if v.online is False and v.state not in FINAL and v.state is not None
                )
                why = "not every online target reported healthy"
                if gone:
                    why += "; offline before a final state (a crash?): " + ", ".join(
                        f"{n} ({views[n].state})" for n in gone
                    )
                self._finish("timeout", why, now)
        return out

    def _complete(self, views: dict[str, NodeView], now: float, *, canary: bool) -> bool:
        """Every target the stage waits for is final: named canaries even when
        offline, since they were online at the start; others when online, or
        when they went offline after reporting this version but before a final
        state (gone while on probation is how a crash looks: not proven). One
        offline or never seen gets its retained delivery when it connects."""
        target = self._stage_target()
        blocking_offline = canary and target.kind == "node"
        pending = [
            n
            for n, v in views.items()
            if v.state not in FINAL and (blocking_offline or v.online or v.state is not None)
        ]
        if pending:
            return False
        if target.kind == "node":
            return True
        reported = any(v.state is not None for v in views.values())
        if canary and not reported:
            return False  # no carrier proved it: never promote on an empty canary stage
        if self.unknown_online(target):
            # A node that never said what it carries may be a target still to report.
            settled = now - max(self._stage_started, self._last_new_reporter) >= self.settle_seconds
            return reported and settled
        return True

    def _clear_spreading(self, nodes: list[str]) -> list[Publish]:
        target = self.target
        if target.kind == "node":
            topics = [node_topic(n, self.plugin) for n in nodes if n in target.nodes]
        else:
            topics = target.topics(self.plugin)
        return self._clear([t for t in topics if t in self._published])

    def _clear(self, topics: Iterable[str]) -> list[Publish]:
        out = []
        for topic in topics:
            if topic not in self.cleared:
                self.cleared.add(topic)
                out.append(Publish(topic, b""))
        return out

    def _stop(self, why: str, topics: list[str], now: float) -> list[Publish]:
        out = self._clear(topics)
        self._finish("stopped", why, now)
        return out

    def _finish(self, outcome: Outcome, why: str, now: float) -> list[Publish]:
        if outcome == "timeout" and self.stage == "canary":
            # Nothing was promoted: clear the canaries so none takes it up later.
            out = self._clear(self._published)
        else:
            out = []
        assert self.stage in ("canary", "target")
        self.ended_in = self.stage
        self.ended_at = now
        self.stage = "done"
        self.outcome = outcome
        self.why = why
        return out

    # -- output -----------------------------------------------------------------
    def _line(self, report: Report) -> str:
        line = f"  {report.node}: {report.state}"
        if report.state == "healthy" and report.polls_ok:
            line += f" ({report.polls_ok} polls)"
        if report.reason:
            line += f": {report.reason}"
        return line

    @property
    def exit_code(self) -> int:
        return {"healthy": EXIT_HEALTHY, "stopped": EXIT_STOPPED}.get(
            self.outcome or "timeout", EXIT_TIMEOUT
        )

    def summary(self) -> list[str]:
        """The end: what happened, then the counts over every node involved."""
        involved = set(self.waited_for())
        if self.canary is not None and self.canary.kind == "node":
            involved |= set(self.canary.nodes)
        if self.target.kind == "node":
            involved |= set(self.target.nodes)
        involved |= {n for n, v in self.nodes.items() if v.state is not None}
        counts: dict[str, list[str]] = {}
        for node in sorted(involved):
            view = self.nodes.get(node, NodeView())
            if view.state == "healthy":
                key = "healthy"
            elif view.state in ("rolled-back", "failed"):
                key = "rolled back"
            elif view.state in ("refused", "needs-grants"):
                key = "refused"
            elif view.online is False or view.online is None:
                key = "offline"
            elif view.state is None:
                key = "not reporting"
            else:
                key = "in progress"
            counts.setdefault(key, []).append(node)
        head = {
            "healthy": f"{self.plugin} {self.version} is healthy on every online target",
            "stopped": f"stopped: {self.why}",
            "timeout": f"timed out after {self.timeout_seconds:g} s: {self.why}",
        }[self.outcome or "timeout"]
        lines = [head]
        if self.cleared:
            lines.append("cleared deliveries: " + ", ".join(sorted(self.cleared)))
        order = ("healthy", "rolled back", "refused", "in progress", "offline", "not reporting")
        parts = [f"{len(counts[k])} {k} ({', '.join(counts[k])})" for k in order if k in counts]
        lines.append("summary: " + ("; ".join(parts) if parts else "no node reported"))
        return lines
