"""A node's side of deploying plugins over MQTT: verify, install, reload, gate, roll back.

Why it is built this way:

- Deliveries are retained messages, re-delivered at every connect, in no
  particular order. So a delivery is acted on only after its plugin's topics
  have been quiet for ``settle_seconds`` (the node's own topic may arrive
  after the "all" one), and a bundle whose content is already running is
  only reported again: reconnecting installs nothing twice.
- A deployed version's code lives under ``[deploy] dir``/<plugin>/current (a
  source plugin's folder, or ``plugin.wasm``); the host loads from there when
  it exists, else from the configured source (``deployed_spec``). The version
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
  ``MAX_PROBATION_RESTARTS`` restarts (the host keeps dying under it) is
  rolled back before it loads again. A bundle rolled back here is remembered
  by its digest, so the delivery still retained on the broker does not
  install it again at the next connect.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from wasihost.atomic import write_atomically
from wasihost.bundle import archive
from wasihost.bundle.create import hash_plugin
from wasihost.bundle.manifest import BundleManifest
from wasihost.bundle.verify import Verdict, verify_bundle
from wasihost.clock import wall_clock_ms
from wasihost.config import HostConfig
from wasihost.deploy import protocol
from wasihost.deploy.protocol import Source, State
from wasihost.runtime.manifest import ManifestError, read_manifest
from wasihost.runtime.plugin import Plugin, PluginSpec, PluginState
from wasihost.runtime.reload import Reloader
from wasihost.runtime.source import LIBRARY

log = logging.getLogger("wasihost.deploy.node")

CURRENT = "current"
PREVIOUS = "previous"
INCOMING = "incoming"
CHECKED = "plugin"  # incoming/plugin: the delivery as verified (no _shared beside it)
# deployed.json: {"current": {version, content_hash} | null, "previous": ... | null,
#   "probation": {restarts, since_ms, source, previous, bundle_sha256} while gated,
#   "rejected": {bundle_sha256, report} for the last version rolled back here}
RECORD = "deployed.json"
ROLLING = ".rolling-back"  # current/ while a rollback writes its record (undone if it cannot)
UNCOUNTED = ".restart-uncounted"  # + a tag of the bundle: a restart deployed.json could not count
SETTLE_SECONDS = 0.3
MAX_PROBATION_RESTARTS = 1  # one more start on probation rolls the version back

Publish = Callable[[str, bytes], None]  # topic, payload: queue a retained QoS 1 message


def plugin_dir(config: HostConfig, name: str) -> Path:
    return Path(config.deploy.dir) / name


def _deployed_code(folder: Path) -> tuple[Path | None, Path | None]:
    """(source folder, wasm file) of a deployed version in ``folder``; (None, None)."""
    if (folder / archive.WASM).is_file():
        return None, folder / archive.WASM
    if (folder / "plugin.toml").is_file():
        return folder, None
    return None, None


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """deployed.json by rename: a crash leaves the old record or the new, never half."""
    write_atomically(path, (json.dumps(record, indent=2) + "\n").encode(), durable=True)


def _read_record(folder: Path) -> dict[str, Any]:
    """deployed.json, or {} when there is none (or it cannot be read: then
    nothing is on probation and nothing is remembered as rejected)."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _update_record(folder: Path, **changes: Any) -> None:
    """Set (or, given None, drop) keys of deployed.json, atomically."""
    record = _read_record(folder)
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    _write_record(folder / RECORD, record)


def bundle_digest(payload: bytes) -> str:
    return "sha256:" + hashlib.sha256(payload).hexdigest()


def deployed_spec(config: HostConfig, spec: PluginSpec) -> PluginSpec:
    """``spec`` pointing at the deployed version, if there is one of the same kind.

    Called at start for every plugin, before any loads: a node that restarts
    runs what was deployed to it, not what its config names, unless that
    version has been on probation across too many restarts (``_count_restart``)."""
    if not config.deploy.enabled:
        return spec
    folder = plugin_dir(config, spec.name)
    try:
        _finish_staging(folder, spec.name)
    except OSError as exc:  # the host still starts, on what the folders hold
        log.warning("[%s] an install cut short could not be undone: %s", spec.name, exc)
    which: str | None = CURRENT
    try:
        which = _count_restart(folder, spec.name)
    except (OSError, ValueError, TypeError) as exc:  # a full disk must not stop the host
        log.warning("[%s] %s: probation not counted at this start: %s", spec.name, RECORD, exc)
    if which is None:
        return spec
    return _pointed(spec, folder / which) or spec


