"""The host: wires board, engine, plugins, cycle and web from one config.

This is the one place that knows how the pieces fit together and that owns
start-up and shutdown; everything else receives what it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from wasihost.authoring.devloop import DevRebuilder
from wasihost.boards import create_board
from wasihost.boards.base import Board, BoardProblem
from wasihost.clock import wall_clock_ms
from wasihost.config import HostConfig, WebConfig
from wasihost.cycle import PollCycle
from wasihost.deploy.disk import deployed_spec
from wasihost.deploy.node import DeployNode
from wasihost.errors import ConfigError, PluginError
from wasihost.health import plugin_health
from wasihost.leds import LedBuffer
from wasihost.model import Reading
from wasihost.runtime.calls import printable
from wasihost.runtime.contract import load_contract
from wasihost.runtime.engine import Engine
from wasihost.runtime.plugin import Plugin, PluginState
from wasihost.runtime.reload import Reloader
from wasihost.snapshots import SnapshotStore
from wasihost.specs import plugin_specs
from wasihost.state import AppState, PluginView
from wasihost.telemetry.fleet import Fleet
from wasihost.telemetry.history import History
from wasihost.telemetry.metrics import Metrics
from wasihost.telemetry.mqtt import MqttPublisher
from wasihost.telemetry.outbox import Outbox
from wasihost.telemetry.stream import StateStream

log = logging.getLogger("wasihost.host")

PRUNE_INTERVAL_SECONDS = 3600.0
# While the history database fails (a full disk, a failing card), the next
# attempt waits this long, doubling after each failure up to the cap: a full
# disk is not retried, nor logged, every cycle.
HISTORY_RETRY_INITIAL_S = 5.0
HISTORY_RETRY_MAX_S = 300.0
# A commit takes the cycle's readings plus at most this many waiting ones, the
# oldest first: a backlog drains over a few cycles, never in one long transaction.
HISTORY_DRAIN_READINGS = 1_000
# [history] commit_interval_seconds and [mqtt] outbox_write_interval_seconds
# when unset: a Pi writes to an SD card (docs/PERFORMANCE.md, "Disk").
PI_COMMIT_INTERVAL_S = 60.0


def _board_default(value: float | None, kind: str, on_pi: float, simulated: float) -> float:
    """A setting left unset, for this board: a Pi's SD card and a demo differ."""
    if value is not None:
        return value
    return on_pi if kind == "pi" else simulated


