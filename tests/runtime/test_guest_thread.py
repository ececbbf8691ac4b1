"""The plugin's own thread: jobs, and waiters that give up on a blocked guest call.

No wasm here: a "guest call" is a block watched like one, which waits on an
event the test sets, so every outcome is driven by the test, not by timing.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from wasihost.errors import PluginError, PluginHung
from wasihost.runtime.guest_thread import GuestThread, HungCall

Returned = list[tuple[HungCall, BaseException | None]]


@pytest.fixture
def returned() -> Returned:
    return []


@pytest.fixture
def guest(returned: Returned) -> Any:
    thread = GuestThread(
        "test-guest", "p", 10, lambda: 1234, lambda _, hung, error: returned.append((hung, error))
    )
    yield thread
    thread.stop()
    assert thread.join(5)


def blocked(guest: GuestThread, release: threading.Event, result: str = "late") -> Any:
    def work() -> str:
        with guest.watching("sensor-logic.poll"):
            release.wait(30)
        return result

    return work


def test_a_job_returns_its_result_or_raises_its_error(guest: GuestThread) -> None:
    assert guest.run(lambda: 41 + 1) == 42

    def fail() -> None:
        raise ValueError("from the job")

    with pytest.raises(ValueError, match="from the job"):
        guest.run(fail)


def test_a_blocked_call_is_given_up_on_then_supervised_when_it_returns(
    guest: GuestThread, returned: Returned
) -> None:
    release = threading.Event()
    with pytest.raises(PluginHung, match=r"hung in sensor-logic\.poll"):
        guest.run(blocked(guest, release))
    assert guest.hung is not None
    assert guest.hung.to_json() == {"call": "sensor-logic.poll", "since_ms": 1234}
    with pytest.raises(PluginHung):  # no new work while the thread is inside the guest
        guest.run(lambda: "next")
    assert returned == []

    release.set()
    assert guest.join(0) is False  # still alive: it took the job back up
    waited = threading.Event()
    for _ in range(3000):  # the thread comes back by itself once the guest call returns
        if guest.hung is None:
            break
        waited.wait(0.01)
    assert guest.hung is None
    [(hung, error)] = returned
    assert hung.call == "sensor-logic.poll"
    assert isinstance(error, PluginHung)  # the job stopped at its guest call boundary
    assert guest.run(lambda: "next") == "next"


async def test_an_async_waiter_gives_up_without_holding_a_thread(
    guest: GuestThread, returned: Returned
) -> None:
    release = threading.Event()
    with pytest.raises(PluginHung, match=r"hung in sensor-logic\.poll"):
        await guest.run_async(blocked(guest, release))
    release.set()
    while guest.hung is not None:
        await asyncio.sleep(0.01)
    assert len(returned) == 1
    assert await guest.run_async(lambda: "after") == "after"


async def test_an_async_job_that_returns_in_time_is_delivered(guest: GuestThread) -> None:
    release = threading.Event()
    release.set()
    assert await guest.run_async(blocked(guest, release, "in time")) == "in time"
    assert guest.hung is None


def test_a_stopped_thread_refuses_work_instead_of_leaving_it_unanswered(
    guest: GuestThread,
) -> None:
    guest.stop()
    with pytest.raises(PluginError, match="stopped"):
        guest.run(lambda: None)


def test_a_job_queued_behind_a_hung_call_is_never_run(guest: GuestThread) -> None:
    """Its caller was told it failed: running it once the thread is free would act
    behind their back (a reset answered 409, a reload reported rejected)."""
    release = threading.Event()
    ran: list[str] = []
    outcomes: list[BaseException | str] = []

    def queued_caller() -> None:
        try:
            outcomes.append(guest.run(lambda: ran.append("queued") or "done"))
        except PluginError as exc:
            outcomes.append(exc)

    def blocking_caller() -> None:
        try:
            guest.run(blocked(guest, release))
        except PluginError as exc:
            outcomes.append(exc)

    blocked_call = threading.Thread(target=blocking_caller)
    blocked_call.start()
    while guest._current is None:  # the blocking call is under way
        threading.Event().wait(0.005)
    waiter = threading.Thread(target=queued_caller)
    waiter.start()
    blocked_call.join(30)
    waiter.join(30)
    assert guest.hung is not None
    assert len(outcomes) == 2 and all(isinstance(o, PluginHung) for o in outcomes), outcomes
    release.set()
    waited = threading.Event()
    while guest.hung is not None:  # the blocked call returns; the thread is free again...
        waited.wait(0.01)
    assert guest.run(lambda: "after") == "after"
    assert ran == []  # ...and the job given up on never ran
