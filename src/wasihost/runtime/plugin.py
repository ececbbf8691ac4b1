"""One plugin: its checked component, its live instance, its lifecycle and counters.

``Plugin`` is the only place a plugin's state changes. Everything that
touches its live instance runs as a job on the plugin's own thread
(``GuestThread``): a store is never entered by two threads, no lock is held
across a guest call, and a caller never waits for a guest past the call's
deadline, even when the guest is blocked inside a WASI call.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from wasihost.boards.base import Board
from wasihost.capabilities import CapabilityContext, Grants
from wasihost.clock import wall_clock_ms
from wasihost.errors import GuestError, PluginError, PluginHung, PluginLoadError, PluginTrap
from wasihost.leds import LedBuffer
from wasihost.ratelimit import RateLimit
from wasihost.runtime.calls import forget_host_failures, host_failures
from wasihost.runtime.component import CheckedComponent, check_component
from wasihost.runtime.contract import Contract
from wasihost.runtime.engine import Engine
from wasihost.runtime.guest_log import GuestOutput
from wasihost.runtime.guest_thread import GuestThread, HungCall, SyncJob
from wasihost.runtime.instance import Instance, build_linker
from wasihost.runtime.supervision import SupervisionPolicy, Supervisor

log = logging.getLogger("wasihost.plugin")

T = TypeVar("T")

# Hung calls a plugin may leave behind on retired threads (each holds its
# instance's memory until the call returns) before a reset or a new version
# must wait for one to return.
MAX_HUNG_THREADS = 2

# Snapshots are written to an SD card and restored on every restart: a state
# of more than a megabyte is a bug (or an attack), not calibration data.
MAX_SNAPSHOT_BYTES = 1024 * 1024
SNAPSHOT_TOO_BIG = f"state snapshot over {MAX_SNAPSHOT_BYTES} bytes ignored"


class PluginState(StrEnum):
    LOADING = "loading"
    RUNNING = "running"
    BACKOFF = "backoff"  # trapped; waiting before its next instance runs
    HUNG = "hung"  # blocked in a host call past its deadline; not called until it returns
    QUARANTINED = "quarantined"  # crash loop; not polled until a new file or a reset
    FAILED = "failed"  # cannot be loaded or instantiated
    STOPPED = "stopped"


@dataclass(frozen=True)
class PluginSpec:
    """Everything the host decided about a plugin from the config."""

    name: str
    world: str
    wasm: Path
    settings: dict[str, Any] = field(default_factory=dict)
    grants: Grants = field(default_factory=Grants)
    timeout_ms: int = 1000
    max_memory_mb: int = 64
    max_log_lines_per_minute: int = 120
    max_actuator_changes_per_minute: int = 6
    supervision: SupervisionPolicy = field(default_factory=SupervisionPolicy)


@dataclass
class PluginStats:
    polls: int = 0
    errors: int = 0
    traps: int = 0  # hangs included: a hung call is supervised like a trap when it returns
    hangs: int = 0
    restarts: int = 0
    reloads: int = 0
    last_error: str | None = None
    last_poll_ms: float | None = None
    reload_error: str | None = None
    last_reload: dict[str, Any] | None = None


@dataclass
class Candidate:
    """A new version, compiled, checked, instantiated and configured, not yet live."""

    checked: CheckedComponent
    linker: Any
    instance: Instance
    signature: tuple[int, int] | None
    prepare_ms: float
    info: dict[str, Any] | None  # what describe() returned, for worlds that have it


def _bounded_info(info: Any) -> dict[str, Any] | None:
    """describe() output trimmed to sane sizes: it comes from the plugin and goes
    into /api/plugins and the dashboard."""
    if not isinstance(info, dict):
        return None
    given = info.get("measurements")
    specs: list[Any] = given if isinstance(given, list) else []
    return {
        "name": str(info.get("name", ""))[:64],
        "version": str(info.get("version", ""))[:32],
        "measurements": [
            {key: str(spec.get(key, ""))[:48] for key in ("name", "unit", "device_class")}
            for spec in specs[:64]
            if isinstance(spec, dict)
        ],
    }


def file_signature(path: Path) -> tuple[int, int] | None:
    """(mtime, size) of ``path``: what the per-cycle fallback check compares."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class Plugin:
    def __init__(
        self,
        spec: PluginSpec,
        engine: Engine,
        contract: Contract,
        board: Board,
        leds: LedBuffer,
        clock_ms: Callable[[], int] = wall_clock_ms,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.world = spec.world
        self._engine = engine
        self._contract = contract
        self._clock_ms = clock_ms
        self.ctx = CapabilityContext(
            spec.name,
            board,
            leds,
            spec.grants,
            clock_ms,
            actuator_changes_per_minute=spec.max_actuator_changes_per_minute,
        )
        # Output limits outlive instances: a plugin that traps and restarts in
        # a loop must not get a fresh log budget each time.
        log_limit = RateLimit(spec.max_log_lines_per_minute)
        self.output = (
            GuestOutput(spec.name, "stdout", log_limit),
            GuestOutput(spec.name, "stderr", log_limit),
        )
        # The world must exist (the host checks the config first); its logic
        # function says whether the cycle polls this plugin or the web renders it.
        self.role = "renderer" if contract.logic_of(spec.world)[1] == "render" else "sensor"
        self._state = PluginState.LOADING
        self.supervisor = Supervisor(spec.supervision, monotonic)
        self.stats = PluginStats()
        self.signature: tuple[int, int] | None = None  # of the .wasm now live
        self.last_snapshot: bytes | None = None  # latest state taken from the guest
        self.info: dict[str, Any] | None = None  # describe() of a generic sensor plugin
        # Who touches what: the live instance (``_instance``) only from the
        # plugin's thread (``_guest``); ``_guest`` and ``_retired`` change under
        # ``_threads_lock``; counters and the supervisor from the plugin's thread,
        # except an operator reset. A thread stuck in a hung call can be retired
        # (reset, new version): it keeps the instance it is inside and closes it
        # when the call returns; a few at most, since each holds its memory.
        self._threads_lock = threading.Lock()
        self._retired: dict[GuestThread, Instance | None] = {}
        self._guest = self._thread("wasihost-" + spec.name)
        # Capability failures on the host's side (board trouble, host bugs): the
        # callbacks count them by plugin name; a new Plugin of that name starts at 0.
        forget_host_failures(spec.name)
        self.host_failures = host_failures(spec.name)
        self._checked: CheckedComponent | None = None
        self._linker: Any = None
        self._instance: Instance | None = None

    def _thread(self, name: str) -> GuestThread:
        return GuestThread(name, self.name, self.spec.timeout_ms, self._clock_ms, self._after_hang)

    def _fresh_thread(self, why: str) -> None:
        """Leave a hung thread with the instance it is stuck in and carry on
        on a new one: an operator reset or a new version must not wait for a
        guest that may sleep for days. Raises ``PluginError`` past the cap."""
        with self._threads_lock:
            old = self._guest
            if old.hung is None:
                return
            if len(self._retired) >= MAX_HUNG_THREADS:
                raise PluginError(
                    self.name,
                    f"cannot {why}: {len(self._retired) + 1} calls are still hung "
                    f"({old.hung.reason(time.monotonic())}); it must return first",
                )
            call = old.hung.call
            self._retired[old] = self._instance
            self._instance = None
            self._guest = self._thread("wasihost-" + self.name)
        old.stop()
        log.warning("[%s] %s: left the hung %s to its thread", self.name, why, call)

    @property
    def state(self) -> PluginState:
        """The lifecycle state; hung, backoff and quarantine derive from the
        plugin's thread and its supervisor."""
        if self._state is PluginState.STOPPED:
            return self._state
        if self._guest.hung is not None:
            return PluginState.HUNG
        if self._state is PluginState.RUNNING:
            if self.supervisor.quarantined:
                return PluginState.QUARANTINED
            if self.supervisor.backing_off():
                return PluginState.BACKOFF
        return self._state

    @state.setter
    def state(self, value: PluginState) -> None:
        """Sets the lifecycle's own state (loading, running, failed, stopped); what
        the getter adds (hung, backoff, quarantined) is derived, never set."""
        self._state = value

    @property
    def hung(self) -> HungCall | None:
        """The guest call the host stopped waiting for, while it has not returned."""
        return self._guest.hung

    def due(self) -> bool:
        """Whether the cycle should call this plugin now."""
        return self.state is PluginState.RUNNING

    def reset(self) -> None:
        """Operator reset: forget failures, lift a quarantine and start a fresh
        instance now (a ``failed`` plugin is loaded again); blocking.

        A hung plugin gets a fresh thread (the stuck one keeps its instance
        until the call returns). Raises ``PluginError`` saying why when the
        plugin cannot be revived: too many calls still hung, or its new
        instance fails (which counts as a trap).
        """
        self._fresh_thread("reset")
        if self._checked is None or self._state is PluginState.FAILED:
            self.supervisor.reset()
            self.load(self.last_snapshot)
        else:
            self._guest.run(self._reset)
        log.info("[%s] reset by the operator", self.name)

    def _reset(self) -> None:
        self.supervisor.reset()
        self._close_instance()
        self._restart_or_trap()

    @property
    def loaded_sha256(self) -> str | None:
        return self._checked.sha256 if self._checked else None

    @property
    def stateful(self) -> bool:
        return self._checked is not None and self._checked.has_state

    # -- guest calls -------------------------------------------------------------
    @staticmethod
    def _guest_call(guest: GuestThread, instance: Instance, function: str, *args: Any) -> Any:
        """Every call into a guest goes through here: its thread watches it."""
        with guest.watching(function):
            return instance.call(function, *args)

    def _on_trap(self, reason: str) -> None:
        """Supervise a fault of the live version: count it, back off, maybe quarantine."""
        self.stats.traps += 1
        self.stats.last_error = reason
        self.supervisor.on_trap()
        if self.supervisor.quarantined:
            log.error("[%s] quarantined after repeated traps: %s", self.name, reason)

    def _after_hang(self, thread: GuestThread, hung: HungCall, error: BaseException | None) -> None:
        """A call the host gave up on has returned (on ``thread``): supervised
        like a trap, on a fresh instance after the backoff. A retired or
        temporary thread only frees what it held: the plugin has moved on."""
        with self._threads_lock:  # take what this thread holds, atomically with a retirement
            retired = thread is not self._guest
            if retired:
                held = self._retired.pop(thread, None)
            else:
                held, self._instance = self._instance, None
        if held is not None:
            held.close()
        if retired:
            log.warning(
                "[%s] %s returned after %.1f s; what it ran in had been discarded",
                self.name,
                hung.call,
                time.monotonic() - hung.started,
            )
            return
        reason = (
            f"hung in {hung.call} for {time.monotonic() - hung.started:.1f} s, blocked in a "
            f"host call past its {self.spec.timeout_ms} ms deadline"
        )
        self.stats.hangs += 1
        self._on_trap(reason)
        log.warning("[%s] %s; it returned, the instance is discarded", self.name, reason)

    # -- loading and reloading ---------------------------------------------
    def prepare(self) -> Candidate:
        """Compile (or load precompiled), check, instantiate and configure the
        plugin's current file; blocking, never touches the live instance.

        Its guest calls run on a thread of the candidate's own, watched like
        the plugin's: a ``configure`` or ``describe`` that blocks fails the
        preparation after its deadline instead of holding the caller.
        """
        started = time.perf_counter()
        signature = file_signature(self.spec.wasm)
        checked = check_component(
            self.name, self._engine, self._contract, self.world, self.spec.wasm
        )
        linker = build_linker(self._engine, self._contract, self.ctx, checked)

        def build(guest: GuestThread) -> tuple[Instance, dict[str, Any] | None]:
            instance = self._instantiate(guest, checked, linker)
            return instance, self._describe(guest, instance)

        instance, info = self._on_new_thread(build)
        return Candidate(
            checked, linker, instance, signature, (time.perf_counter() - started) * 1000, info
        )

    def _on_new_thread(self, work: Callable[[GuestThread], T]) -> T:
        """Run guest calls on a version that is not live yet, on a thread of
        its own (the live version's thread may be busy or hung, and a new
        version that hangs must not be blamed on the live one). A thread that
        hangs is kept in ``_retired`` until its call returns; each step closes
        its instance on the way out, so it holds nothing of ours."""
        with self._threads_lock:
            if len(self._retired) >= MAX_HUNG_THREADS:
                raise PluginError(
                    self.name,
                    f"{len(self._retired)} earlier calls are still hung; not trying again",
                )
        guest = self._thread(f"wasihost-{self.name}-new")
        try:
            return guest.run(lambda: work(guest))
        except PluginHung:
            with self._threads_lock:
                if guest.hung is not None:  # it may have returned already
                    self._retired[guest] = None
            raise
        finally:
            guest.stop()  # ends once idle, or when a hung call returns

    def _describe(self, guest: GuestThread, instance: Instance) -> dict[str, Any] | None:
        """``describe()`` of a generic sensor plugin; a failure is a load error."""
        interface, _ = self._contract.logic_of(self.world)
        if not instance.exports(f"{interface}.describe"):
            return None
        try:
            info = self._guest_call(guest, instance, f"{interface}.describe")
        except (GuestError, PluginTrap) as exc:
            instance.close()
            raise PluginLoadError(self.name, f"describe() failed: {exc.reason}") from None
        except BaseException:
            instance.close()
            raise
        return _bounded_info(info)

    def load(self, saved_state: bytes | None = None) -> None:
        """First load; ``saved_state`` (from disk) is restored if the plugin takes it.

        A snapshot the new instance refuses is logged and dropped: an old
        snapshot must never keep a plugin from starting.
        """
        try:
            candidate = self.prepare()
            if saved_state is not None and candidate.checked.has_state:
                candidate.instance, restored = self._on_new_thread(
                    lambda guest: self._restore_or_fresh(guest, candidate, saved_state)
                )
                if restored:
                    self.last_snapshot = saved_state
            self._fresh_thread("load")
            try:
                self._guest.run(lambda: self._go_live(candidate))
            except PluginError:
                if self._instance is not candidate.instance:
                    candidate.instance.close()
                raise
        except PluginError as exc:
            self._fail(exc.reason)
            raise
        checked = candidate.checked
        log.info(
            "[%s] loaded %s (%s, sha256 %s, %s in %.0f ms)",
            self.name,
            self.spec.wasm,
            self.world,
            checked.sha256[:12],
            "precompiled" if checked.precompiled else "compiled",
            checked.load_ms,
        )

    def _restore_or_fresh(
        self, guest: GuestThread, candidate: Candidate, data: bytes
    ) -> tuple[Instance, bool]:
        """Restore a saved state into a new version's instance; after a trap in
        ``restore`` the instance is dead, so a fresh one without the state."""
        failure = self._restore(guest, candidate.instance, data)
        if failure is None:
            return candidate.instance, True
        log.warning("[%s] saved state not restored, starting fresh: %s", self.name,
                    failure.reason)  # fmt: skip
        if not isinstance(failure, PluginTrap):
            return candidate.instance, False
        candidate.instance.close()
        return self._instantiate(guest, candidate.checked, candidate.linker), False

    def swap(self, candidate: Candidate) -> dict[str, Any]:
        """Make ``candidate`` live between two calls, carrying state over.

        With ``state`` on both sides the old instance's snapshot is restored
        into the new one first; if that fails the new version is discarded and
        the old one keeps running (``PluginLoadError``). Returns the report
        the reload log line and ``/api/plugins`` show.
        """
        started = time.perf_counter()
        job = SyncJob(lambda: self._swap(candidate))
        try:
            self._fresh_thread("go live with a new version")
            self._guest.submit(job)
        except PluginError:
            candidate.instance.close()  # idle: the thread that prepared it is done
            raise
        old, carried = self._guest.wait(job)
        report = {
            "old_hash": old.sha256[:12] if old else None,
            "new_hash": candidate.checked.sha256[:12],
            "precompiled": candidate.checked.precompiled,
            "compile_ms": round(candidate.checked.load_ms, 1),
            "prepare_ms": round(candidate.prepare_ms, 1),
            "swap_ms": round((time.perf_counter() - started) * 1000, 2),
            "state": "carried" if carried else "reset",
        }
        self.stats.last_reload = report
        return report

    def _swap(self, candidate: Candidate) -> tuple[CheckedComponent | None, bool]:
        old = self._checked
        carried = False
        if candidate.checked.has_state:
            try:
                data = self._snapshot() if self.stateful else None
            except BaseException:
                candidate.instance.close()
                raise
            data = data if data is not None else self.last_snapshot
            if data is not None:
                # On the new version's own thread: if its restore hangs, the live
                # version is not blamed for it and polls on after one deadline.
                try:
                    failure = self._on_new_thread(
                        lambda guest: self._restore(guest, candidate.instance, data)
                    )
                except PluginHung as exc:  # its thread closes it when the call returns
                    raise PluginLoadError(self.name, f"new version {exc.reason}") from None
                if failure is not None:
                    candidate.instance.close()
                    raise PluginLoadError(
                        self.name, f"new version failed to restore state: {failure.reason}"
                    )
                self.last_snapshot = data
                carried = True
        self._go_live(candidate)
        self.supervisor.reset()  # a new version starts with a clean record
        self.stats.reloads += 1
        self.stats.reload_error = None
        return old, carried

    def _go_live(self, candidate: Candidate) -> None:
        """Replace the live version in one step (on the plugin's thread)."""
        self._close_instance()
        self._checked, self._linker = candidate.checked, candidate.linker
        self._instance = candidate.instance
        self.signature = candidate.signature
        self.info = candidate.info
        self.state = PluginState.RUNNING

    def record_reload_failure(self, reason: str) -> None:
        self.stats.reload_error = reason

    def _fail(self, reason: str) -> None:
        self.state = PluginState.FAILED
        self.stats.last_error = reason

    def _instantiate(self, guest: GuestThread, checked: CheckedComponent, linker: Any) -> Instance:
        with guest.watching("instantiate"):  # a start function may block in WASI too
            instance = Instance(
                self.name,
                self._engine,
                checked,
                linker,
                self.spec.timeout_ms,
                self.spec.max_memory_mb,
                self.output,
            )
        if checked.has_settings:
            try:
                self._guest_call(
                    guest, instance, "settings.configure", json.dumps(self.spec.settings)
                )
            except GuestError as exc:
                instance.close()
                raise PluginLoadError(self.name, f"refused its settings: {exc.reason}") from None
            except PluginTrap as exc:
                instance.close()
                raise PluginLoadError(self.name, exc.reason) from None
            except BaseException:
                instance.close()
                raise
        return instance

    def _restore(
        self, guest: GuestThread, instance: Instance, data: bytes
    ) -> GuestError | PluginTrap | None:
        """Restore ``data`` into ``instance``; the failure, if any, for the caller
        to judge (after a trap the instance is dead and must be replaced)."""
        try:
            self._guest_call(guest, instance, "state.restore", data)
        except (GuestError, PluginTrap) as exc:
            return exc
        except BaseException:  # hung: the host stopped waiting, the instance goes
            instance.close()
            raise
        return None

    def _close_instance(self) -> None:
        if self._instance is not None:
            self._instance.close()
            self._instance = None

    def close(self) -> bool:
        """Stop the plugin and free its instance; False if a hung guest call
        still holds it (the process must then exit without finalising it)."""
        closed = True
        try:
            self._guest.run(self._close_instance)
        except PluginHung as exc:
            log.warning("[%s] left running at shutdown: %s", self.name, exc.reason)
            closed = False
        except PluginError:  # already stopped
            pass
        self.state = PluginState.STOPPED
        self._guest.stop()
        with self._threads_lock:
            if self._retired:
                log.warning("[%s] %d hung calls left at shutdown", self.name, len(self._retired))
                closed = False
        return closed

    # -- state ----------------------------------------------------------------
    def snapshot(self) -> bytes | None:
        """Take the guest's state now (None without the state interface, or
        while the plugin is not running); blocking."""
        try:
            result: bytes | None = self._guest.run(self._snapshot)
        except PluginHung:
            return None
        return result

    async def snapshot_async(self) -> bytes | None:
        """``snapshot`` for the event loop: holds no thread while it waits."""
        try:
            result: bytes | None = await self._guest.run_async(self._snapshot)
        except PluginHung:
            return None
        return result

    def _snapshot(self) -> bytes | None:
        """On the plugin's thread. A trap is supervised like a poll's, so a
        failing snapshot is retried after the backoff, not every cycle."""
        if self._instance is None or not self.stateful or self.state is not PluginState.RUNNING:
            return None
        try:
            data = self._guest_call(self._guest, self._instance, "state.snapshot")
        except PluginTrap as exc:
            self._close_instance()
            self._on_trap(exc.reason)
            log.error("[%s] %s (instance discarded)", self.name, exc.reason)
            return None
        if not isinstance(data, bytes):
            return None
        if len(data) > MAX_SNAPSHOT_BYTES:
            if self.stats.last_error != SNAPSHOT_TOO_BIG:
                log.warning("[%s] %s (%d bytes)", self.name, SNAPSHOT_TOO_BIG, len(data))
            self.stats.last_error = SNAPSHOT_TOO_BIG
            return None
        self.last_snapshot = data
        return data

    # -- calls --------------------------------------------------------------
    def call(self, *args: Any) -> Any:
        """Call the world's logic function (``poll`` or ``render``); blocking.

        Raises ``GuestError`` for the guest's own error result, ``PluginTrap``
        when the guest trapped (the instance is discarded and the next call
        runs on a fresh one, restored from the last snapshot if the plugin has
        state), ``PluginHung`` when the host stopped waiting for it,
        ``PluginError`` when the plugin is not running.
        """
        return self._guest.run(lambda: self._call(*args))

    async def call_async(self, *args: Any) -> Any:
        """``call`` for the event loop: holds no thread while the guest runs."""
        return await self._guest.run_async(lambda: self._call(*args))

    def _call(self, *args: Any) -> Any:
        state = self.state
        if self._checked is None or state in (PluginState.STOPPED, PluginState.FAILED):
            raise PluginError(self.name, f"not running: {self.stats.last_error}")
        if state is PluginState.QUARANTINED:
            raise PluginError(self.name, "quarantined after repeated traps")
        if state is PluginState.BACKOFF:
            retry = self.supervisor.retry_in_s() or 0.0
            raise PluginError(self.name, f"backing off after a trap ({retry:.1f} s left)")
        if self._instance is None:
            self._restart_or_trap()
        instance = self._instance
        if instance is None:
            raise PluginError(self.name, "no instance")
        self.stats.polls += 1
        started = time.perf_counter()
        try:
            result = self._guest_call(self._guest, instance, self._checked.logic_key, *args)
        except GuestError as exc:
            self.stats.errors += 1
            self.stats.last_error = exc.reason
            self.supervisor.on_success()  # an error result is a working instance
            raise
        except PluginTrap as exc:
            self._close_instance()
            self._on_trap(exc.reason)
            raise
        else:
            self.supervisor.on_success()
            return result
        finally:
            self.stats.last_poll_ms = (time.perf_counter() - started) * 1000

    def _restart_or_trap(self) -> None:
        """A fresh instance; one that cannot be made (configure or restore
        trapped or refused) counts as a trap: backoff and quarantine, not
        ``failed`` for good, since the next attempt may well work."""
        try:
            self._restart()
        except PluginHung:
            raise
        except PluginError as exc:
            reason = f"no new instance: {exc.reason}"
            self._on_trap(reason)
            raise PluginTrap(self.name, reason) from None

    def _restart(self) -> None:
        """A fresh instance after a trap, with the last snapshot restored if any."""
        checked = self._checked
        if checked is None:
            raise PluginError(self.name, "not loaded")
        instance = self._instantiate(self._guest, checked, self._linker)
        restored = False
        if self.last_snapshot is not None and checked.has_state:
            failure = self._restore(self._guest, instance, self.last_snapshot)
            restored = failure is None
            if failure is not None:
                log.warning("[%s] snapshot not restored after trap: %s", self.name, failure.reason)
                instance.close()
                instance = self._instantiate(self._guest, checked, self._linker)
        self._instance = instance
        self.stats.restarts += 1
        self.state = PluginState.RUNNING
        log.warning(
            "[%s] new instance after a trap; %s",
            self.name,
            "state restored from the last snapshot" if restored else "guest state was reset",
        )

    def status(self) -> dict[str, Any]:
        """The plugin's health as ``/api/plugins`` reports it."""
        checked = self._checked
        return {
            "state": self.state.value,
            "hung": self.hung.to_json() if self.hung else None,
            "world": self.world,
            "polls": self.stats.polls,
            "errors": self.stats.errors,
            "traps": self.stats.traps,
            "hangs": self.stats.hangs,
            "restarts": self.stats.restarts,
            "reloads": self.stats.reloads,
            "refused_calls": sum(self.ctx.refusals.values()),
            "refused_by_kind": dict(self.ctx.refusals),
            "host_failures": self.host_failures.total,
            "host_failures_by_kind": dict(self.host_failures.counts),
            "dropped_log_lines": self.output[0].dropped + self.output[1].dropped,
            "last_error": self.stats.last_error,
            "last_poll_ms": self.stats.last_poll_ms,
            "reload_error": self.stats.reload_error,
            "quarantines": self.supervisor.quarantines,
            "retry_in_s": self.supervisor.retry_in_s(),
            "last_reload": self.stats.last_reload,
            "loaded_hash": checked.sha256[:12] if checked else None,
            "stateful": bool(checked and checked.has_state),
            "info": self.info,
            "wasm": str(self.spec.wasm),
        }
