"""One plugin: its checked component, its live instance, its lifecycle and counters.

``Plugin`` is the only place a plugin's state changes, and every change goes
through ``_move``, which follows the transition table in runtime/lifecycle.py
(read that table for the lifecycle; this module says how each step is done).
Everything that touches its live instance runs as a job on the plugin's own
thread (``GuestThread``): a store is never entered by two threads, no lock is
held across a guest call, and a caller never waits for a guest past the
call's deadline, even when the guest is blocked inside a WASI call. Saved
state goes into a new instance through one function, ``_restore_state``,
whichever path restores it.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wasihost import content
from wasihost.boards.base import Board
from wasihost.capabilities import CapabilityContext, Grants
from wasihost.clock import wall_clock_ms
from wasihost.errors import GuestError, PluginError, PluginHung, PluginLoadError, PluginTrap
from wasihost.leds import LedBuffer
from wasihost.ratelimit import RateLimit
from wasihost.runtime import guest_memory
from wasihost.runtime.calls import forget_host_failures, host_failures
from wasihost.runtime.component import CheckedComponent, check_component
from wasihost.runtime.contract import Contract
from wasihost.runtime.engine import Engine
from wasihost.runtime.guest_log import GuestOutput
from wasihost.runtime.guest_thread import GuestThread, HungCall, SyncJob
from wasihost.runtime.instance import Instance, build_linker
from wasihost.runtime.lifecycle import INITIAL, Event, ImpossibleTransition, settle, transition
from wasihost.runtime.lifecycle import PluginState as PluginState
from wasihost.runtime.shared import LOADER_KEY, check_source, load_args
from wasihost.runtime.source import folder_signature
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


# How loud a transition's log line is; the others are INFO. These lines replace
# the warnings the plugin logged for these steps before it had a table.
LOG_LEVELS = {
    Event.CRASH_LOOP: logging.ERROR,
    Event.HANG_RETURNED: logging.WARNING,
    Event.HANG_LEFT: logging.WARNING,
}


# Guest memory: check at most this often; move to a fresh instance at this share
# of the cap, once the instance has grown by at least this much since it started.
MEMORY_CHECK_S = 1.0
RECYCLE_AT = 0.85
MIN_GROWTH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class PluginSpec:
    """Everything the host decided about a plugin from the config."""

    name: str
    world: str
    wasm: Path  # the component; for a source plugin, the shared Python runtime
    settings: dict[str, Any] = field(default_factory=dict)
    grants: Grants = field(default_factory=Grants)
    timeout_ms: int = 1000
    max_memory_mb: int = 64
    max_log_lines_per_minute: int = 120
    max_actuator_changes_per_minute: int = 6
    supervision: SupervisionPolicy = field(default_factory=SupervisionPolicy)
    source: Path | None = None  # a source plugin's folder, run in the shared runtime
    state: bool = False  # a source plugin exports ``state`` (its plugin.toml says so)
    pin: str | None = None  # the only content hash it may load (``[plugins.<name>] pin``)

    def signature(self) -> Signature | None:
        """What the reload fallback compares each cycle: the component file's,
        or every file a source plugin is read from."""
        if self.source is not None:
            return folder_signature(self.source)
        return file_signature(self.wasm)

    @property
    def watched(self) -> Path:
        """The file or folder whose changes are a new version."""
        return self.source if self.source is not None else self.wasm


Signature = tuple[Any, ...]


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
    restore_failures: int = 0  # saved state a new instance refused or trapped on
    recycles: int = 0  # moved to a fresh instance before its memory reached the cap
    recycle_error: str | None = None  # why the last recycle kept the old instance
    guest_memory_bytes: int | None = None  # at the last check; None where unmeasurable
    restore_error: str | None = None  # why it runs without its saved state; None once restored


def content_of_checked(checked: CheckedComponent) -> str:
    """The content hash (``wasihost.content``) of a checked version: a source
    plugin's own files, else the component's bytes."""
    if checked.sources is not None:
        return checked.sources.content
    return content.of_sha256(checked.sha256)


@dataclass
class Candidate:
    """A new version, compiled, checked, instantiated and configured, not yet live."""

    checked: CheckedComponent
    linker: Any
    instance: Instance
    signature: Signature | None
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
            monotonic=monotonic,
        )
        # Output limits outlive instances: a plugin that traps and restarts in
        # a loop must not get a fresh log budget each time.
        log_limit = RateLimit(spec.max_log_lines_per_minute, clock=monotonic)
        self.output = (
            GuestOutput(spec.name, "stdout", log_limit),
            GuestOutput(spec.name, "stderr", log_limit),
        )
        # The world must exist (the host checks the config first); its logic
        # function says whether the cycle polls this plugin or the web renders it.
        self.role = "renderer" if contract.logic_of(spec.world)[1] == "render" else "sensor"
        # The stored lifecycle state, changed only by ``_move``; ``state`` adds
        # what the clock and the plugin's thread did since (lifecycle.settle).
        # ``_state_lock`` makes each step one read-and-write; when both locks
        # are needed, ``_threads_lock`` is taken first.
        self._state = INITIAL
        self._state_lock = threading.Lock()
        self.supervisor = Supervisor(spec.supervision, monotonic)
        self.stats = PluginStats()
        self.signature: Signature | None = None  # of the version now live
        # The newest state the host holds for the plugin: read from disk at
        # start, or taken from the guest since; kept when a restore fails.
        self.last_snapshot: bytes | None = None
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
        self._monotonic = monotonic
        self._memory_checked = -math.inf

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
            left = f"{why}: left the hung {old.hung.call} to its thread"
            with self._state_lock:
                # Not hung any more if the call returned and was supervised (its
                # instance taken) a moment ago: then the thread holds nothing.
                unsupervised = self._view() is PluginState.HUNG
                if unsupervised:
                    self._step(PluginState.HUNG, Event.HANG_LEFT, left)
            if unsupervised or self._instance is not None:
                self._retired[old] = self._instance  # freed when its call returns
            if not unsupervised:
                log.warning("[%s] %s", self.name, left)
            self._instance = None
            self._guest = self._thread("wasihost-" + self.name)
        old.stop()

    # -- the lifecycle (runtime/lifecycle.py has the table) ---------------------
    @property
    def state(self) -> PluginState:
        """The lifecycle state: the stored one, with the end of a backoff and a
        hang declared by a caller applied (``lifecycle.settle``)."""
        return self._view()

    def _view(self) -> PluginState:
        return settle(
            self._state,
            hung=self._guest.hung is not None,
            backoff_over=not self.supervisor.backing_off(),
        )

    def _move(self, event: Event, why: str = "") -> None:
        """Take one step of the lifecycle table: the only way the state changes."""
        with self._state_lock:
            self._step(self._view(), event, why)

    def _step(self, current: PluginState, event: Event, why: str = "") -> None:
        """Go from ``current`` on ``event`` (``_state_lock`` held): log a change
        once, and refuse a step the table does not list, loudly, changing nothing."""
        try:
            after = transition(current, event, self.name)
        except ImpossibleTransition as exc:
            log.error("[%s] %s", self.name, exc.reason, stack_info=True)
            raise
        self._state = after
        if after is not current:
            level = LOG_LEVELS.get(event, logging.INFO)
            suffix = f": {why}" if why else ""
            log.log(level, "[%s] %s -> %s (%s)%s", self.name, current, after, event, suffix)

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
        if self._checked is None or self.state is PluginState.FAILED:
            self._move(Event.RESET)
            self.supervisor.reset()
            self.load(self.last_snapshot)
        else:
            self._guest.run(self._reset)
        log.info("[%s] reset by the operator", self.name)

    def _reset(self) -> None:
        self._move(Event.RESET)
        self.supervisor.reset()
        self._close_instance()
        self._restart_or_trap()

    @property
    def loaded_sha256(self) -> str | None:
        return self._checked.version if self._checked else None

    @property
    def loaded_content(self) -> str | None:
        """The loaded version's content hash (``wasihost.content``), from the bytes
        it was loaded from; None before a version loaded."""
        return content_of_checked(self._checked) if self._checked is not None else None

    @property
    def stateful(self) -> bool:
        return self._checked is not None and self._checked.has_state

    # -- guest calls -------------------------------------------------------------
    @staticmethod
    def _guest_call(guest: GuestThread, instance: Instance, function: str, *args: Any) -> Any:
        """Every call into a guest goes through here: its thread watches it."""
        with guest.watching(function):
            return instance.call(function, *args)

    def _on_trap(self, reason: str, event: Event = Event.TRAP, why: str = "") -> None:
        """Supervise a fault of the live version: count it, back off, maybe
        quarantine. ``event`` is ``trap``, or ``hang-returned`` for a hung call
        that came back; either becomes ``crash-loop`` when the supervisor says so."""
        with self._state_lock:
            current = self._view()  # as it was before the supervisor counts this one
            if current is PluginState.STOPPED:  # shut down meanwhile: nothing to supervise
                return
            self.stats.traps += 1
            if event is Event.HANG_RETURNED:
                self.stats.hangs += 1
            self.stats.last_error = reason
            self.supervisor.on_trap()
            if self.supervisor.quarantined:
                self._step(current, Event.CRASH_LOOP, f"after repeated traps; the last: {reason}")
            else:
                self._step(current, event, why)

    def _after_hang(self, thread: GuestThread, hung: HungCall, error: BaseException | None) -> None:
        """A call the host gave up on has returned (on ``thread``): supervised
        like a trap, on a fresh instance after the backoff. A retired or
        temporary thread only frees what it held: the plugin has moved on."""
        reason = (
            f"hung in {hung.call} for {time.monotonic() - hung.started:.1f} s, blocked in a "
            f"host call past its {self.spec.timeout_ms} ms deadline"
        )
        with self._threads_lock:  # atomically with a retirement (``_fresh_thread``)
            retired = thread is not self._guest
            if retired:
                held = self._retired.pop(thread, None)
            else:
                held, self._instance = self._instance, None
                returned = f"{reason}; it returned, the instance is discarded"
                self._on_trap(reason, Event.HANG_RETURNED, returned)
        if held is not None:
            held.close()
        if retired:
            log.warning(
                "[%s] %s returned after %.1f s; what it ran in had been discarded",
                self.name,
                hung.call,
                time.monotonic() - hung.started,
            )

    # -- loading and reloading ---------------------------------------------
    def prepare(self) -> Candidate:
        """Compile (or load precompiled), check, instantiate and configure the
        plugin's current file; blocking, never touches the live instance.

        Its guest calls run on a thread of the candidate's own, watched like
        the plugin's: a ``configure`` or ``describe`` that blocks fails the
        preparation after its deadline instead of holding the caller.
        """
        started = time.perf_counter()
        signature = self.spec.signature()
        if self.spec.source is None:
            checked = check_component(
                self.name, self._engine, self._contract, self.world, self.spec.wasm
            )
        else:
            checked = check_source(
                self.name,
                self._engine,
                self._contract,
                self.world,
                self.spec.state,
                self.spec.wasm,
                self.spec.source,
            )
        self._check_pin(checked)
        linker = build_linker(self._engine, self._contract, self.ctx, checked)

        def build(guest: GuestThread) -> tuple[Instance, dict[str, Any] | None]:
            instance = self._instantiate(guest, checked, linker)
            return instance, self._describe(guest, instance)

        instance, info = self._on_new_thread(build)
        return Candidate(
            checked, linker, instance, signature, (time.perf_counter() - started) * 1000, info
        )

    def _check_pin(self, checked: CheckedComponent) -> None:
        """Refuse a version whose content is not the pinned one. Every load goes
        through ``prepare`` (start, reset, hot reload), so this is the one place;
        the hash is of the bytes just read for loading (a component's as
        compiled, a source plugin's as handed to the guest), before any of its
        code runs. A refused reload leaves the live version running."""
        if self.spec.pin is None:
            return
        actual = content_of_checked(checked)
        if actual != self.spec.pin:
            raise PluginLoadError(
                self.name,
                f"{self.spec.watched}: content {actual} is not the pinned {self.spec.pin} "
                f"([plugins.{self.name}] pin)",
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
        """First load (or an operator reset of a ``failed`` plugin); ``saved_state``
        (from disk) is restored if the plugin takes it.

        The bytes become ``last_snapshot`` before anything can fail, so a start
        that fails loses nothing: a reset or a new version tries them again. A
        snapshot the new instance refuses or traps on is handled as on every
        path (``_restore_state``): kept, and the plugin starts fresh, since an
        old snapshot must never keep a plugin from starting.
        """
        if saved_state is not None:
            self.last_snapshot = saved_state
        try:
            candidate = self.prepare()
            checked = candidate.checked
            if saved_state is not None and checked.has_state:
                candidate.instance, _ = self._on_new_thread(
                    lambda guest: self._restore_state(
                        guest, candidate.instance, checked, candidate.linker, saved_state
                    )
                )
            self._fresh_thread("load")
            how = "precompiled" if checked.precompiled else "compiled"
            loaded = (
                f"{self.spec.wasm} ({self.world}, sha256 {checked.sha256[:12]}, "
                f"{how} in {checked.load_ms:.0f} ms)"
            )
            if checked.sources is not None:
                loaded = (
                    f"{checked.sources.folder} ({self.world}, source sha256 "
                    f"{checked.sources.sha256[:12]}, in the shared runtime {checked.path})"
                )
            try:
                self._guest.run(lambda: self._go_live(candidate, Event.LOADED, loaded))
            except PluginError:
                if self._instance is not candidate.instance:
                    candidate.instance.close()
                raise
        except PluginError as exc:
            self._fail(exc.reason)
            raise

    def swap(self, candidate: Candidate) -> dict[str, Any]:
        """Make ``candidate`` live between two calls, carrying state over.

        With ``state`` on the new side, the old instance's snapshot (or, without
        one, ``last_snapshot``: e.g. the state read from disk for a plugin that
        failed to start) is restored into the new one first; if that fails the
        new version is discarded and the old one keeps running
        (``PluginLoadError``, see ``_restore_state``). Returns the report the
        reload log line and ``/api/plugins`` show.
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
            "old_hash": old.version[:12] if old else None,
            "new_hash": candidate.checked.version[:12],
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
                    self._on_new_thread(
                        lambda guest: self._restore_state(
                            guest,
                            candidate.instance,
                            candidate.checked,
                            candidate.linker,
                            data,
                            refuse=True,
                        )
                    )
                except PluginHung as exc:  # its thread closes it when the call returns
                    raise PluginLoadError(self.name, f"new version {exc.reason}") from None
                carried = True
        self._go_live(candidate, Event.NEW_VERSION)
        self.supervisor.reset()  # a new version starts with a clean record
        self.stats.reloads += 1
        self.stats.reload_error = None
        return old, carried

    def _go_live(self, candidate: Candidate, event: Event, why: str = "") -> None:
        """Replace the live version in one step (on the plugin's thread); the
        step is taken first, so one the table refuses changes nothing."""
        self._move(event, why)
        self._close_instance()
        self._checked, self._linker = candidate.checked, candidate.linker
        self._instance = candidate.instance
        self.signature = candidate.signature
        self.info = candidate.info

    def record_reload_failure(self, reason: str) -> None:
        self.stats.reload_error = reason

    def _fail(self, reason: str) -> None:
        self.stats.last_error = reason
        self._move(Event.LOAD_FAILED)

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
        if checked.sources is not None:
            args = load_args(self._contract, self.world, self.spec.state, checked.sources)
            where = f"{checked.sources.folder}: cannot load"
            self._setting_up(guest, instance, LOADER_KEY, args, where)
        if checked.has_settings:
            settings = (json.dumps(self.spec.settings),)
            self._setting_up(
                guest, instance, "settings.configure", settings, "refused its settings"
            )
        instance.start_bytes = instance.memory_bytes()
        return instance

    def _setting_up(
        self, guest: GuestThread, instance: Instance, function: str, args: Any, refusal: str
    ) -> None:
        """A call that makes a new instance ready (load, configure): any failure
        closes it and is a load error."""
        try:
            self._guest_call(guest, instance, function, *args)
        except GuestError as exc:
            instance.close()
            raise PluginLoadError(self.name, f"{refusal}: {exc.reason}") from None
        except PluginTrap as exc:
            instance.close()
            raise PluginLoadError(self.name, exc.reason) from None
        except BaseException:
            instance.close()
            raise

    def _restore_state(
        self,
        guest: GuestThread,
        instance: Instance,
        checked: CheckedComponent,
        linker: Any,
        data: bytes,
        refuse: bool = False,
    ) -> tuple[Instance, bool]:
        """Restore ``data`` into a new instance: the one restore-failure policy,
        for every path that restores (start, restart after a trap, reset, new
        version); ``instance`` is new, made from ``checked`` and ``linker``.

        Saved state is never silently dropped: the bytes stay ``last_snapshot``
        whatever happens, so the next restart, reset or new version tries them
        again until the plugin's own snapshot replaces them. An instance that
        refused them or trapped on them is discarded (it may hold half of
        them). Then, with ``refuse`` (a new version: refusing it loses nothing,
        the state stays with the live version, or in ``last_snapshot`` for a
        plugin that never started) the new version is refused
        (``PluginLoadError``); otherwise (start, restart, reset: there is no
        other version to run) the plugin goes on fresh on a new instance.
        Every failure is counted (``restore_failures``); going on without the
        state is logged and shown (``restore_error``) until a restore works.
        A restore that hangs is a hang, not a failed restore: ``PluginHung``
        goes to the caller, as for any other guest call.
        Returns the instance to use and whether the state is in it.
        """
        self.last_snapshot = data
        try:
            self._guest_call(guest, instance, "state.restore", data)
        except (GuestError, PluginTrap) as exc:
            failure = exc.reason
        except BaseException:  # hung: the host stopped waiting, the instance goes
            instance.close()
            raise
        else:
            self.stats.restore_error = None
            instance.start_bytes = instance.memory_bytes()  # the state is no growth
            return instance, True
        instance.close()
        self.stats.restore_failures += 1
        if refuse:
            raise PluginLoadError(self.name, f"new version failed to restore state: {failure}")
        self._move(Event.RESTORE_FAILED)
        self.stats.restore_error = failure
        log.warning(
            "[%s] state not restored, going on fresh (kept to retry): %s", self.name, failure
        )
        return self._instantiate(guest, checked, linker), False

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
        self._move(Event.CLOSED)
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
            log.error("[%s] %s (instance discarded)", self.name, exc.reason)
            self._close_instance()
            self._on_trap(exc.reason)
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
        if state is not PluginState.RUNNING or self._checked is None:
            raise PluginError(self.name, self._not_running(state))
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
            self._move(Event.GUEST_ERROR)
            self._check_memory(instance)  # which grows the same on the way to an error
            raise
        except PluginTrap as exc:
            self._close_instance()
            self._on_trap(exc.reason)
            raise
        finally:
            self.stats.last_poll_ms = (time.perf_counter() - started) * 1000
        self.supervisor.on_success()
        self._move(Event.CALL_OK)
        self._check_memory(instance)
        return result

    # -- guest memory ---------------------------------------------------------
    def _check_memory(self, instance: Instance) -> None:
        """After a call, on the plugin's thread: move the plugin to a fresh
        instance before its guest memory reaches the cap.

        componentize-py 0.25's runtime leaks every ``list<u8>`` a guest sends
        (docs/GUEST-MEMORY.md): ``wasihost build`` mends that, but a component
        built elsewhere, or a plugin's own leak, still only grows, and an I2C
        plugin would trap after weeks. Between this call and the next, the plugin's
        state goes into a new instance of the same version, so no poll is
        missed. Checked at most every ``MEMORY_CHECK_S`` (a read of the process's
        memory map), and only once the instance has grown: a plugin that
        starts near its cap would otherwise be recycled forever.
        """
        now = self._monotonic()
        if now - self._memory_checked < MEMORY_CHECK_S:
            return
        self._memory_checked = now
        used = instance.memory_bytes()
        self.stats.guest_memory_bytes = used
        if used is None or instance.start_bytes is None:
            return
        cap = self.spec.max_memory_mb * 1024 * 1024
        if used < cap * RECYCLE_AT or used - instance.start_bytes < MIN_GROWTH_BYTES:
            return
        self._recycle(instance, used, cap)

    def _recycle(self, old: Instance, used: int, cap: int) -> None:
        checked = self._checked
        if checked is None:
            return
        started = time.perf_counter()
        new: Instance | None = None
        try:
            data = self._snapshot() if self.stateful else None
            if self._instance is not old:  # the snapshot trapped: supervised already
                return
            if self.stateful and data is None:
                data = self.last_snapshot  # refused or too big now: the last one taken
            new = self._instantiate(self._guest, checked, self._linker)
            if data is not None:
                new, _ = self._restore_state(
                    self._guest, new, checked, self._linker, data, refuse=True
                )
        except PluginError as exc:
            if new is not None:
                new.close()
            # Not again until it has grown as much once more: each try costs an
            # instance, and the old one still works.
            old.start_bytes = used
            reason = exc.reason.replace("new version failed", "fresh instance failed")
            self.stats.recycle_error = reason
            log.warning(
                "[%s] guest memory %.1f of %.0f MB: a fresh instance failed, keeping this one: %s",
                self.name, used / 2**20, cap / 2**20, reason,
            )  # fmt: skip
            return
        self._instance = new
        old.close()
        guest_memory.return_freed_memory()
        self.stats.recycles += 1
        self.stats.recycle_error = None
        self.stats.guest_memory_bytes = new.memory_bytes()
        log.info(
            "[%s] guest memory %.1f of %.0f MB: moved to a fresh instance (%s) in %.0f ms",
            self.name, used / 2**20, cap / 2**20,
            "state carried" if data is not None else "no state interface: globals reset",
            (time.perf_counter() - started) * 1000,
        )  # fmt: skip

    def _not_running(self, state: PluginState) -> str:
        """Why a call is refused in ``state``."""
        if state is PluginState.QUARANTINED:
            return "quarantined after repeated traps"
        if state is PluginState.BACKOFF:
            return f"backing off after a trap ({self.supervisor.retry_in_s() or 0.0:.1f} s left)"
        return f"not running: {self.stats.last_error}"

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
        """A fresh instance after a trap or a reset, with the last snapshot
        restored if any (``_restore_state``)."""
        checked = self._checked
        if checked is None:
            raise PluginError(self.name, "not loaded")
        instance = self._instantiate(self._guest, checked, self._linker)
        restored = False
        if self.last_snapshot is not None and checked.has_state:
            instance, restored = self._restore_state(
                self._guest, instance, checked, self._linker, self.last_snapshot
            )
        self._instance = instance
        self.stats.restarts += 1
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
            "restore_failures": self.stats.restore_failures,
            "restore_error": self.stats.restore_error,
            "recycles": self.stats.recycles,
            "recycle_error": self.stats.recycle_error,
            "guest_memory_bytes": self.stats.guest_memory_bytes,
            "quarantines": self.supervisor.quarantines,
            "retry_in_s": self.supervisor.retry_in_s(),
            "last_reload": self.stats.last_reload,
            "loaded_hash": checked.version[:12] if checked else None,
            "stateful": bool(checked and checked.has_state),
            "info": self.info,
            "wasm": str(self.spec.wasm),
            "source": str(self.spec.source) if self.spec.source is not None else None,
        }