def _record_or_none(folder: Path) -> dict[str, Any] | None:
    """deployed.json, {} when there is none, None when it is there but cannot be
    read: unlike ``_read_record``, for a caller that deletes on what it says."""
    try:
        record = json.loads((folder / RECORD).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _finish_staging(folder: Path, name: str) -> None:
    """Undo an install that a power cut stopped among ``_stage_files``' renames
    (its own undo runs only for an exception). The record is written last, so
    it is still the one before the install and names what current/ and
    previous/ should hold; incoming/ is still there too (the delivery removes
    it after the record), so a start without it hashes nothing.

    Left alone, a cut after previous/ -> incoming/previous loses the version to
    roll back to; after current/ -> previous/ the configured version runs; after
    incoming/plugin -> current/ the new version runs unrecorded, with no gate,
    reported as the old one (or, at a first install, named by no record)."""
    incoming = folder / INCOMING
    if not incoming.is_dir():
        return
    record = _record_or_none(folder)
    current, previous, replaced = folder / CURRENT, folder / PREVIOUS, incoming / PREVIOUS
    if record is None:  # nothing says which version is which: delete nothing
        log.warning(
            "[%s] %s cannot be read and %s/ is left from an install: not checked for a "
            "power cut, current/ runs as it is",
            name,
            RECORD,
            INCOMING,
        )
        return
    wanted, before = record.get("current"), record.get("previous")
    wanted_hash = wanted.get("content_hash") if isinstance(wanted, dict) else None
    before_hash = before.get("content_hash") if isinstance(before, dict) else None
    undone: str | None = None
    if not isinstance(wanted, dict):
        if current.exists():
            shutil.rmtree(current)
            undone = "current/ held a version no record names: removed, the configured one runs"
    elif not current.exists():
        if _holds(previous, wanted_hash):
            previous.rename(current)
            undone = f"{wanted.get('version')} moved back from previous/ to current/"
    elif previous.is_dir() and not _holds(current, wanted_hash) and _holds(previous, wanted_hash):
        shutil.rmtree(current)
        previous.rename(current)
        undone = f"an unrecorded version removed, {wanted.get('version')} back in current/"
    if (
        replaced.is_dir()
        and not previous.exists()
        and (undone is not None or _holds(replaced, before_hash))
    ):
        replaced.rename(previous)
        undone = (undone + "; " if undone else "") + "previous/ moved back"
    shutil.rmtree(incoming, ignore_errors=True)
    if undone is not None:
        log.warning("[%s] an install cut short (a power cut?) undone at start: %s", name, undone)


def _count_restart(folder: Path, name: str) -> str | None:
    """One more start while the deployed version is on probation. Past
    ``MAX_PROBATION_RESTARTS`` the host has kept stopping before the gate
    ended, likely under this version, so it is rolled back now, on disk,
    before anything loads it; ``DeployNode.start`` reports it. So is a version
    whose rollback the host stopped during (``_restore_files`` finishes it).

    Returns the folder to load from: current/, unless the disk is too full to
    count this start or to roll back. Then the count goes on in an empty file
    (``_uncounted``, no data block needed), and past that the version on
    probation is held back for this start: previous/ (None: the configured
    version) runs, which needs no write. Otherwise a full disk, perhaps filled
    by that very version, would keep it running across every restart."""
    _finish_rolling_back(folder, name)
    record = _read_record(folder)
    probation = record.get("probation")
    if not isinstance(probation, dict):
        _forget_uncounted(folder)
        return CURRENT
    marker = _uncounted(folder, probation)
    _forget_uncounted(folder, keep=marker)
    restarts = int(probation.get("restarts") or 0) + 1 + (1 if marker.exists() else 0)
    previous = record.get("previous")
    if (
        isinstance(previous, dict)
        and not (folder / PREVIOUS).is_dir()
        and _holds(folder / CURRENT, previous.get("content_hash"))
    ):  # a rollback moved previous/ back and stopped before its record: finish it
        reason = "a rollback cut short by a restart, finished at start"
    elif restarts <= MAX_PROBATION_RESTARTS:
        try:
            _update_record(folder, probation={**probation, "restarts": restarts})
        except OSError as exc:
            try:
                marker.touch(exist_ok=False)
            except OSError:
                return _held_back(folder, name, record, exc)
            log.warning(
                "[%s] %s cannot be written (%s): this restart on probation is counted in %s",
                name,
                RECORD,
                exc,
                marker.name,
            )
            return CURRENT
        _forget_uncounted(folder)
        return CURRENT
    else:
        reason = (
            f"on probation across {restarts} restarts: the host kept stopping before the "
            "health gate ended"
        )
    report = _probation_report(name, record, probation, "rolled-back", reason)
    rejected = {"bundle_sha256": probation.get("bundle_sha256"), "report": report.to_json()}
    try:
        _restore_files(folder, rejected)
    except OSError as exc:
        return _held_back(folder, name, record, exc)
    log.error("[%s] %s rolled back at start: %s", name, report.version, reason)
    _forget_uncounted(folder)
    return CURRENT


def _finish_rolling_back(folder: Path, name: str) -> None:
    """.rolling-back is current/ set aside by ``_restore_files``; its record
    is the commit. Still on probation, the record was not written: current/
    goes back if it is missing. Not on probation, it was: what was set aside is
    the rejected version, removed. Moving it back then would run it named by
    no record, with no gate (after a rollback to the configured version
    current/ is missing on purpose)."""
    rolling = folder / ROLLING
    if not rolling.is_dir():
        return
    record = _record_or_none(folder)
    if record is not None and not isinstance(record.get("probation"), dict):
        shutil.rmtree(rolling, ignore_errors=True)  # left over, it is harmless: tried again
    elif not (folder / CURRENT).exists():
        rolling.rename(folder / CURRENT)
        log.warning("[%s] a rollback cut short undone at start: current/ moved back", name)


def _uncounted(folder: Path, probation: dict[str, Any]) -> Path:
    """The empty file that counts a restart deployed.json could not: named for
    this probation (its bundle and when it began), so no other probation counts
    it, not even one of the same bundle installed again."""
    tag = f"{probation.get('bundle_sha256')} {probation.get('since_ms')}"
    return folder / f"{UNCOUNTED}.{hashlib.sha256(tag.encode()).hexdigest()[:16]}"


def _forget_uncounted(folder: Path, keep: Path | None = None) -> None:
    """Once deployed.json has counted (or ended) the probation, no file does;
    run at every start too (keeping the file of the probation in force), so
    files left by a probation that ended otherwise do not pile up."""
    with contextlib.suppress(OSError):  # tidying: never a reason to skip the count
        for marker in folder.glob(f"{UNCOUNTED}.*"):
            if marker != keep:
                marker.unlink(missing_ok=True)


def _held_back(folder: Path, name: str, record: dict[str, Any], exc: OSError) -> str | None:
    """previous/ (None: the configured version) for this start, in place of a
    version on probation whose restarts can no longer be counted."""
    current, previous = record.get("current"), record.get("previous")
    held = current.get("version") if isinstance(current, dict) else None
    if isinstance(previous, dict) and (folder / PREVIOUS).is_dir():
        which: str | None = PREVIOUS
        instead = f"{previous.get('version')} from previous/"
    else:
        which, instead = None, "the configured version"
    log.error(
        "[%s] %s held back at this start: on probation, and %s cannot be written to count "
        "the restart or roll it back (%s); %s runs instead",
        name,
        held,
        RECORD,
        exc,
        instead,
    )
    return which


def _restore_files(folder: Path, rejected: dict[str, Any] | None = None) -> None:
    """Undo ``_stage_files``: previous/ back to current/, or no deployed version;
    ``rejected``: the rolled-back bundle to remember, so it is not installed again.

    Safe to run again after a crash midway: the record is written last, so if
    previous/ is gone while the record still names a previous version, current/
    is checked for that version's content (moved back already) before it goes.
    current/ waits aside until the record is written, so a record that cannot be
    written (a full disk) undoes the moves: the record still says what is where."""
    current, previous, rolling = folder / CURRENT, folder / PREVIOUS, folder / ROLLING
    record = _read_record(folder)
    wanted = record.get("previous")
    moves: list[tuple[Path, Path]] = []
    restored = None
    if previous.is_dir():
        moves, restored = [(current, rolling), (previous, current)], wanted
    elif isinstance(wanted, dict) and _holds(current, wanted.get("content_hash")):
        restored = wanted
    else:
        moves = [(current, rolling)]
    new: dict[str, Any] = {"current": restored, "previous": None}
    if rejected is not None:
        new["rejected"] = rejected
    shutil.rmtree(rolling, ignore_errors=True)  # the rejected version of a rollback cut short
    moved: list[tuple[Path, Path]] = []
    try:
        for source, target in moves:
            if source.exists():
                source.rename(target)
                moved.append((source, target))
        _write_record(folder / RECORD, new)
    except Exception:
        for source, target in reversed(moved):
            target.rename(source)
        raise
    shutil.rmtree(rolling, ignore_errors=True)


def _unstage_files(folder: Path, before: dict[str, Any]) -> None:
    """Undo ``_stage_files`` after its record was written: its moves in reverse,
    previous/ from incoming/ too. The record before goes back first, so a crash
    after it leaves what a power cut among the install's own renames leaves,
    which ``_finish_staging`` undoes at the next start."""
    _write_record(folder / RECORD, before or {"current": None, "previous": None})
    current, previous, replaced = folder / CURRENT, folder / PREVIOUS, folder / INCOMING / PREVIOUS
    shutil.rmtree(current, ignore_errors=True)
    if previous.is_dir():
        previous.rename(current)
    if replaced.is_dir():
        replaced.rename(previous)


def _holds(folder: Path, content_hash: object) -> bool:
    """Whether ``folder`` holds a deployed version of that content hash."""
    source, wasm = _deployed_code(folder)
    code = source or wasm
    if code is None or not isinstance(content_hash, str):
        return False
    try:
        return hash_plugin(code) == content_hash
    except Exception:  # unreadable: not that version
        return False


def _probation_report(
    name: str,
    record: dict[str, Any],
    probation: dict[str, Any],
    state: State,
    reason: str | None = None,
) -> Rollout:
    """The report of the version deployed.json has on probation."""
    current = record.get("current")
    current = current if isinstance(current, dict) else {}
    return Rollout(
        plugin=name,
        version=current.get("version"),
        content_hash=current.get("content_hash"),
        state=state,
        reason=reason,
        previous=probation.get("previous"),
        since_ms=int(probation.get("since_ms") or 0),
        source=probation.get("source") or "node",
    )


def _pointed(spec: PluginSpec, folder: Path) -> PluginSpec | None:
    source, wasm = _deployed_code(folder)
    if source is not None and spec.source is not None:
        try:
            state = read_manifest(source).state
        except ManifestError:
            return None
        return dataclasses.replace(spec, source=source, state=state)
    if wasm is not None and spec.source is None:
        return dataclasses.replace(spec, wasm=wasm)
    return None


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
        incoming = plugin_dir(self.config, name) / INCOMING
        try:
            await self._verify_and_install(name, held, source, payload, digest, incoming)
        finally:  # installed (renamed away), refused or not needed: nothing stays
            await asyncio.to_thread(shutil.rmtree, incoming, True)

    def _verify_into(self, payload: bytes, incoming: Path) -> Verdict:
        """Verify, leaving a valid source bundle's files in incoming/plugin: the
        check reads them from there, so they are unpacked and written once."""
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir(parents=True)
        return verify_bundle(payload, self.config, into=incoming / CHECKED)

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
        folder = plugin_dir(self.config, name)
        if held.held_back is not None:
            # current/ holds the version held back, not the one running: rolled
            # back on disk first, previous/ becomes what runs, as its record says.
            try:
                await asyncio.to_thread(_restore_files, folder, held.held_back)
            except OSError as exc:
                self._report(dataclasses.replace(base, state="failed", reason=f"install: {exc}"))
                return
            held.rejected, held.held_back = held.held_back.get("bundle_sha256"), None
            plugin.spec = _pointed(held.configured, folder / CURRENT) or held.configured
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
        spec = _pointed(held.configured, folder / CURRENT)
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
        ``_unstage_files`` should the new version not load."""
        before = _read_record(folder)
        incoming = folder / INCOMING / CHECKED
        if manifest.kind == "component":
            incoming.mkdir()
            (incoming / archive.WASM).write_bytes(verdict.files[archive.WASM])
        else:
            library = Path(self.config.runtime.plugins_dir).resolve() / LIBRARY
            link = folder / LIBRARY  # the node's shared guest library, beside the plugin
            if library.is_dir() and not link.exists():
                link.symlink_to(library, target_is_directory=True)
        current, previous = folder / CURRENT, folder / PREVIOUS
        # The version before previous/ goes into incoming/, which _deliver removes.
        replaced = folder / INCOMING / PREVIOUS
        had_current = current.is_dir()
        moved: list[tuple[Path, Path]] = []
        try:
            for source, target, present in (
                (previous, replaced, previous.is_dir()),
                (current, previous, had_current),
                (incoming, current, True),
            ):
                if present:
                    source.rename(target)
                    moved.append((source, target))
            record = {
                "current": {"version": manifest.version, "content_hash": manifest.content},
                "previous": running if had_current else None,  # None: the configured source
                "probation": probation,
            }
            _write_record(folder / RECORD, record)
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
        folder = plugin_dir(self.config, name)
        await asyncio.to_thread(_unstage_files, folder, before)
        plugin.spec = _pointed(held.configured, folder / CURRENT) or held.configured
        await self._reload(plugin)
        held.gate, held.rejected = gate, rejected

    async def _restore(
        self, name: str, held: _Plugin, plugin: Plugin, rejected: dict[str, Any] | None = None
    ) -> bool:
        """Back to the version before the delivery, on disk and (if it was
        replaced) live; True when the previous version is running again."""
        folder = plugin_dir(self.config, name)
        await asyncio.to_thread(_restore_files, folder, rejected)
        plugin.spec = _pointed(held.configured, folder / CURRENT) or held.configured
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
            probation = _read_record(folder).get("probation")
            if isinstance(probation, dict) and probation.get("bundle_sha256") == bundle:
                _forget_uncounted(folder)  # even if the record cannot be written: it passed
                _update_record(folder, probation=None)

        async with self._locks.setdefault(name, asyncio.Lock()):
            try:
                await asyncio.to_thread(end, plugin_dir(self.config, name))
            except OSError as exc:  # the next start resumes a gate it passes again
                log.warning("[%s] %s: probation not cleared: %s", name, RECORD, exc)

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
                folder = plugin_dir(self.config, name)
                plugin.spec = _pointed(held.configured, folder / PREVIOUS) or held.configured
                ok = await self._reload(plugin)
                reason += f"; not on disk ({RECORD}: {exc}), so a restart judges it again"
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
            records = {name: _read_record(plugin_dir(self.config, name)) for name in self._held}
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
        folder = plugin_dir(self.config, plugin.name).resolve()
        for which in (CURRENT, PREVIOUS):
            if watched.is_relative_to(folder / which):
                return which
        return None

    def _resume(self, name: str, record: dict[str, Any]) -> None:
        """What deployed.json says at start: a version still on probation gets a
        fresh gate; a version rolled back here is remembered, and its report
        said again (the one ``_count_restart`` rolled back is reported here)."""
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
        if which != CURRENT:  # not what loaded: nothing to judge
            if _pointed(held.configured, plugin_dir(self.config, name) / CURRENT) is not None:
                self._hold_back(name, held, record, probation, which)
            return  # (else another kind than the config's)
        live = _probation_report(name, record, probation, "live")
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
        """Say that ``deployed_spec`` held the version on probation back: to
        a deployer it is a version this node does not run, a final state
        (rolled-back), not a silence until its timeout. Its bundle, retained on
        the broker, is not installed again while this start lasts."""
        ran = (self.versions.get(name) or {}).get("version")
        instead = f"{ran} from previous/" if which == PREVIOUS else "the configured version"
        reason = (
            f"held back at start: on probation, and {RECORD} could not be written to count "
            f"the restart or roll it back (a full disk?); {instead} runs, until a start "
            "with room rolls it back"
        )
        report = _probation_report(name, record, probation, "rolled-back", reason)
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