class Host:
    LOAD_PROGRESS_S = 5.0  # how often start-up says which plugins are still loading

    def __init__(
        self,
        config: HostConfig,
        board: Board | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.contract = load_contract()
        specs = plugin_specs(config, self.contract)
        configured = {spec.name: spec for spec in specs}
        specs = [deployed_spec(config, spec) for spec in specs]  # deployed code wins
        self.board = board if board is not None else create_board(config)
        self.engine = Engine(call_path=config.runtime.call_path)
        self.leds = LedBuffer(self.board.led_count)
        self._board_error: str | None = None  # what board.problems() last raised
        self._published: tuple[int, str] | None = None  # (cycle, state JSON) after_cycle sent
        self.plugins = {
            spec.name: Plugin(
                spec, self.engine, self.contract, self.board, self.leds, clock_ms, monotonic
            )
            for spec in specs
        }
        self.clock_ms = clock_ms
        self.state = AppState(
            node=config.node_id,
            board=self.board.kind,
            interval_seconds=config.polling.interval_seconds,
            plugins={
                p.name: PluginView(p.world, tuple(sorted(p.spec.grants.leds)))
                for p in self.plugins.values()
                if p.role == "sensor"
            },
            leds=self.leds.snapshot(),
        )
        self.cycle = PollCycle(
            list(self.plugins.values()),
            self.board,
            self.leds,
            self.state,
            show_sensor_data=(
                config.logging.show_sensor_data
                if config.logging.show_sensor_data is not None
                else config.board.kind != "pi"  # 28 MB a day of log lines on a Pi
            ),
            clock_ms=clock_ms,
            filters={name: plugin.filters for name, plugin in config.plugins.items()},
            monotonic=monotonic,
        )
        self.stream = StateStream()
        self.history: History | None = None
        if config.history.enabled:
            self.history = History(
                Path(config.history.path),
                config.history.retention_days,
                config.history.short_term_days,
                config.history.long_term_days,
            )
        # Readings not committed yet: waiting for the commit interval, or for a
        # failing database (bounded, oldest dropped first; see save_history).
        self._unsaved: deque[Reading] = deque()
        self.history_dropped = 0  # readings dropped from a full backlog, since start
        self._monotonic = monotonic
        history = config.history
        self._commit_interval_s = _board_default(
            history.commit_interval_seconds, config.board.kind, PI_COMMIT_INTERVAL_S, 0.0
        )
        self._history_due = -math.inf  # monotonic time of the next commit attempt
        self._history_error: str | None = None  # why the last commit failed, while failing
        self._history_failures = 0  # commits failed in a row
        self._history_failing_since = 0.0  # monotonic, from the first of them
        self._history_dropped_at_failure = 0  # history_dropped when they started
        self._history_dropping = False  # the backlog is full: logged once until a commit
        self.snapshots = SnapshotStore(
            Path(config.state.dir), config.state.save_interval_seconds, clock=monotonic
        )
        self.reloader = Reloader(self.plugins, self.snapshots)
        # Grants and worlds never change while the host runs.
        self._devices = {name: self._devices_of(p) for name, p in self.plugins.items()}
        self.metrics = Metrics(config.node_id)
        self.fleet: Fleet | None = None
        if config.fleet.role == "hub":
            if not config.mqtt.enabled:
                raise ConfigError(
                    f'{config.path}: fleet.role = "hub" needs [mqtt] enabled = true '
                    "(the hub reads the nodes from the broker)"
                )
            self.fleet = Fleet(
                "wasihost",
                config.fleet.offline_after_seconds,
                clock=lambda: clock_ms() / 1000,
                monotonic=monotonic,  # liveness and ages: a clock step must not move them
            )
        self.outbox: Outbox | None = None
        self.mqtt: MqttPublisher | None = None
        self.deploy: DeployNode | None = None
        if config.mqtt.enabled:
            self.outbox = Outbox(
                Path(config.mqtt.outbox_path),
                config.mqtt.outbox_max_messages,
                _board_default(
                    config.mqtt.outbox_write_interval_seconds,
                    config.board.kind,
                    PI_COMMIT_INTERVAL_S,
                    0.0,
                ),
                monotonic=monotonic,
            )
            if config.deploy.enabled:
                self.deploy = DeployNode(
                    config,
                    self.plugins,
                    self.reloader,
                    configured,
                    self._publish_retained,
                    clock_ms=clock_ms,
                    monotonic=monotonic,  # the health gate's window, like supervision
                )
            self.mqtt = MqttPublisher(
                config.mqtt,
                config.node_id,
                config.polling.interval_seconds,
                self.outbox,
                subscriptions=[
                    *(self.fleet.subscriptions if self.fleet else ()),
                    *(self.deploy.subscriptions if self.deploy else ()),
                ],
                on_message=self._on_message,
                on_connect=self.deploy.republish if self.deploy else None,
                clock_ms=clock_ms,
                monotonic=monotonic,
                board_kind=self.board.kind,  # HA's device model and "Visit" link
                board_model=self.board.model(),
                web_bind=(config.web.host, config.web.port) if config.web.enabled else None,
            )

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """Messages on the shared connection: deliveries to the deploy side, the rest to the hub."""
        if self.deploy is not None and self.deploy.handle(topic, payload, retained):
            return
        if self.fleet is not None:
            self.fleet.handle(topic, payload, retained)

    def _publish_retained(self, topic: str, payload: bytes) -> None:
        if self.mqtt is not None:
            self.mqtt.enqueue_retained(topic, payload)

    @property
    def history_unsaved(self) -> int:
        """Readings waiting for the history database to accept a commit."""
        return len(self._unsaved)

    @property
    def snapshot_problem(self) -> str | None:
        """Why state snapshots are not being saved, while writing them fails."""
        return self.snapshots.problem

    @property
    def outbox_problem(self) -> str | None:
        """Why MQTT messages are being lost, while the outbox cannot be written."""
        return self.mqtt.problem if self.mqtt is not None else None

    @property
    def history_problem(self) -> str | None:
        """Why readings are not being saved, while the history database fails."""
        if self._history_error is None:
            return None
        return (
            f"history not saved for {self._monotonic() - self._history_failing_since:.0f} s "
            f"({self._history_failures} attempts): {self._history_error}; "
            f"{len(self._unsaved)} readings waiting in memory, {self.history_dropped} dropped"
        )

    @property
    def dashboard(self) -> Plugin | None:
        return next((p for p in self.plugins.values() if p.role == "renderer"), None)

    @property
    def web_config(self) -> WebConfig:
        """The ``[web]`` section, all the web reads of the config."""
        return self.config.web

    async def reload_plugin(self, name: str) -> bool:
        """Reload one plugin from its file now (the operator's reload); True when live."""
        return await self.reloader.reload(name)

    def load_plugins(self, names: Iterable[str] | None = None) -> None:
        """Load plugins in parallel (compiling is the slow part); blocking.

        A plugin that fails to load is logged and left ``failed``; the others
        still run. Progress goes to the log, since a cold compile takes seconds.
        """
        todo = [self.plugins[n] for n in (names or self.plugins)]
        workers = max(1, min(len(todo), os.cpu_count() or 1))
        log.info(
            "loading %d plugins (%d at a time; the first start compiles them)…", len(todo), workers
        )

        def load(plugin: Plugin) -> None:
            started = time.perf_counter()
            try:
                plugin.load(self.snapshots.load(plugin.name))
            except PluginError as exc:
                log.error("[%s] not loaded: %s", plugin.name, exc.reason)
                if plugin.name in self.state.plugins:
                    self.state.record_error(plugin.name, exc.reason, self.clock_ms())
                return
            log.info("[%s] ready in %.1f s", plugin.name, time.perf_counter() - started)

        started = time.perf_counter()
        with ThreadPoolExecutor(workers, thread_name_prefix="wasihost-load") as pool:
            pending = {pool.submit(load, plugin): plugin.name for plugin in todo}
            while pending:
                done, _ = wait(pending, timeout=self.LOAD_PROGRESS_S)
                for future in done:
                    future.result()
                    del pending[future]
                if pending:  # a cold compile takes a while: say what is still going on
                    log.info(
                        "still loading %s (%.0f s so far)…",
                        ", ".join(sorted(pending.values())),
                        time.perf_counter() - started,
                    )

    def board_problems(self) -> list[BoardProblem]:
        """The board's problems; a board that raises instead of answering is one
        itself (logged when it starts or changes), never the end of the host."""
        try:
            problems = self.board.problems()
        except Exception as exc:  # whatever a board raises, the host goes on
            what = printable(f"problems() raised {type(exc).__name__}: {exc}")[:500]
            if self._board_error != what:
                log.error("board: %s", what)
            self._board_error = what
            return [BoardProblem("system", "board self-check", what, "see the host log")]
        if self._board_error is not None:
            log.info("board: problems() answers again")
            self._board_error = None
        return problems

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Each plugin's health, with the board problems of the devices it uses and
        its ``health`` by the one rule the dashboard and /healthz show."""
        problems = self.board_problems()
        return {
            name: {
                **plugin.status(),
                **plugin_health(plugin, self.state.plugins.get(name), self.state.interval_seconds),
                "board_problems": [
                    p.to_json() for p in problems if p.device in self._devices[name]
                ],
            }
            for name, plugin in self.plugins.items()
        }

    def _devices_of(self, plugin: Plugin) -> frozenset[str]:
        """The board devices a plugin can reach, as ``BoardProblem.device`` names them."""
        from wasihost.specs import devices_of

        return devices_of(plugin.spec.grants, self.contract.worlds[plugin.world].imports)

    def snapshot_json(self) -> str:
        """The state as JSON: the one this cycle already published when there is
        one (a page render then costs no second round of statuses and board
        checks), else made now."""
        published = self._published
        if published is not None and published[0] == self.state.cycle:
            return published[1]
        return json.dumps(self.snapshot())

    def snapshot(self, statuses: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """The app state plus plugin health: what the dashboard renders and streams."""
        doc = {
            **self.state.to_json(),
            "plugins": self.statuses() if statuses is None else statuses,
        }
        if self.fleet is not None:
            doc["fleet"] = self.fleet.to_json()
        return doc

    async def after_cycle(self, readings: list[Reading]) -> None:
        """Persist the cycle's readings, queue them for MQTT, update the metrics,
        push the new state to live dashboards, save due state snapshots and look
        for changed plugin files."""
        await self.save_history(readings)
        statuses = self.statuses()
        if self.mqtt is not None:  # SQLite only, on a worker thread: never the network
            await asyncio.to_thread(self.mqtt.enqueue_cycle, readings, statuses)
        self.metrics.update(
            readings,
            statuses,
            self.state.last_cycle_ms,
            led_writes=self.cycle.led_writes,
            led_write_errors=self.cycle.led_write_errors,
            mqtt=self.mqtt.stats() if self.mqtt is not None else None,
            history_unsaved=self.history_unsaved if self.history is not None else None,
            history_dropped=self.history_dropped if self.history is not None else None,
            snapshot_failures=self.snapshots.failures,
        )
        published = json.dumps(self.snapshot(statuses))
        self._published = (self.state.cycle, published)
        self.stream.publish(published)
        await self.save_snapshots()
        if self.deploy is not None:
            self.deploy.after_cycle()  # the health gate of versions on probation
        if self.config.reload.enabled:
            self.reloader.check_files()

    async def save_snapshots(self, force: bool = False) -> None:
        """Snapshot stateful plugins to disk, at most once per save interval each
        (``force`` at shutdown).

        The plugins' snapshots run concurrently, each on its plugin's thread and
        bounded by its deadline: k plugins spinning in ``snapshot`` cost one
        deadline, not k. A plugin that is not running (backing off after a
        failed snapshot, hung, quarantined) is skipped until it runs again. A
        write that fails (a full disk) is counted and logged by the store, when
        it starts and when it stops, and retried one interval later.
        """
        due = [
            plugin
            for plugin in self.plugins.values()
            if plugin.stateful
            and plugin.state is PluginState.RUNNING
            and (force or self.snapshots.due(plugin.name))
        ]
        taken = await asyncio.gather(*(plugin.snapshot_async() for plugin in due))
        for plugin, data in zip(due, taken, strict=True):
            if data is not None:
                await asyncio.to_thread(self.snapshots.save, plugin.name, data, force)

    async def save_history(self, readings: list[Reading]) -> None:
        """Queue the cycle's readings and commit them with any waiting ones when due.

        Due every cycle, or every ``[history] commit_interval_seconds``. A
        failing database never stops the cycle: readings wait in memory, at
        most ``[history] max_unsaved_readings`` (beyond that the oldest are
        dropped and counted), and the next attempt waits for a backoff on the
        monotonic clock, doubling from ``HISTORY_RETRY_INITIAL_S`` to
        ``HISTORY_RETRY_MAX_S``. Each commit takes the cycle's readings plus at
        most ``HISTORY_DRAIN_READINGS`` waiting ones, so a backlog drains over
        a few cycles. The failure is logged when it starts (or its error
        changes) and when saving works again, not on every attempt.
        """
        if self.history is None:
            return
        self._queue_unsaved(readings)
        now = self._monotonic()
        if now < self._history_due:
            return
        batch = list(itertools.islice(self._unsaved, len(readings) + HISTORY_DRAIN_READINGS))
        try:
            await asyncio.to_thread(self.history.write, batch)
        except sqlite3.Error as exc:
            self._history_failed(exc, now)
            return
        for _ in batch:  # only save_history and the shutdown flush change the queue
            self._unsaved.popleft()
        self._history_saved(now)

    def _queue_unsaved(self, readings: Iterable[Reading]) -> None:
        self._unsaved.extend(readings)
        overflow = len(self._unsaved) - self.config.history.max_unsaved_readings
        if overflow <= 0:
            return
        if not self._history_dropping:
            self._history_dropping = True
            log.error(
                "history: %d readings wait in memory, the most [history] max_unsaved_readings "
                "allows: dropping the oldest from now on",
                self.config.history.max_unsaved_readings,
            )
        for _ in range(overflow):
            self._unsaved.popleft()
        self.history_dropped += overflow

    def _history_failed(self, exc: sqlite3.Error, now: float) -> None:
        error = printable(f"{exc}")[:300] or type(exc).__name__
        if self._history_error is None:
            self._history_failing_since = now
            self._history_dropped_at_failure = self.history_dropped
        if error != self._history_error:
            log.error(
                "history: cannot save readings: %s; %d wait in memory (at most %d), "
                "retried with backoff (up to every %.0f s)",
                error,
                len(self._unsaved),
                self.config.history.max_unsaved_readings,
                HISTORY_RETRY_MAX_S,
            )
        self._history_error = error
        self._history_failures += 1
        doublings = min(self._history_failures - 1, 20)
        delay = min(HISTORY_RETRY_INITIAL_S * 2**doublings, HISTORY_RETRY_MAX_S)
        self._history_due = now + delay

    def _history_saved(self, now: float) -> None:
        if self._history_error is not None:
            log.info(
                "history: saving again after %.0f s and %d failed attempts; "
                "%d readings still waiting, %d dropped meanwhile",
                now - self._history_failing_since,
                self._history_failures,
                len(self._unsaved),
                self.history_dropped - self._history_dropped_at_failure,
            )
            self._history_error = None
            self._history_failures = 0
            self._history_dropped_at_failure = self.history_dropped
        self._history_dropping = False
        # A backlog left over drains on the next cycles; else wait for the interval.
        self._history_due = now if self._unsaved else now + self._commit_interval_s

    def flush_history(self) -> None:
        """At shutdown: a last attempt to commit every waiting reading (blocking),
        then say what could not be saved and how many were dropped in all."""
        if self.history is None:
            return
        waiting = len(self._unsaved)
        while self._unsaved:
            batch = list(itertools.islice(self._unsaved, HISTORY_DRAIN_READINGS))
            try:
                self.history.write(batch)
            except sqlite3.Error as exc:
                log.error(
                    "history: %d readings not saved at shutdown, lost: %s",
                    len(self._unsaved),
                    printable(f"{exc}")[:300],
                )
                self.history_dropped += len(self._unsaved)
                self._unsaved.clear()
                break
            for _ in batch:
                self._unsaved.popleft()
        else:
            if self._history_error is not None and waiting:
                log.info("history: saving again at shutdown: the %d readings waiting", waiting)
                self._history_error = None
        if self.history_dropped:
            log.warning(
                "history: %d readings were dropped, never saved, since the host started",
                self.history_dropped,
            )

    async def _prune_history(self, stop: asyncio.Event) -> None:
        assert self.history is not None
        try:
            computed = await asyncio.to_thread(self.history.compile_missing)
        except sqlite3.Error as exc:
            log.error("history: computing statistics of older samples failed: %s", exc)
        else:
            if computed:
                log.info(
                    "history: computed the statistics of %d 5-minute buckets stored "
                    "before this version kept them",
                    computed,
                )
        while not stop.is_set():
            try:
                removed = await asyncio.to_thread(self.history.prune, self.clock_ms())
            except sqlite3.Error as exc:
                log.error("history pruning failed: %s", exc)
            else:
                if removed:
                    log.info("history: pruned %d samples past retention", removed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PRUNE_INTERVAL_SECONDS)

    def running(self) -> list[str]:
        return [n for n, p in self.plugins.items() if p.state is PluginState.RUNNING]

    def dev_rebuilder(self, plugins_dir: Path, wit_dir: Path) -> DevRebuilder:
        """Rebuilds for ``--dev``, limited to plugins run from their default build path."""
        out_dir = Path("build")
        names = [n for n, p in self.plugins.items() if p.spec.wasm == out_dir / f"{n}.wasm"]
        return DevRebuilder(self.engine, plugins_dir, wit_dir, out_dir, names)

    async def run(
        self,
        stop: asyncio.Event,
        dev: bool = False,
        web: Callable[[Host, asyncio.Event], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """Load the plugins, start ``web`` (the web app, which the caller hands
        in: the web reads the host through its ``web.node.Node`` protocol, the
        host never imports the web) and poll
        until ``stop`` is set; with ``dev`` also rebuild plugins whose sources
        change."""
        await asyncio.to_thread(self.load_plugins)
        tasks: list[asyncio.Task[None]] = []
        if web is not None:
            tasks.append(asyncio.create_task(web(self, stop)))
        if self.history is not None:
            tasks.append(asyncio.create_task(self._prune_history(stop)))
        if self.deploy is not None:
            await self.deploy.start()
        if self.mqtt is not None:
            tasks.append(asyncio.create_task(self.mqtt.run(stop)))
        if self.config.reload.enabled or dev:  # --dev is pointless without reloading
            tasks.append(asyncio.create_task(self.reloader.watch(stop)))
        if dev:
            rebuilder = self.dev_rebuilder(Path("plugins"), Path("wit"))
            tasks.append(asyncio.create_task(rebuilder.run(stop)))
        try:
            await self.cycle.run_forever(
                self.config.polling.interval_seconds, stop, after=self.after_cycle
            )
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if self.deploy is not None:
                await self.deploy.wait_idle()
            await self.reloader.wait_idle()
            await self.save_snapshots(force=True)

    def close(self) -> bool:
        """Free everything; False if a plugin's guest call is still hung, in which
        case the process must exit without finalising the wasmtime objects that
        call is still inside (``cli`` does)."""
        clean = all([plugin.close() for plugin in self.plugins.values()])
        self.engine.close()
        self.board.close()
        if self.history is not None:
            self.flush_history()
            self.history.close()
        if self.outbox is not None:
            self.outbox.close()
        return clean
