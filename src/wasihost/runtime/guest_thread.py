"""A plugin's own thread, and waits on it that give up on a blocked guest.

Epoch interruption stops wasm code on time, but not a guest blocked inside a
WASI call: ``time.sleep`` is a ``wasi:io/poll`` wait on a clock, and wasmtime
lets it run to its end whatever the deadline (the trap comes only when the
guest gets back to wasm code). wasmtime-py offers no way to bound or cancel
such a wait, so the host stops *waiting* instead: each plugin's calls run on
a thread of its own, every guest call is watched, and a caller that has
waited the call's deadline plus ``GRACE_S`` gets ``PluginHung`` and goes on.
The thread stays with its guest until the wait ends; meanwhile the plugin is
``hung`` and takes no new work, then its owner supervises the late return
like a trap (``on_return``). An operator reset or a new version need not wait:
the plugin may leave the stuck thread its instance and go on on a fresh one
(``Plugin._fresh_thread``).

Why a thread per plugin rather than a pool: calls that never return would
use up a shared pool (asyncio's default one has six threads on a 2-core
machine) and stall every plugin behind them. Running a store's calls only on
the thread that owns it is also what wasmtime requires (never two threads in
one store), without a lock that a hung call would hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from wasihost.errors import PluginError, PluginHung

log = logging.getLogger("wasihost.plugin")

T = TypeVar("T")

# How long past its deadline a guest call may take before the caller stops
# waiting. A spinning guest traps within a tick (10 ms) of its deadline when
# the machine is quiet; the margin keeps a busy machine's late traps from
# being mistaken for a blocked call.
GRACE_S = 0.5


@dataclass(frozen=True)
class HungCall:
    """A guest call the host stopped waiting for."""

    call: str  # the export, e.g. "sensor-logic.poll"
    since_ms: int  # wall clock when the call started, for people
    started: float  # monotonic, for durations

    def reason(self, now: float) -> str:
        return (
            f"hung in {self.call} for {now - self.started:.1f} s, blocked in a host call "
            "past its deadline; not called again until that call returns"
        )

    def to_json(self) -> dict[str, Any]:
        return {"call": self.call, "since_ms": self.since_ms}


@dataclass(frozen=True)
class _Current:
    call: str
    started: float
    since_ms: int


Outcome = tuple[Any, BaseException | None]


class Job:
    """One piece of work for the thread, and how its outcome reaches the caller.

    ``delivered`` and ``abandoned`` change only under the thread's lock, the
    lock a waiter declares a hang under: a job is delivered, or given up on,
    never both. A job given up on before it started is never run (its caller
    was told it failed; running it later would act behind their back).
    """

    __slots__ = ("abandoned", "deliver", "delivered", "work")

    def __init__(self, work: Callable[[], Any], deliver: Callable[[Outcome], None]) -> None:
        self.work = work
        self.deliver = deliver
        self.delivered = False
        self.abandoned = False


class SyncJob(Job):
    """A job a thread waits for (a blocking caller)."""

    __slots__ = ("replies",)

    def __init__(self, work: Callable[[], Any]) -> None:
        self.replies: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        super().__init__(work, self.replies.put)


OnReturn = Callable[["GuestThread", HungCall, BaseException | None], None]


class GuestThread:
    """Runs one plugin's work, one job at a time, on a daemon thread of its own.

    ``on_return(thread, hung, error)`` runs on this thread when a guest call
    the callers gave up on finally returns, before the thread takes new work.
    Any waiter may declare the hang, whichever job it waits for: the thread is
    stuck either way, and every job still queued behind the call is given up
    on with it. Handing a job over costs a thread wake-up each way (see
    docs/PERFORMANCE.md, *Containment*); the poll cycle paid the same for
    ``asyncio.to_thread`` before.
    """

    def __init__(
        self,
        name: str,
        plugin: str,
        timeout_ms: int,
        wall_ms: Callable[[], int],
        on_return: OnReturn,
    ) -> None:
        self.plugin = plugin
        self._limit_s = timeout_ms / 1000 + GRACE_S
        self._wall_ms = wall_ms
        self._on_return = on_return
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._queued: set[Job] = set()  # submitted, not yet taken by the thread
        self._lock = threading.Lock()
        self._current: _Current | None = None  # the guest call in progress
        self.hung: HungCall | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    # -- on this thread ------------------------------------------------------------
    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                self._queued.discard(job)
                skip = job.abandoned
            if skip:  # given up on while it waited behind a hung call
                self._deliver(job, (None, PluginHung(self.plugin, "given up on: the plugin hung")))
                continue
            error: BaseException | None = None
            result: Any = None
            try:
                result = job.work()
            except BaseException as exc:  # handed to the caller (or to on_return)
                error = exc
            with self._lock:
                hung = self.hung
                if hung is None:
                    job.delivered = True
                    job.deliver((result, error))
            if hung is not None:  # the callers are gone: supervise the late return
                try:
                    self._on_return(self, hung, error)
                except BaseException:  # supervision must never kill the thread
                    log.exception("[%s] recovering from a hung call failed", self.plugin)
                finally:
                    with self._lock:
                        self.hung = None

    def _deliver(self, job: Job, outcome: Outcome) -> None:
        with self._lock:
            job.delivered = True
            job.deliver(outcome)

    @contextlib.contextmanager
    def watching(self, call: str) -> Iterator[None]:
        """Mark a guest call in progress, so waiters know whose deadline runs.

        A job the callers gave up on stops at the end of the call it hung in
        (``PluginHung`` is raised there, whatever the call's own outcome): what
        it would do next (restore into a new version, go live) must not
        happen behind their back.
        """
        with self._lock:
            self._current = _Current(call, time.monotonic(), self._wall_ms())
        try:
            yield
        except BaseException:
            if self._end_call() is not None:  # a late trap is the hang's outcome
                raise PluginHung(self.plugin, f"gave up on {call}") from None
            raise
        if self._end_call() is not None:
            raise PluginHung(self.plugin, f"gave up on {call}")

    def _end_call(self) -> HungCall | None:
        """Clear the call in progress; whether a waiter declared it hung first."""
        with self._lock:
            self._current = None
            return self.hung

    # -- from other threads --------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue ``job``; refused at once while a call is hung (it would wait behind it)."""
        with self._lock:
            if self.hung is not None:
                raise PluginHung(self.plugin, self.hung.reason(time.monotonic()))
            if self._stopped:  # nobody would ever take it
                raise PluginError(self.plugin, "stopped")
            self._queued.add(job)
            self._jobs.put(job)

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` on this thread and wait for it, but never past a guest
        call's deadline plus the grace."""
        if threading.current_thread() is self._thread:  # it would wait for itself
            raise RuntimeError("GuestThread.run called from its own thread")
        job = SyncJob(work)
        self.submit(job)
        result: T = self.wait(job)
        return result

    def wait(self, job: SyncJob) -> Any:
        while True:
            try:
                result, error = job.replies.get(timeout=self._wait_s())
            except queue.Empty:
                self._give_up_if_late(job)
                continue
            if error is not None:
                raise error
            return result

    async def run_async(self, work: Callable[[], T]) -> T:
        """``run`` for the event loop: waits without holding any thread."""
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[T] = loop.create_future()

        def deliver(outcome: Outcome) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_settle, waiting, outcome)

        job = Job(work, deliver)
        self.submit(job)
        timer: asyncio.TimerHandle | None = None

        def look() -> None:
            nonlocal timer
            if waiting.done():
                return
            try:
                self._give_up_if_late(job)
            except PluginHung as exc:
                waiting.set_exception(exc)
                return
            timer = loop.call_later(self._wait_s(), look)

        timer = loop.call_later(self._wait_s(), look)
        try:
            return await waiting
        finally:
            if timer is not None:
                timer.cancel()

    def _wait_s(self) -> float:
        """How long a waiter may wait before looking again."""
        current = self._current
        if current is None:  # host-side work between guest calls: look again soon
            return 0.05
        return max(0.0, current.started + self._limit_s - time.monotonic()) + 0.001

    def _give_up_if_late(self, job: Job) -> None:
        """Declare the guest call in progress hung if it is past its limit, and
        give up on ``job`` and every job queued behind it (raises PluginHung)."""
        now = time.monotonic()
        with self._lock:
            if job.delivered:  # it ended just now: the caller takes its outcome
                return
            if not self._thread.is_alive():
                job.abandoned = True
                raise PluginError(self.plugin, "its thread has ended")
            current = self._current
            if self.hung is None:
                if current is None or now - current.started < self._limit_s:
                    return
                self.hung = HungCall(current.call, current.since_ms, current.started)
                for queued in self._queued:
                    queued.abandoned = True
                log.error("[%s] %s", self.plugin, self.hung.reason(now))
            job.abandoned = True
            hung = self.hung
        raise PluginHung(self.plugin, hung.reason(now))

    def stop(self) -> None:
        """Let the thread end after its queued work (at once if idle); later jobs are refused."""
        with self._lock:
            self._stopped = True
            self._jobs.put(None)

    def join(self, timeout_s: float) -> bool:
        """Whether the thread ended within ``timeout_s``."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()


def _settle(waiting: asyncio.Future[Any], outcome: Outcome) -> None:
    if waiting.done():  # given up on as hung a moment before the outcome arrived
        return
    result, error = outcome
    if error is None:
        waiting.set_result(result)
    else:
        waiting.set_exception(error)
