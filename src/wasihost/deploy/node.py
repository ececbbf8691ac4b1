"""A node's side of deploying plugins over MQTT: verify, install, reload, gate, roll back.

Why it is built this way:

- Deliveries are retained messages, re-delivered at every connect, in no
  particular order. So a delivery is acted on only after its plugin's topics
  have been quiet for ``settle_seconds`` (the node's own topic may arrive
  after the "all" one), and a bundle whose content is already running is
  only reported again: reconnecting installs nothing twice.
- A deployed version's code lives under ``[deploy] dir``/<plugin>/current (a
  source plugin's folder, or ``plugin.wasm``); the host loads from there when
  it exists, else from the configured source (``disk.deployed_spec``). The version
  it replaced is kept in previous/ (or, for the first deployment, is the
  configured source itself), so a rollback needs nothing from the network.
- Installing is the hot-reload path (``Reloader.reload``: prepare off the
  loop, swap between polls, state carried), so no other plugin misses a poll.
  Everything blocking (verify, extract, moves) runs in ``asyncio.to_thread``.
- The health gate is judged from the plugin's own counters after each cycle:
  gate_polls successful polls with no trap within gate_seconds is healthy; a
  trap, a failed restart or the time running out rolls back by itself,
  without a deployer, so a node that lost the broker still recovers. A new
  version received ends the gate of the one it replaces (without a verdict:
  it gets its own), and a verdict whose work waited for the plugin's lock
  while another version was installed is dropped, so a verdict is only ever
  about the version it judged.
- Probation is written to deployed.json from the moment a version is
  installed, so a restart cannot forget it: at start the gate resumes (a
  fresh window), and a version that was on probation across more than
  ``disk.MAX_PROBATION_RESTARTS`` restarts (the host keeps dying under it) is
  rolled back before it loads again. A bundle rolled back here is remembered
  by its digest, so the delivery still retained on the broker does not
  install it again at the next connect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wasihost.atomic import fsync_path, fsync_tree
from wasihost.bundle import archive
from wasihost.bundle.create import hash_plugin
from wasihost.bundle.manifest import BundleManifest
from wasihost.bundle.verify import Verdict, verify_bundle
from wasihost.clock import wall_clock_ms
from wasihost.config import HostConfig
from wasihost.deploy import disk, protocol
from wasihost.deploy.protocol import Source, State
from wasihost.deploy.report import Rollout
from wasihost.runtime.plugin import Plugin, PluginSpec, PluginState
from wasihost.runtime.reload import Reloader
from wasihost.runtime.source import LIBRARY

log = logging.getLogger("wasihost.deploy.node")

SETTLE_SECONDS = 0.3

Publish = Callable[[str, bytes], None]  # topic, payload: queue a retained QoS 1 message


def bundle_digest(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


@dataclass
class Gate:
    """A new version on probation: its report (what is judged, and said with
    the verdict) and its counters when it went live."""

    report: Rollout
    started: float
    polls: int
    errors: int
    traps: int
    restarts: int
    bundle: str | None = None  # the digest of the bundle on probation (None: unknown)


@dataclass
class _Plugin:
    """What the node holds per plugin: deliveries by topic, the last acted-on
    bundle, the rollout report, the gate, and the spec from the config."""

    configured: PluginSpec
    deliveries: dict[tuple[Source, str], bytes] = field(default_factory=dict)
    acted: str | None = None  # the digest of the last bundle acted on
    rollout: Rollout | None = None
    gate: Gate | None = None
    timer: asyncio.TimerHandle | None = None
    rejected: str | None = None  # the digest of the last bundle rolled back here
    # A version on probation held back at start (a full disk): the "rejected"
    # entry its rollback on disk writes, before anything else is installed.
    held_back: dict[str, Any] | None = None


class DeployNode:
    """Listens for this node's deliveries on the shared MQTT connection and
    installs what verifies, reporting each step on the report topic."""

    def __init__(
        self,
        config: HostConfig,
        plugins: dict[str, Plugin],
        reloader: Reloader,
        configured: dict[str, PluginSpec],
        publish: Publish,
        *,
        settle_seconds: float = SETTLE_SECONDS,
        clock_ms: Callable[[], int] = wall_clock_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.labels = tuple(config.node.labels)
        self.plugins = plugins
        self.reloader = reloader
        self.publish = publish
        self.settle_seconds = settle_seconds
        self._clock_ms = clock_ms
        self._monotonic = monotonic
        self._held = {name: _Plugin(spec) for name, spec in configured.items()}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self.versions: dict[str, dict[str, str | None]] = {}

    @property
    def subscriptions(self) -> list[str]:
        return protocol.subscriptions(self.node_id, self.labels)

    # -- receiving -------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, retained: bool) -> bool:
        """A message from the shared connection; True when it was a delivery for us."""
        parsed = protocol.parse_delivery(topic)
        if parsed is None:
            return False
        source, audience, name = parsed
        if source == "node" and audience != self.node_id:
            return False
        if source == "label" and audience not in self.labels:
            return False
        held = self._held.get(name)
        if held is None:
            # Not a plugin of this node. Addressed to it by name, that is a mistake
            # worth a report; a label or all delivery is for the nodes that run the
            # plugin (the deployer knows them from the versions message), and a
            # refusal from every other node would stop each such rollout.
            if payload and source == "node":
                self._spawn(self._refuse_unknown(name, source, payload))
            return True
        deliveries = held.deliveries
        key = (source, audience)
        if not payload:
            # Cleared. With no delivery left the plugin stays as it is; with another
            # in force (a canary's node delivery cleared, all's still there), that
            # one is acted on now, not at the next restart's replay weeks later
            # (``_act`` only reports again a bundle it acted on already).
            deliveries.pop(key, None)
            if held.acted is None or self._effective(held) is None:
                return True
        else:
            deliveries[key] = payload
        loop = asyncio.get_running_loop()
        if held.timer is not None:
            held.timer.cancel()
        held.timer = loop.call_later(self.settle_seconds, self._settled, name)
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _settled(self, name: str) -> None:
        self._held[name].timer = None
        self._spawn(self._act(name))

    def _effective(self, held: _Plugin) -> tuple[Source, bytes] | None:
        """The most specific delivery present: node, then a label (in the
        config's order), then all."""
        for source in protocol.PRECEDENCE:
            audiences = {"node": [self.node_id], "label": list(self.labels), "all": [""]}[source]
            for audience in audiences:
                payload = held.deliveries.get((source, audience))
                if payload is not None:
                    return source, payload
        return None

    async def _refuse_unknown(self, name: str, source: Source, payload: bytes) -> None:
        verdict = await asyncio.to_thread(verify_bundle, payload, self.config)
        manifest = verdict.manifest
        self._report(
            Rollout(
                plugin=name,
                version=manifest.version if manifest else None,
                content_hash=manifest.content if manifest else None,
                state="refused",
                reason="not configured on this node",
                source=source,
            )
        )

    # -- installing ------------------------------------------------------------
    async def _act(self, name: str) -> None:
        async with self._locks.setdefault(name, asyncio.Lock()):
            held = self._held[name]
            chosen = self._effective(held)
            if chosen is None:
                return
            source, payload = chosen
            digest = await asyncio.to_thread(bundle_digest, payload)  # ~20 MB for a component
            held_back = held.held_back.get("bundle_sha256") if held.held_back else None
            if digest in (held.acted, held.rejected, held_back):
                held.acted = digest
                if held.rollout is not None:
                    self._report(held.rollout)  # re-delivered at a reconnect: say where we are
                return
            held.acted = digest
            await self._deliver(name, held, source, payload, digest)

    async def _deliver(
        self, name: str, held: _Plugin, source: Source, payload: bytes, digest: str
    ) -> None:
        incoming = disk.plugin_dir(self.config, name) / disk.INCOMING
        try:
            await self._verify_and_install(name, held, source, payload, digest, incoming)
        finally:  # installed (renamed away), refused or not needed: nothing stays
            await asyncio.to_thread(shutil.rmtree, incoming, True)

    def _verify_into(self, payload: bytes, incoming: Path) -> Verdict:
        """Verify, leaving a valid source bundle's files in incoming/plugin: the
        check reads them from there, so they are unpacked and written once."""
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir(parents=True)
        return verify_bundle(payload, self.config, into=incoming / disk.CHECKED)

    async def _verify_and_install(
        self,
        name: str,
        held: _Plugin,
        source: Source,
        payload: bytes,
        digest: str,
        incoming: Path,
    ) -> None:
        try:
            verdict = await asyncio.to_thread(self._verify_into, payload, incoming)
        except OSError as exc:
            base = Rollout(plugin=name, source=source, state="failed")
            self._report(dataclasses.replace(base, reason=f"install: {exc}"))
            return
        manifest = verdict.manifest
        running = self.versions.get(name) or {"version": None, "content_hash": None}
        base = Rollout(
            plugin=name,
            version=manifest.version if manifest else None,
            content_hash=manifest.content if manifest else None,
            source=source,
        )
        if manifest is not None and manifest.name != name:
            verdict = Verdict(
                "refused",
                f"the bundle is plugin {manifest.name}, delivered on the topic of {name}",
                manifest,
            )
        if verdict.status != "valid" or manifest is None:
            state: State = "needs-grants" if verdict.status == "needs-grants" else "refused"
            log.warning("[%s] delivery %s: %s", name, state, verdict.reason)
            # The running version's report stays what it was; this one says why not.
            self._report(dataclasses.replace(base, state=state, reason=verdict.reason))
            return
        plugin = self.plugins[name]  # the same keys: specs leave disabled plugins out
        if manifest.content == running["content_hash"]:
            if held.rollout is not None and held.rollout.content_hash == manifest.content:
                self._report(held.rollout)
            else:
                self._report(dataclasses.replace(base, state="healthy", reason="already running"))
            return
        kind = "source" if held.configured.source is not None else "component"
        if manifest.kind != kind:
            reason = f"the bundle is a {manifest.kind}; plugins.{name} is a {kind} on this node"
            self._report(dataclasses.replace(base, state="refused", reason=reason))
            return
        base.previous = dict(running)
        # The version running now is being replaced: its gate ends here, without a
        # verdict (the report about to be said is the new version's), and the new
        # version gets a gate of its own once it is live.
        replaced, held.gate = held.gate, None
        self._report(dataclasses.replace(base, state="received"))
        await self._install(name, held, plugin, digest, verdict, manifest, base, replaced)

    async def _install(
        self,
        name: str,
        held: _Plugin,
        plugin: Plugin,
        digest: str,
        verdict: Verdict,
        manifest: BundleManifest,
        base: Rollout,
        replaced: Gate | None,
    ) -> None:
        folder = disk.plugin_dir(self.config, name)
        if held.held_back is not None:
            # current/ holds the version held back, not the one running: rolled
            # back on disk first, previous/ becomes what runs, as its record says.
            try:
                await asyncio.to_thread(disk.restore_files, folder, held.held_back)
            except OSError as exc:
                self._report(dataclasses.replace(base, state="failed", reason=f"install: {exc}"))
                return
            held.rejected, held.held_back = held.held_back.get("bundle_sha256"), None
            plugin.spec = disk.pointed(held.configured, folder / disk.CURRENT) or held.configured
        running = dict(base.previous or {})
        probation: dict[str, Any] = {
            "restarts": 0,
            "since_ms": self._clock_ms(),
            "source": base.source,
            "previous": base.previous,
            "bundle_sha256": digest,
        }
        try:
            before = await asyncio.to_thread(
                self._stage_files, folder, verdict, manifest, running, probation
            )
        except OSError as exc:
            self._report(dataclasses.replace(base, state="failed", reason=f"install: {exc}"))
            held.gate = replaced  # nothing changed: the running version's gate goes on
            return
        rejected, held.rejected = held.rejected, None  # a new record: that bundle may come again
        self._report(dataclasses.replace(base, state="staging"))
        spec = disk.pointed(held.configured, folder / disk.CURRENT)
        if spec is None:
            await self._unstage(name, held, plugin, before, replaced, rejected)
            self._report(dataclasses.replace(base, state="failed", reason="unreadable install"))
            return
        plugin.spec = spec
        if not await self._reload(plugin):
            reason = plugin.stats.reload_error or "the new version did not go live"
            log.error("[%s] %s %s did not go live: %s", name, name, manifest.version, reason)
            await self._unstage(name, held, plugin, before, replaced, rejected)
            self._report(dataclasses.replace(base, state="failed", reason=reason))
            return
        self.versions[name] = {"version": manifest.version, "content_hash": manifest.content}
        self._publish_versions()
        live = dataclasses.replace(base, state="live", since_ms=self._clock_ms())
        held.gate = self._gate(plugin, live, digest)
        log.info("[%s] %s live; health gate started", name, manifest.version)
        self._report(live)

    def _gate(self, plugin: Plugin, report: Rollout, bundle: str | None) -> Gate:
        stats = plugin.stats
        return Gate(
            report,
            self._monotonic(),
            stats.polls,
            stats.errors,
            stats.traps,
            stats.restarts,
            bundle,
        )

    def _stage_files(
        self,
        folder: Path,
        verdict: Verdict,
        manifest: BundleManifest,
        running: dict[str, Any],
        probation: dict[str, Any],
    ) -> dict[str, Any]:
        """Move current/ to previous/ and the verified incoming/plugin/ (a
        component's file written there now) to current/; the record says it is
        on probation from here, before it ever loads. If a step fails (a full
        SD card, writing the record), the moves are undone: the files go back
        with the record, which was not written. Returns the record before, for
        ``disk.unstage_files`` should the new version not load.

        The durable order, since a start trusts the record: the new files and
        their folders are fsynced, then renamed, then the plugin folder (the
        renames) is fsynced, then the record is written durably. Otherwise a
        power cut just after the record can leave current/ empty or half
        written under a record naming the new version. Only an install pays
        for these fsyncs (a handful of files), never a start or a poll."""
        before = disk.read_record(folder)
        incoming = folder / disk.INCOMING / disk.CHECKED
        if manifest.kind == "component":
            incoming.mkdir()
            (incoming / archive.WASM).write_bytes(verdict.files[archive.WASM])
        else:
            library = Path(self.config.runtime.plugins_dir).resolve() / LIBRARY
            link = folder / LIBRARY  # the node's shared guest library, beside the plugin
            if library.is_dir() and not link.exists():
                link.symlink_to(library, target_is_directory=True)
        current, previous = folder / disk.CURRENT, folder / disk.PREVIOUS
        # The version before previous/ goes into incoming/, which _deliver removes.
        replaced = folder / disk.INCOMING / disk.PREVIOUS
        had_current = current.is_dir()
        moved: list[tuple[Path, Path]] = []
        try:
            fsync_tree(incoming)  # on the card before any rename or record names it
            for source, target, present in (
                (previous, replaced, previous.is_dir()),
                (current, previous, had_current),
                (incoming, current, True),
            ):
                if present:
                    source.rename(target)
                    moved.append((source, target))
            fsync_path(folder)  # the renames (and the library link) before the record
            record = {
                "current": {"version": manifest.version, "content_hash": manifest.content},
                "previous": running if had_current else None,  # None: the configured source
                "probation": probation,
            }
            disk.write_record(folder / disk.RECORD, record)
        except Exception:
            for source, target in reversed(moved):
                target.rename(source)
            raise
        return before

    async def _unstage(
        self,
        name: str,
        held: _Plugin,
        plugin: Plugin,
        before: dict[str, Any],
        gate: Gate | None,
        rejected: str | None,
    ) -> None:
        """Back to the version before a delivery that did not load, as it was:
        if it was on probation it still is, on disk and judged by its own gate
        (``gate``, ended when the delivery came), since nothing has proven it
        meanwhile; a rollback writes a record without probation, and would have
        left it running unjudged, across restarts too."""
        folder = disk.plugin_dir(self.config, name)
        await asyncio.to_thread(disk.unstage_files, folder, before)
        plugin.spec = disk.pointed(held.configured, folder / disk.CURRENT) or held.configured
        await self._reload(plugin)
        held.gate, held.rejected = gate, rejected

    async def _restore(
        self, name: str, held: _Plugin, plugin: Plugin, rejected: dict[str, Any] | None = None
    ) -> bool:
        """Back to the version before the delivery, on disk and (if it was
        replaced) live; True when the previous version is running again."""
        folder = disk.plugin_dir(self.config, name)
        await asyncio.to_thread(disk.restore_files, folder, rejected)
        plugin.spec = disk.pointed(held.configured, folder / disk.CURRENT) or held.configured
        return await self._reload(plugin)

    async def _reload(self, plugin: Plugin) -> bool:
        """Through the reloader (one reload of a plugin at a time); True when the
        spec's files are the live version, even if the file watcher got there first."""
        if await self.reloader.reload(plugin.name):
            return True
        return plugin.stats.reload_error is None and plugin.signature == (
            await asyncio.to_thread(plugin.spec.signature)
        )

    # -- the health gate -------------------------------------------------------
    def after_cycle(self) -> None:
        """Judge each version on probation; called after every poll cycle."""
        for name, held in self._held.items():
            gate, plugin = held.gate, self.plugins[name]
            if gate is None:
                continue
            rollout, stats = gate.report, plugin.stats
            polls_ok = max(0, (stats.polls - gate.polls) - (stats.errors - gate.errors))
            traps = stats.traps - gate.traps
            if traps:
                reason = f"trapped: {stats.last_error}" if stats.last_error else "trapped"
                self._start_rollback(name, held, reason)
            elif plugin.state is PluginState.FAILED:
                self._start_rollback(name, held, f"failed: {stats.last_error}")
            elif polls_ok >= self.config.deploy.gate_polls:
                held.gate = None
                log.info("[%s] %s healthy after %d polls", name, rollout.version, polls_ok)
                self._report(dataclasses.replace(rollout, state="healthy", polls_ok=polls_ok))
                self._spawn(self._end_probation(name, gate.bundle))
            elif self._monotonic() - gate.started > self.config.deploy.gate_seconds:
                reason = (
                    f"only {polls_ok} of {self.config.deploy.gate_polls} polls succeeded "
                    f"within {self.config.deploy.gate_seconds:g} s"
                )
                self._start_rollback(name, held, reason)
            elif polls_ok != rollout.polls_ok:
                rollout.polls_ok = polls_ok
                self._report(rollout)

    async def _end_probation(self, name: str, bundle: str | None) -> None:
        """Drop the probation of ``bundle`` from deployed.json; not another's: a
        version installed while this waited for the lock is on probation itself."""

        def end(folder: Path) -> None:
            probation = disk.read_record(folder).get("probation")
            if isinstance(probation, dict) and probation.get("bundle_sha256") == bundle:
                disk.forget_uncounted(folder)  # even if the record cannot be written: it passed
                disk.update_record(folder, probation=None)

        async with self._locks.setdefault(name, asyncio.Lock()):
            try:
                await asyncio.to_thread(end, disk.plugin_dir(self.config, name))
            except OSError as exc:  # the next start resumes a gate it passes again
                log.warning("[%s] %s: probation not cleared: %s", name, disk.RECORD, exc)

    def _start_rollback(self, name: str, held: _Plugin, reason: str) -> None:
        gate, held.gate = held.gate, None  # judged: no second verdict at the next cycle
        assert gate is not None
        self._spawn(self._rollback(name, held, reason, gate))

    async def _rollback(self, name: str, held: _Plugin, reason: str, gate: Gate) -> None:
        async with self._locks.setdefault(name, asyncio.Lock()):
            rollout, plugin, bundle = gate.report, self.plugins[name], gate.bundle
            running = (self.versions.get(name) or {}).get("content_hash")
            if running != rollout.content_hash:  # replaced while this waited for the lock
                log.info(
                    "[%s] %s not rolled back (%s): another version was installed meanwhile",
                    name,
                    rollout.version,
                    reason,
                )
                return
            log.error("[%s] %s rolled back: %s", name, rollout.version, reason)
            previous = rollout.previous or {"version": None, "content_hash": None}
            rolled_back = dataclasses.replace(rollout, state="rolled-back", reason=reason)
            rejected = {"bundle_sha256": bundle, "report": rolled_back.to_json()}
            try:
                ok = await self._restore(name, held, plugin, rejected)
            except OSError as exc:  # the files are as they were: held back, as at a start
                held.held_back = rejected
                folder = disk.plugin_dir(self.config, name)
                plugin.spec = (
                    disk.pointed(held.configured, folder / disk.PREVIOUS) or held.configured
                )
                ok = await self._reload(plugin)
                reason += f"; not on disk ({disk.RECORD}: {exc}), so a restart judges it again"
            held.rejected = bundle
            if ok:
                self.versions[name] = dict(previous)
                self._publish_versions()
            else:
                reason += f"; the previous version did not load: {plugin.stats.reload_error}"
            self._report(dataclasses.replace(rolled_back, reason=reason))

    # -- reporting -------------------------------------------------------------
    def _report(self, rollout: Rollout) -> None:
        now = self._clock_ms()
        if rollout.since_ms == 0:
            rollout.since_ms = now
        rollout.timestamp_ms = now
        held = self._held.get(rollout.plugin)
        if held is not None and rollout.state not in ("refused", "needs-grants"):
            held.rollout = rollout
        payload = json.dumps(rollout.to_json(), sort_keys=True).encode()
        self.publish(protocol.report_topic(self.node_id, rollout.plugin), payload)

    def republish(self) -> None:
        """The versions and each plugin's current report, again: called at every
        (re)connection, since a broker restarted without persistence has lost
        the retained ones and nothing else would publish them before a change."""
        self._publish_versions()
        for held in self._held.values():
            if held.rollout is not None:
                payload = json.dumps(held.rollout.to_json(), sort_keys=True).encode()
                self.publish(protocol.report_topic(self.node_id, held.rollout.plugin), payload)

    def _publish_versions(self) -> None:
        payload = protocol.versions_payload(self.labels, self.versions)
        self.publish(protocol.versions_topic(self.node_id), payload)

    async def start(self) -> None:
        """Learn what runs now (content hashes: file reads, off the loop) and
        publish it; retained, so the broker has it from the first connect (and
        ``republish`` says it again at every connect)."""

        def read() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str | None]]]:
            records = {
                name: disk.read_record(disk.plugin_dir(self.config, name)) for name in self._held
            }
            found: dict[str, dict[str, str | None]] = {}
            for name, plugin in self.plugins.items():
                which = self._runs_from(plugin)  # (previous/: a version held back at start)
                deployed = records.get(name, {}).get(which) if which is not None else None
                if isinstance(deployed, dict):
                    found[name] = {  # (a damaged record: the loaded content's hash below)
                        "version": deployed.get("version"),
                        "content_hash": deployed.get("content_hash"),
                    }
                    continue
                loaded = plugin.loaded_content  # hashed already, from the bytes it loaded
                if loaded is not None:
                    found[name] = {"version": None, "content_hash": loaded}
                    continue
                try:
                    found[name] = {
                        "version": None,
                        "content_hash": hash_plugin(plugin.spec.watched),
                    }
                except Exception:  # unreadable: the plugin failed to load too
                    found[name] = {"version": None, "content_hash": None}
            return records, found

        records, self.versions = await asyncio.to_thread(read)
        self._publish_versions()
        for name, record in records.items():
            self._resume(name, record)

    def _runs_from(self, plugin: Plugin) -> str | None:
        """Which deployed folder ``plugin`` loaded: current/, previous/ (the
        version on probation held back at start), or None: its configured code."""
        watched = plugin.spec.watched.resolve()
        folder = disk.plugin_dir(self.config, plugin.name).resolve()
        for which in (disk.CURRENT, disk.PREVIOUS):
            if watched.is_relative_to(folder / which):
                return which
        return None

    def _resume(self, name: str, record: dict[str, Any]) -> None:
        """What deployed.json says at start: a version still on probation gets a
        fresh gate; a version rolled back here is remembered, and its report
        said again (the one ``disk._count_restart`` rolled back is reported here)."""
        held, plugin = self._held[name], self.plugins[name]
        rejected = record.get("rejected")
        if isinstance(rejected, dict):
            held.rejected = rejected.get("bundle_sha256")
            try:
                report = Rollout(**rejected.get("report") or {})
            except TypeError:  # a record from another version of this code
                report = None
            if report is not None:
                self._report(report)
        probation, current = record.get("probation"), record.get("current")
        if not isinstance(probation, dict) or not isinstance(current, dict):
            return
        which = self._runs_from(plugin)
        if which != disk.CURRENT:  # not what loaded: nothing to judge
            if (
                disk.pointed(held.configured, disk.plugin_dir(self.config, name) / disk.CURRENT)
                is not None
            ):
                self._hold_back(name, held, record, probation, which)
            return  # (else another kind than the config's)
        live = disk.probation_report(name, record, probation, "live")
        held.gate = self._gate(plugin, live, probation.get("bundle_sha256"))
        log.info("[%s] %s on probation at a restart: health gate started again", name, live.version)
        self._report(live)

    def _hold_back(
        self,
        name: str,
        held: _Plugin,
        record: dict[str, Any],
        probation: dict[str, Any],
        which: str | None,
    ) -> None:
        """Say that ``disk.deployed_spec`` held the version on probation back: to
        a deployer it is a version this node does not run, a final state
        (rolled-back), not a silence until its timeout. Its bundle, retained on
        the broker, is not installed again while this start lasts."""
        ran = (self.versions.get(name) or {}).get("version")
        instead = f"{ran} from previous/" if which == disk.PREVIOUS else "the configured version"
        reason = (
            f"held back at start: on probation, and {disk.RECORD} could not be written to count "
            f"the restart or roll it back (a full disk?); {instead} runs, until a start "
            "with room rolls it back"
        )
        report = disk.probation_report(name, record, probation, "rolled-back", reason)
        held.held_back = {
            "bundle_sha256": probation.get("bundle_sha256"),
            "report": report.to_json(),
        }
        self._report(report)

    async def wait_idle(self) -> None:
        """Wait for deliveries and rollbacks in flight (tests and shutdown)."""
        while self._tasks or any(h.timer is not None for h in self._held.values()):
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                await asyncio.sleep(0.01)
