"""``wasihost deploy``: the bundle check, the broker and the terminal around ``Rollout``.

The deployer connects with the ``[mqtt]`` settings of ``--config`` (host,
port, credentials, TLS; ``--broker host:port`` overrides the address), reads
what the broker retains (every node's availability, versions message with
its labels, and rollout reports),
then runs the rollout: publishing retained deliveries, printing one line per
node and state change, and a summary. Bad input (a bundle that fails its
checks, an untrusted signer, a canary that is offline, an unreachable broker)
is a ``DeployError``: the CLI prints it and exits 2.

To know it has seen every retained message before it decides anything, the
deployer publishes one message to ``wasihost/deploy/sync/<client id>`` (not
retained; no node subscribes to it) after subscribing: the broker delivers
the retained messages of a subscription before a later publish on the same
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from wasihost.bundle import archive
from wasihost.bundle.keys import PublicKey, parse_public_key
from wasihost.bundle.manifest import BundleManifest, parse_manifest
from wasihost.config import MqttConfig
from wasihost.deploy.deployer import (
    Echo,
    NodeView,
    Publish,
    Report,
    Rollout,
    Target,
    availability_topic,
    node_of,
    parse_report,
    short,
)
from wasihost.deploy.protocol import PREFIX, parse_versions, report_topic, versions_topic
from wasihost.errors import BundleError, WasihostError

SYNC_WAIT_SECONDS = 5.0  # a broker that drops the sync message (an ACL): go on after this
TICK_SECONDS = 0.2
OPERATION_TIMEOUT_SECONDS = 30.0  # a component bundle is ~20 MB
# Reconnecting after the broker was lost: the delay doubles up to the cap. After
# the rollout ended, what it still has to publish (clearing deliveries) is tried
# for CLEAR_GRACE_SECONDS more before the deployer gives up and says what is left.
RECONNECT_FIRST_SECONDS, RECONNECT_MAX_SECONDS = 0.5, 5.0
CLEAR_GRACE_SECONDS = 30.0
LOST = ("", b"")  # queued by the message task when the connection ends


class DeployError(WasihostError):
    """A deploy that cannot start: bad bundle, untrusted signer, bad target, no broker."""


class BrokerLost(DeployError):
    """The connection ended after it was made: a rollout reconnects and goes on."""


# -- the bundle -------------------------------------------------------------------
def trusted_keys(texts: Iterable[tuple[str, str]]) -> dict[str, tuple[PublicKey, str]]:
    """key id -> (key, where it came from) for each (text, where) given."""
    keys: dict[str, tuple[PublicKey, str]] = {}
    for text, where in texts:
        try:
            key = parse_public_key(text.strip())
        except (ValueError, BundleError) as exc:
            raise DeployError(f"{where}: not a public key: {exc}") from None
        keys.setdefault(key.key_id, (key, where))
    return keys


def read_bundle(path: Path, keys: dict[str, tuple[PublicKey, str]]) -> tuple[BundleManifest, bytes]:
    """What a node checks before its config (archive, signature, trust, content),
    and the bytes it checked, read once: what is published is what was checked,
    even if the file changes meanwhile. ``DeployError`` names the first failure
    as a node would name it."""
    from wasihost.bundle.verify import check_content, check_signature

    if not keys:
        raise DeployError(
            "no trusted key to check the bundle's signature with: give --key-pub FILE "
            "(the signer's .pub) or [trust] keys in --config"
        )
    try:
        data, parts = archive.read_file(path)
        if parts.signature is None:
            raise BundleError(f"unsigned: no {archive.SIGNATURE} in the bundle")
        manifest = parse_manifest(parts.manifest)
        trusted = {kid: key for kid, (key, _) in keys.items()}
        where = "; ".join(sorted({where for _, where in keys.values()}))
        check_signature(parts.manifest, parts.signature, manifest.signer, trusted, where)
        check_content(manifest, parts.files)
    except BundleError as exc:
        raise DeployError(f"{path}: refused: {exc}") from None
    return manifest, data


# -- the broker -------------------------------------------------------------------
def with_broker(settings: MqttConfig, broker: str | None) -> MqttConfig:
    """``settings`` with ``--broker host[:port]`` applied."""
    if not broker:
        return settings
    host, sep, port = broker.rpartition(":")
    if not sep:
        host, port = broker, str(settings.port)
    try:
        number = int(port)
    except ValueError:
        raise DeployError(f"--broker {broker}: expected HOST or HOST:PORT") from None
    if not host or not 1 <= number <= 65535:
        raise DeployError(f"--broker {broker}: expected HOST or HOST:PORT")
    return settings.model_copy(update={"host": host, "port": number})


def client_for(settings: MqttConfig) -> aiomqtt.Client:
    tls = aiomqtt.TLSParameters(ca_certs=settings.ca_file) if settings.tls else None
    return aiomqtt.Client(
        settings.host,
        settings.port,
        identifier=f"wasihost-deploy-{socket.gethostname()[:20]}-{os.getpid()}",
        username=settings.username,
        password=settings.password,
        keepalive=settings.keepalive_seconds,
        tls_params=tls,
        timeout=OPERATION_TIMEOUT_SECONDS,
    )


@dataclass
class Connection:
    """One client and a queue of (topic, payload) every subscription fills."""

    client: aiomqtt.Client
    queue: asyncio.Queue[tuple[str, bytes]]
    sync_topic: str

    async def synced(self, handle: Callable[[str, bytes], None]) -> None:
        """Hand every retained message to ``handle``, up to the sync message."""
        await self.client.subscribe(self.sync_topic, qos=1)
        await self.client.publish(self.sync_topic, b"sync", qos=1)
        deadline = time.monotonic() + SYNC_WAIT_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, payload = await asyncio.wait_for(self.queue.get(), left)
            except TimeoutError:
                break
            if topic == self.sync_topic:
                return
            handle(topic, payload)

    async def publish(self, messages: Iterable[Publish]) -> None:
        for message in messages:
            await self.client.publish(message.topic, message.payload, qos=1, retain=True)


@contextlib.asynccontextmanager
async def connected(settings: MqttConfig, topics: Iterable[str]) -> AsyncIterator[Connection]:
    client = client_for(settings)
    where = f"{settings.host}:{settings.port}"
    try:
        await client.__aenter__()
    except aiomqtt.MqttError as exc:
        raise DeployError(f"cannot connect to the broker at {where}: {exc}") from None
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def collect() -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for m in client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                queue.put_nowait((m.topic.value, payload))
        queue.put_nowait(LOST)  # the loop reading the queue learns it here

    task = asyncio.create_task(collect())
    try:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        yield Connection(client, queue, f"{PREFIX}/sync/{client.identifier}")
    except aiomqtt.MqttError as exc:
        raise BrokerLost(f"the broker at {where}: {exc}") from None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)


# -- wasihost deploy BUNDLE --------------------------------------------------------
async def deploy(
    settings: MqttConfig,
    manifest: BundleManifest,
    bundle: bytes,
    target: Target,
    canary: Target | None,
    timeout_seconds: float,
    echo: Echo,
    *,
    settle_seconds: float | None = None,
) -> int:
    """Run one rollout to its end; the exit code (deployer.EXIT_*)."""
    plugin = manifest.name
    rollout = Rollout(
        plugin=plugin,
        version=manifest.version,
        content_hash=manifest.content,
        bundle=bundle,
        target=target,
        canary=canary,
        timeout_seconds=timeout_seconds,
        echo=echo,
    )
    if settle_seconds is not None:
        rollout.settle_seconds = settle_seconds
    topics = [availability_topic("+"), versions_topic("+"), report_topic("+", plugin)]

    def handle(topic: str, payload: bytes, now: float) -> list[Publish]:
        node = node_of(topic, "availability")
        if node is not None:
            return rollout.availability(node, payload.strip() == b"online", now)
        node = node_of(topic, "versions")
        if node is not None:
            versions = parse_versions(payload)
            if versions is not None:
                return rollout.versions(node, versions.labels, now, plugins=versions.plugins)
            return []
        node = node_of(topic, f"rollout/{plugin}")
        if node is not None:
            report = parse_report(node, payload)
            if report is not None:
                return rollout.report(report, now)
        return []

    outbox: list[Publish] = []  # what the rollout said to publish and the broker has not taken
    started = False
    delay = RECONNECT_FIRST_SECONDS
    while True:
        try:
            async with connected(settings, topics) as conn:
                if not started:

                    def retained(topic: str, payload: bytes) -> None:
                        handle(topic, payload, time.monotonic())  # nothing to publish yet

                    await conn.synced(retained)
                    _preflight(rollout, echo)
                    echo(
                        f"{plugin} {manifest.version} ({short(manifest.content)}, signed by "
                        f"key {manifest.signer}), {len(bundle)} bytes"
                    )
                    outbox += rollout.start(time.monotonic())
                    started = True
                else:
                    # A broker restarted without persistence lost the deliveries:
                    # publish those in force again (a node ignores what it has).
                    echo("  reconnected to the broker: going on")  # retained replay follows
                    pending = {m.topic for m in outbox}
                    outbox[:0] = [m for m in rollout.deliveries() if m.topic not in pending]
                delay = RECONNECT_FIRST_SECONDS
                await _follow(conn, rollout, handle, outbox)
                break
        except DeployError as exc:
            if not started:
                raise  # before anything was published: bad input or no broker
            # Lost, or not back yet: the rollout's clock runs on (its timeout
            # still ends it) and what it has to publish waits in the outbox.
            if (
                rollout.stage == "done"
                and time.monotonic() > rollout.ended_at + CLEAR_GRACE_SECONDS
            ):
                echo(f"could not publish after the rollout ended: {exc}")
                for message in outbox:
                    if message.payload:
                        echo(f"  not delivered: {message.topic}")
                    else:  # a retained delivery nodes would still be handed
                        echo(
                            f"  still to clear: {message.topic} "
                            f"(mosquitto_pub -r -n -t '{message.topic}')"
                        )
                break
            if isinstance(exc, BrokerLost) or delay == RECONNECT_FIRST_SECONDS:
                echo(f"  lost the broker ({exc}): reconnecting")
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)
            outbox += rollout.tick(time.monotonic())
    for line in rollout.summary():
        echo(line)
    return rollout.exit_code


async def _follow(
    conn: Connection,
    rollout: Rollout,
    handle: Callable[[str, bytes, float], list[Publish]],
    outbox: list[Publish],
) -> None:
    """Feed the rollout what the broker says and publish what it answers, until it
    is done and nothing is left to publish. ``BrokerLost`` when the connection
    ends; ``outbox`` then holds what was not published."""
    next_tick = time.monotonic() + TICK_SECONDS
    while True:
        while outbox:
            await conn.publish(outbox[:1])
            del outbox[0]
        if rollout.stage == "done":
            return
        # The clock is read every TICK_SECONDS however busy the broker is: twenty
        # nodes reporting each poll of their gates must not hold the timeout off.
        if (now := time.monotonic()) >= next_tick:
            next_tick = now + TICK_SECONDS
            outbox += rollout.tick(now)
            continue
        try:
            topic, payload = await asyncio.wait_for(conn.queue.get(), next_tick - now)
        except TimeoutError:
            continue
        if (topic, payload) == LOST:
            raise BrokerLost("the connection ended")
        outbox += handle(topic, payload, time.monotonic())


def _preflight(rollout: Rollout, echo: Echo) -> None:
    """Say which nodes the broker knows; refuse a canary that cannot report."""
    nodes = rollout.nodes
    online = sorted(n for n, v in nodes.items() if v.online)
    offline = sorted(n for n, v in nodes.items() if v.online is False)
    echo(
        f"broker: {len(online)} node(s) online ({', '.join(online) or '-'}), "
        f"{len(offline)} offline ({', '.join(offline) or '-'})"
    )
    if rollout.canary is not None and rollout.canary.kind == "node":
        for node in rollout.canary.nodes:
            view = nodes.get(node, NodeView())
            if view.online is None:
                raise DeployError(f"canary {node}: never seen on this broker (no availability)")
            if not view.online:
                raise DeployError(f"canary {node} is offline: a canary must be online to report")
    if rollout.canary is not None and rollout.canary.kind == "label":
        online_carriers = [n for n in _carriers(rollout, rollout.canary) if nodes[n].online]
        if not online_carriers and not rollout.unknown_online(rollout.canary):
            raise DeployError(
                f"canary label {rollout.canary.label}: no online node carries it "
                f"({_labels_seen(rollout)}): a canary must be online to report"
            )
    if rollout.target.kind == "node":
        for node in rollout.target.nodes:
            view = nodes.get(node, NodeView())
            if view.online is None:
                echo(f"  {node}: never seen on this broker; it gets the bundle when it connects")
            elif not view.online:
                echo(f"  {node}: offline; it gets the bundle when it comes back")
        return
    carriers = _carriers(rollout, rollout.target)
    if (
        rollout.target.kind == "label"
        and not carriers
        and not rollout.unknown_online(rollout.target)
    ):
        # Most likely a typo: a retained delivery nobody takes, and a rollout "healthy" on no node.
        raise DeployError(
            f"label {rollout.target.label}: no node on this broker carries it "
            f"({_labels_seen(rollout)})"
        )
    shown = ", ".join(n if nodes[n].online else f"{n} (offline)" for n in carriers)
    echo(f"targets: {shown or '-'}")
    unknown = sorted(
        n for n, v in nodes.items() if v.online and rollout.carries(n, rollout.target) is None
    )
    if unknown:
        echo(
            f"  {', '.join(unknown)}: online, never said which labels it carries or whether it "
            "takes deliveries; counted if it reports"
        )


def _carriers(rollout: Rollout, target: Target) -> list[str]:
    return sorted(n for n in rollout.nodes if rollout.carries(n, target))


def _labels_seen(rollout: Rollout) -> str:
    seen = sorted({label for v in rollout.nodes.values() for label in v.labels or ()})
    return "labels nodes publish: " + (", ".join(seen) if seen else "none")


# -- wasihost deploy --status ------------------------------------------------------
def _ago(since_ms: int, now_ms: int) -> str:
    if since_ms <= 0:
        return "-"
    seconds = max(0, (now_ms - since_ms) // 1000)
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


async def status(settings: MqttConfig, plugin: str | None, echo: Echo) -> int:
    """Print every node's versions and rollout states, from retained messages."""
    online: dict[str, str] = {}
    versions: dict[str, dict[str, tuple[str, str]]] = {}
    labels: dict[str, str] = {}
    reports: dict[tuple[str, str], Report] = {}

    def handle(topic: str, payload: bytes) -> None:
        node = node_of(topic, "availability")
        if node is not None:
            online[node] = payload.decode("utf-8", "replace").strip() or "?"
            return
        node = node_of(topic, "versions")
        if node is not None:
            parsed = parse_versions(payload)
            if parsed is None:
                return
            labels[node] = ",".join(parsed.labels) if parsed.labels else "-"
            versions[node] = {
                name: (version or "?", content or "")
                for name, (version, content) in parsed.plugins.items()
            }
            return
        parts = topic.split("/")
        if len(parts) == 4 and parts[0] == "wasihost" and parts[2] == "rollout":
            report = parse_report(parts[1], payload)
            if report is not None:
                reports[(parts[1], parts[3])] = report

    topics = [availability_topic("+"), versions_topic("+"), report_topic("+", plugin or "+")]
    async with connected(settings, topics) as conn:
        await conn.synced(handle)
    now_ms = int(time.time() * 1000)
    rows: list[tuple[str, ...]] = []
    for node in sorted(set(online) | set(versions) | {n for n, _ in reports}):
        names = set(versions.get(node, {})) | {p for n, p in reports if n == node}
        if plugin is not None:
            names &= {plugin}
        where = (node, online.get(node, "?"), labels.get(node, "?"))
        if not names:
            rows.append((*where, "-", "-", "-", "-", "-"))
        for name in sorted(names):
            version, content = versions.get(node, {}).get(name, ("-", ""))
            report = reports.get((node, name))
            state, since = "-", "-"
            if report is not None:
                state = report.state
                if report.content_hash != content:
                    state += f" {report.version} ({short(report.content_hash)})"
                since = _ago(report.since_ms, now_ms)
            rows.append((*where, name, version, short(content) or "-", state, since))
    head = ("NODE", "ONLINE", "LABELS", "PLUGIN", "VERSION", "CONTENT", "ROLLOUT", "SINCE")
    if not rows:
        echo(f"no node has published on {settings.host}:{settings.port}")
        return 0
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
