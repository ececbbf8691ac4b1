"""Publishing readings to an MQTT broker, with Home Assistant discovery.

Two halves that meet only at the ``Outbox`` (memory, and SQLite for what
waits long: see its docstring):

- ``enqueue_cycle`` (host, worker thread, after every cycle) turns readings
  and plugin health into messages and appends them to the outbox. It touches
  memory and SQLite, never the network, so a broker outage cannot slow the
  poll cycle.
- ``run`` (event loop task) keeps one connection to the broker and drains the
  outbox in id order: publish a batch, wait until each publish completed
  (PUBACK/PUBCOMP for QoS 1/2), then ``ack`` the batch. On broker loss it
  reconnects with capped, jittered exponential backoff while messages keep
  queueing.

Delivery is at-least-once: a message is deleted only after its publish
completed, so a dropped connection re-sends, never loses (a crash or power
cut loses what waited in memory only: the outbox's trade-off). A
duplicate needs the connection to break after the broker took a message but
before its acknowledgement came back; readers that care can drop a state
whose ``timestamp_ms`` is not newer than the last one of that plugin (the
hub's ``Fleet`` does). Each connection uses a fresh client, so paho's own
in-memory queue never re-sends a message the outbox re-sends too.

Availability (``online`` on connect, ``offline`` as last will and on stop)
and discovery configs are published directly, retained: they describe the
present, so queueing old ones would be wrong. Discovery is re-published on
connect, when a new measured field appears, and when Home Assistant
announces ``<discovery_prefix>/status`` = ``online``.

The hub reuses this connection: ``subscriptions`` and ``on_message`` let the
``Fleet`` listen on the same client instead of opening a second one.
``on_connect`` runs at every (re)connection: retained messages of other
modules (the deploy side's versions and reports) are queued once, so a broker
that restarted without persistence would otherwise never have them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt

from wasihost import __version__
from wasihost.clock import wall_clock_ms
from wasihost.config import MqttConfig
from wasihost.errors import ConfigError
from wasihost.model import Reading
from wasihost.telemetry import discovery
from wasihost.telemetry.discovery import Entity, Topics
from wasihost.telemetry.outbox import Outbox, OutboxMessage

log = logging.getLogger("wasihost.mqtt")

# Messages published concurrently before one ack transaction, and QoS 1/2
# messages awaiting acknowledgement at once. Measured by
# ``python -m bench.run --only mqtt`` (docs/MQTT.md): 100 and paho's default
# 20 drained about 1,600 messages/s on loopback, 500 and 100 about 5,000.
BATCH = 500
MAX_INFLIGHT = 100
STOP_GRACE_SECONDS = 5.0  # how long a stop waits for the batch in flight
OPERATION_TIMEOUT_SECONDS = 10.0
# Reconnect backoff: doubling from the first to the cap, each wait ±20 %
# (a fleet that lost its broker together spreads out). The cap bounds how long
# a node stays away once the broker is back: 12 s at most.
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
# A connection that lasted this long was a success: the backoff starts over.
# A shorter one (a broker that accepts, then drops us) keeps doubling it.
STABLE_SESSION_SECONDS = 30.0

MessageHandler = Callable[[str, bytes, bool], None]  # topic, payload, retained
ConnectHandler = Callable[[], None]  # on the loop, after subscribing, before the drain
Sleep = Callable[[float], Awaitable[None]]


def _check_tls(ca_file: str | None) -> None:
    """Fail at start-up, naming the key, rather than on every reconnect."""
    try:
        ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"mqtt.ca_file: cannot load CA certificates from {ca_file!r}: {exc}"
        ) from None


@dataclass(frozen=True, slots=True)
class MqttStats:
    """Counters for ``/metrics``: outbox messages published since start (not
    availability or discovery), reconnects after the first connection, the
    connection flag, the outbox, and the cycles whose outbox write failed with
    the messages they lost (since start: a disk too full to queue a message
    has no room to keep a count either)."""

    published: int
    reconnects: int
    connected: bool
    outbox_depth: int
    outbox_dropped: int
    enqueue_errors: int
    messages_lost: int


class MqttPublisher:
    """One node's MQTT connection: drains the outbox, owns availability and discovery."""

    def __init__(
        self,
        settings: MqttConfig,
        node_id: str,
        interval_seconds: float,
        outbox: Outbox,
        *,
        subscriptions: Sequence[str] = (),
        on_message: MessageHandler | None = None,
        on_connect: ConnectHandler | None = None,
        backoff_initial_seconds: float = BACKOFF_INITIAL_SECONDS,
        backoff_max_seconds: float = BACKOFF_MAX_SECONDS,
        board_kind: str = "",
        board_model: str | None = None,
        web_bind: tuple[str, int] | None = None,
        sleep: Sleep = asyncio.sleep,
        clock_ms: Callable[[], int] = wall_clock_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.tls:
            _check_tls(settings.ca_file)
        self.settings = settings
        self.node_id = node_id
        self.topics = Topics.for_node(node_id, settings.base_topic)
        self.outbox = outbox
        self.expire_after = settings.expire_after_seconds or max(
            60, math.ceil(3 * interval_seconds)
        )
        self.subscriptions = tuple(subscriptions)
        self.on_message = on_message
        self.on_connect = on_connect
        self.backoff_initial = backoff_initial_seconds
        self.backoff_max = backoff_max_seconds
        self._sleep = sleep  # backoff waits; tests inject a gate instead of real time
        self._clock_ms = clock_ms
        self._monotonic = monotonic  # how long the outbox has failed: a clock step must not move it
        self._ha_status_topic = f"{settings.discovery_prefix}/status"
        self.device = discovery.Device(
            node_id,
            __version__,
            discovery.device_model(board_kind, board_model),
            discovery.dashboard_url(*web_bind, socket.gethostname()) if web_bind else None,
        )
        self._started = monotonic()
        self._node_due = 0.0  # monotonic time <base>/node is next published
        # Entities seen so far, by plugin; read on the loop, written by enqueue_cycle.
        self._lock = threading.Lock()
        self._entities: dict[str, dict[str, Entity]] = {}
        self._plugins: set[str] = set()
        self._skipped: set[tuple[str, str]] = set()
        self._discovery_due = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.connected = False
        self.published = 0
        self.connects = 0
        self.enqueue_errors = 0
        self.messages_lost = 0  # refused by the outbox, so never queued: gone
        # While the outbox refuses writes (a full disk): logged when it starts and stops.
        self._enqueue_error: str | None = None
        self._enqueue_failing_since = 0.0
        self._enqueue_errors_at_failure = 0
        self._enqueue_lost = 0

    # -- producer side (any thread) -----------------------------------------
    def enqueue_cycle(
        self, readings: Sequence[Reading], statuses: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Queue one cycle's state and health messages; never touches the network.

        Blocks only on the outbox's SQLite commit; call it from a worker thread.
        A failing outbox write is logged and counted, never raised.
        """
        now = self._clock_ms()
        qos = self.settings.qos
        messages = []
        for plugin, status in statuses.items():
            self._declare(plugin, status)
        for reading in readings:
            fields = self._register(reading)
            try:
                payload = discovery.state_payload(reading, fields)
            except ValueError as exc:  # a non-finite value slipped through
                log.warning("[%s] state not published: %s", reading.plugin, exc)
                continue
            messages.append(OutboxMessage(self.topics.state(reading.plugin), payload, qos))
        for plugin, status in statuses.items():
            payload = discovery.health_payload(status, now)
            messages.append(OutboxMessage(self.topics.health(plugin), payload, qos))
        if messages:
            self._put(messages)

    def enqueue_retained(self, topic: str, payload: bytes) -> None:
        """Queue one retained node-level message of another module (the deploy
        reports and versions), in order with the cycle's; from a worker thread
        or the loop (an outbox write is a short SQLite commit at most)."""
        self._put([OutboxMessage(topic, payload, self.settings.qos, retain=True)])

    def _put(self, messages: list[OutboxMessage]) -> None:
        """Hand ``messages`` to the outbox; a failing disk is counted and logged,
        never raised (the messages wait in memory even then), and the drain woken."""
        lost_before = self.outbox.lost
        try:
            self.outbox.put_many(messages)
        except Exception as exc:  # sqlite3.Error, OSError: disk full, SD card failure
            self._enqueue_failed(exc, self.outbox.lost - lost_before)
        else:
            self._enqueue_worked()
        self._notify()

    def _enqueue_failed(self, exc: Exception, lost: int) -> None:
        """Count a cycle whose messages the outbox could not write to disk (they
        wait in memory; ``lost``: the oldest that no longer fit there); log when
        it starts failing (or its error changes), not every cycle."""
        error = f"{exc}"[:300] or type(exc).__name__
        if self._enqueue_error is None:
            self._enqueue_failing_since = self._monotonic()
            self._enqueue_errors_at_failure = self.enqueue_errors
            self._enqueue_lost = 0
        if error != self._enqueue_error:
            log.error(
                "MQTT outbox: cannot write to disk: %s; messages wait in memory (at most "
                "%d, then the oldest are lost) and are published while the broker is "
                "reachable; what was on disk before is kept",
                error,
                self.outbox.memory_max,
            )
        self._enqueue_error = error
        self.enqueue_errors += 1
        self.messages_lost += lost
        self._enqueue_lost += lost

    @property
    def problem(self) -> str | None:
        """Why MQTT messages are not kept on disk, while the outbox cannot write them."""
        if self._enqueue_error is None:
            return None
        failing_s = self._monotonic() - self._enqueue_failing_since
        return (
            f"MQTT outbox not written for {failing_s:.0f} s ({self.outbox.depth()} messages "
            f"waiting, {self._enqueue_lost} lost): {self._enqueue_error}"
        )

    def _enqueue_worked(self) -> None:
        if self._enqueue_error is None:
            return
        log.info(
            "MQTT outbox: writing to disk again after %.0f s; %d cycles failed, "
            "%d messages lost meanwhile",
            self._monotonic() - self._enqueue_failing_since,
            self.enqueue_errors - self._enqueue_errors_at_failure,
            self._enqueue_lost,
        )
        self._enqueue_error = None

    def _declare(self, plugin: str, status: Mapping[str, Any]) -> None:
        """Note the plugin and the measurements it declares (its world's table or
        its describe()), so its first state after a restart already carries
        every field, null until measured, and discovery is complete at once. A
        reading's own unit or class wins over the declaration (``_register``)."""
        declared = discovery.declared_entities(plugin, status.get("world"), status.get("info"))
        with self._lock:
            if plugin not in self._plugins:
                self._plugins.add(plugin)
                self._discovery_due = True
            known = self._entities.setdefault(plugin, {})
            for entity in declared:
                if entity.field not in known:
                    known[entity.field] = entity
                    self._discovery_due = True

    def _register(self, reading: Reading) -> list[str]:
        """Note the reading's entities (discovery is due when one is new or
        changed); returns every field this plugin declares or has reported."""
        with self._lock:
            known = self._entities.setdefault(reading.plugin, {})
            for m in reading.measurements:
                if not discovery.publishable(m.name):
                    if (m.plugin, m.name) not in self._skipped:
                        self._skipped.add((m.plugin, m.name))
                        log.warning(
                            "[%s] measurement %r is a reserved MQTT name; not published",
                            m.plugin,
                            m.name,
                        )
                    continue
                entity = Entity(m.plugin, m.name, m.unit, m.device_class, reading.world)
                if known.get(m.name) != entity:
                    known[m.name] = entity
                    self._discovery_due = True
            return list(known)

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)

    def stats(self) -> MqttStats:
        return MqttStats(
            published=self.published,
            reconnects=max(0, self.connects - 1),
            connected=self.connected,
            outbox_depth=self.outbox.depth(),
            outbox_dropped=self.outbox.dropped,
            enqueue_errors=self.enqueue_errors,
            messages_lost=self.messages_lost,
        )

    # -- connection side (event loop) ----------------------------------------
    def client(self) -> aiomqtt.Client:
        """A fresh client for one connection attempt (client id, auth, TLS, will)."""
        s = self.settings
        tls = aiomqtt.TLSParameters(ca_certs=s.ca_file) if s.tls else None
        client = aiomqtt.Client(
            s.host,
            s.port,
            identifier=s.client_id or self.node_id,
            username=s.username,
            password=s.password,
            keepalive=s.keepalive_seconds,
            tls_params=tls,
            will=aiomqtt.Will(
                self.topics.availability, discovery.NOT_AVAILABLE, qos=s.qos, retain=True
            ),
            timeout=OPERATION_TIMEOUT_SECONDS,
            max_inflight_messages=MAX_INFLIGHT,
            # Small packets go out at once: with Nagle's algorithm each burst of
            # publishes waited for the peer's delayed ACK (tens of ms).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )
        # aiomqtt warns above 10 pending publishes; a drained batch is BATCH by design.
        client.pending_calls_threshold = BATCH + 10
        return client

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected and drain the outbox until ``stop`` is set; then
        publish ``offline`` (if connected) and disconnect."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        s = self.settings
        delay = self.backoff_initial
        down_since: float | None = None
        while not stop.is_set():
            connected_at: float | None = None
            try:
                async with self.client() as client:
                    connected_at = self._monotonic()
                    self.connected = True
                    self.connects += 1
                    if down_since is not None:
                        log.info(
                            "MQTT broker %s:%d reachable again after %.0f s; %d messages queued",
                            s.host,
                            s.port,
                            time.monotonic() - down_since,
                            self.outbox.depth(),
                        )
                        down_since = None
                    else:
                        log.info("MQTT connected to %s:%d as %s", s.host, s.port, self.topics.base)
                    await self._session(client, stop)
                    self.connected = False
                    with contextlib.suppress(aiomqtt.MqttError):
                        await client.publish(
                            self.topics.availability, discovery.NOT_AVAILABLE, s.qos, retain=True
                        )
            except (aiomqtt.MqttError, sqlite3.Error) as exc:
                # sqlite3.Error: the outbox could not be read or acked (disk
                # failure); nothing is lost, so it is retried like a broker loss.
                self.connected = False
                if (
                    connected_at is not None
                    and self._monotonic() - connected_at >= STABLE_SESSION_SECONDS
                ):
                    delay = self.backoff_initial  # it worked for a while: a new outage
                if down_since is None:
                    down_since = time.monotonic()
                    what = "outbox" if isinstance(exc, sqlite3.Error) else "broker"
                    log.warning(
                        "MQTT %s failed (%s: %s:%d); queueing in the outbox, retrying",
                        what,
                        exc,
                        s.host,
                        s.port,
                    )
                await self._pause(stop, delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff_max)
        self.connected = False

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Wait ``seconds`` (through the injected sleep) or until ``stop``."""
        waiters = {asyncio.ensure_future(self._sleep(seconds)), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """One connection: announce, subscribe, then receive and drain until the
        connection breaks (raises ``MqttError``) or ``stop`` is set (returns)."""
        s = self.settings
        await client.publish(self.topics.availability, discovery.AVAILABLE, s.qos, retain=True)
        if s.discovery:
            await client.subscribe(self._ha_status_topic, qos=1)
        for topic in self.subscriptions:
            await client.subscribe(topic, qos=1)
        if self.on_connect is not None:
            try:
                self.on_connect()  # queues behind what waits, drained below
            except Exception:
                log.exception("MQTT on-connect handler failed")
        with self._lock:
            self._discovery_due = True
        self._node_due = 0.0
        receiver = asyncio.create_task(self._receive(client))
        drainer = asyncio.create_task(self._drain(client, stop))
        stopper = asyncio.create_task(stop.wait())
        tasks: set[asyncio.Task[Any]] = {receiver, drainer, stopper}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                assert self._wake is not None
                self._wake.set()  # the drainer finishes its batch and returns
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(drainer), STOP_GRACE_SECONDS)
            for task in (receiver, drainer):
                if task.done() and not task.cancelled():
                    task.result()  # re-raise MqttError from either side
            if not stop.is_set():
                raise aiomqtt.MqttError("the connection ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _receive(self, client: aiomqtt.Client) -> None:
        """Dispatch incoming messages; raises ``MqttError`` when the connection drops."""
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic == self._ha_status_topic:
                if payload == b"online":
                    log.info("Home Assistant is online; re-publishing discovery")
                    with self._lock:
                        self._discovery_due = True
                    self._node_due = 0.0  # its uptime too, rather than in a minute
                    assert self._wake is not None
                    self._wake.set()
            elif self.on_message is not None:
                try:
                    self.on_message(topic, payload, bool(message.retain))
                except Exception:
                    log.exception("MQTT message handler failed on %s", topic)

    async def _drain(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Publish discovery when due, then the outbox in order, until ``stop``."""
        assert self._wake is not None
        while not stop.is_set():
            self._wake.clear()
            if self.settings.discovery and self._take_discovery_due():
                await self._publish_discovery(client)
            if self._monotonic() >= self._node_due:
                await self._publish_node(client)
            batch = await asyncio.to_thread(self.outbox.peek, BATCH)
            if not batch:
                await self._wake.wait()
                continue
            # Issued in order on one connection, so the broker receives them in
            # order; awaited together so a backlog is not paced by round trips.
            results = await asyncio.gather(
                *(client.publish(m.topic, m.payload, m.qos, retain=m.retain) for _, m in batch),
                return_exceptions=True,
            )
            # Ack the completed prefix only: acking past a failure would let the
            # failed message go out after later ones.
            done = 0
            while done < len(batch) and results[done] is None:
                done += 1
            if done:
                await asyncio.to_thread(self.outbox.ack, [i for i, _ in batch[:done]])
                self.published += done
            if done < len(batch):
                failure = results[done]
                if isinstance(failure, aiomqtt.MqttError):
                    raise failure
                raise aiomqtt.MqttError(f"publish failed: {failure!r}")

    async def _publish_node(self, client: aiomqtt.Client) -> None:
        """The node's uptime, on connect and then about once a minute (checked
        each cycle): often enough for HA's duration entity, rarely enough that
        its recorder keeps one row a minute, not one a cycle. Not queued: an old
        uptime is of no use after an outage."""
        now = self._monotonic()
        payload = discovery.node_payload(self._clock_ms(), now - self._started, __version__)
        await client.publish(self.topics.node, payload, self.settings.qos)
        self._node_due = now + discovery.NODE_STATE_INTERVAL_S

    def _take_discovery_due(self) -> bool:
        with self._lock:
            due, self._discovery_due = self._discovery_due, False
            return due

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        with self._lock:
            entities = [e for fields in self._entities.values() for e in fields.values()]
            plugins = sorted(self._plugins)
        messages = discovery.discovery_messages(
            self.settings.discovery_prefix,
            self.topics,
            entities,
            plugins,
            self.expire_after,
            self.device,
        )
        try:
            for topic, payload in messages:
                await client.publish(topic, payload, self.settings.qos, retain=True)
        except BaseException:
            with self._lock:
                self._discovery_due = True  # again on the next connection
            raise
