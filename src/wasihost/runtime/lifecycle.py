"""A plugin's lifecycle as one table: which state goes to which on which event.

``Plugin`` (runtime/plugin.py) changes its state only through ``transition``,
so this table is the whole lifecycle; a step it does not list is a bug and is
refused (``ImpossibleTransition``), never carried out. ``test_lifecycle.py``
checks that the table below is ``table()``, so the two cannot drift apart.

    state        event            next
    -----------  ---------------  -----------
    loading      loaded           running
    loading      load-failed      failed
    loading      restore-failed   loading
    loading      closed           stopped
    running      call-ok          running
    running      guest-error      running
    running      restore-failed   running
    running      trap             backoff
    running      crash-loop       quarantined
    running      hang             hung
    running      reset            running
    running      new-version      running
    running      closed           stopped
    backoff      backoff-elapsed  running
    backoff      reset            running
    backoff      new-version      running
    backoff      closed           stopped
    hung         hang-returned    backoff
    hung         hang-left        running
    hung         crash-loop       quarantined
    hung         closed           stopped
    quarantined  reset            running
    quarantined  new-version      running
    quarantined  closed           stopped
    failed       reset            loading
    failed       new-version      running
    failed       closed           stopped
    stopped      closed           stopped

What the events are, and who fires them:

* ``loaded`` / ``load-failed``: the first load (or an operator reset of a
  ``failed`` plugin, which loads it again) made its instance live, or could
  not compile, check, instantiate or configure it.
* ``call-ok`` / ``guest-error``: a call returned, its result or the guest's
  own error case; either way the instance works and the state stays.
* ``restore-failed``: saved state did not restore into a new instance (start,
  restart, reset); the plugin starts fresh in the same state. A new version
  that cannot take the state is refused instead and the live one is not
  touched, so no event. See ``Plugin._restore_state``, the one policy.
* ``trap``: any guest call trapped, or a new instance could not be made; the
  instance is gone and the plugin waits before the next one.
* ``crash-loop``: the trap (or returned hang) that makes a crash loop
  (``Supervisor``); not called until a reset or a new version.
* ``hang``: a caller stopped waiting for a guest call blocked past its
  deadline. ``hang-returned``: that call came back; supervised like a trap.
  ``hang-left``: a reset or a new version leaves the stuck call to its thread
  (``Plugin._fresh_thread``) and goes on without the instance it holds.
* ``backoff-elapsed``: the backoff's time is up; the next call makes a new
  instance.
* ``reset``: the operator's; forgets failures and starts a fresh instance
  now, or loads a ``failed`` plugin again.
* ``new-version``: a reload went live (it lifts a quarantine, and revives a
  plugin that never loaded).
* ``closed``: shutdown. Nothing leaves ``stopped``; closing twice is harmless.

Two events are fired by no plugin code: a caller on another thread declares
the hang (``GuestThread``), and the clock ends a backoff. ``settle`` applies
both rows to the stored state whenever the state is read, so the state seen
is always one the table can reach. There is no ``disabled`` state: a plugin
disabled in the config is never built. ``configure`` is part of loading and of
every new instance, not an event of its own.
"""

from __future__ import annotations

from enum import StrEnum

from wasihost.errors import PluginError


class PluginState(StrEnum):
    LOADING = "loading"
    RUNNING = "running"
    BACKOFF = "backoff"  # trapped; waiting before its next instance runs
    HUNG = "hung"  # blocked in a host call past its deadline; not called until it returns
    QUARANTINED = "quarantined"  # crash loop; not polled until a new file or a reset
    FAILED = "failed"  # cannot be loaded or instantiated
    STOPPED = "stopped"


class Event(StrEnum):
    LOADED = "loaded"
    LOAD_FAILED = "load-failed"
    RESTORE_FAILED = "restore-failed"
    CALL_OK = "call-ok"
    GUEST_ERROR = "guest-error"
    TRAP = "trap"
    CRASH_LOOP = "crash-loop"
    HANG = "hang"
    HANG_RETURNED = "hang-returned"
    HANG_LEFT = "hang-left"
    BACKOFF_ELAPSED = "backoff-elapsed"
    RESET = "reset"
    NEW_VERSION = "new-version"
    CLOSED = "closed"


_S = PluginState
_E = Event

# (state, event) -> next state; in the order the module docstring shows it.
TRANSITIONS: dict[tuple[PluginState, Event], PluginState] = {
    (_S.LOADING, _E.LOADED): _S.RUNNING,
    (_S.LOADING, _E.LOAD_FAILED): _S.FAILED,
    (_S.LOADING, _E.RESTORE_FAILED): _S.LOADING,
    (_S.LOADING, _E.CLOSED): _S.STOPPED,
    (_S.RUNNING, _E.CALL_OK): _S.RUNNING,
    (_S.RUNNING, _E.GUEST_ERROR): _S.RUNNING,
    (_S.RUNNING, _E.RESTORE_FAILED): _S.RUNNING,
    (_S.RUNNING, _E.TRAP): _S.BACKOFF,
    (_S.RUNNING, _E.CRASH_LOOP): _S.QUARANTINED,
    (_S.RUNNING, _E.HANG): _S.HUNG,
    (_S.RUNNING, _E.RESET): _S.RUNNING,
    (_S.RUNNING, _E.NEW_VERSION): _S.RUNNING,
    (_S.RUNNING, _E.CLOSED): _S.STOPPED,
    (_S.BACKOFF, _E.BACKOFF_ELAPSED): _S.RUNNING,
    (_S.BACKOFF, _E.RESET): _S.RUNNING,
    (_S.BACKOFF, _E.NEW_VERSION): _S.RUNNING,
    (_S.BACKOFF, _E.CLOSED): _S.STOPPED,
    (_S.HUNG, _E.HANG_RETURNED): _S.BACKOFF,
    (_S.HUNG, _E.HANG_LEFT): _S.RUNNING,
    (_S.HUNG, _E.CRASH_LOOP): _S.QUARANTINED,
    (_S.HUNG, _E.CLOSED): _S.STOPPED,
    (_S.QUARANTINED, _E.RESET): _S.RUNNING,
    (_S.QUARANTINED, _E.NEW_VERSION): _S.RUNNING,
    (_S.QUARANTINED, _E.CLOSED): _S.STOPPED,
    (_S.FAILED, _E.RESET): _S.LOADING,
    (_S.FAILED, _E.NEW_VERSION): _S.RUNNING,
    (_S.FAILED, _E.CLOSED): _S.STOPPED,
    (_S.STOPPED, _E.CLOSED): _S.STOPPED,
}

INITIAL = PluginState.LOADING


class ImpossibleTransition(PluginError):
    """A step the table does not list: a bug in the host, not the plugin's fault.

    A ``PluginError``, so the callers that already handle one plugin's failure
    (the cycle, the reloader, the operator endpoints) show it for that plugin
    instead of the host going down with it.
    """

    def __init__(self, plugin: str, state: PluginState, event: Event) -> None:
        super().__init__(plugin, f"lifecycle bug: no transition from {state} on {event}")
        self.state = state
        self.event = event


def transition(state: PluginState, event: Event, plugin: str = "plugin") -> PluginState:
    """The state ``event`` leads to from ``state``; raises ``ImpossibleTransition``
    (a real check, not an assert: it must also hold under ``python -O``)."""
    after = TRANSITIONS.get((state, event))
    if after is None:
        raise ImpossibleTransition(plugin, state, event)
    return after


def settle(state: PluginState, *, hung: bool, backoff_over: bool) -> PluginState:
    """``state`` with the two events no plugin code fires applied: the clock
    ending a backoff, then a hang that another thread declared."""
    if state is PluginState.BACKOFF and backoff_over:
        state = transition(state, Event.BACKOFF_ELAPSED)
    if state is PluginState.RUNNING and hung:
        state = transition(state, Event.HANG)
    return state


def table() -> str:
    """``TRANSITIONS`` as the text table the module docstring shows."""
    widths = (11, 15, 11)
    lines = ["  ".join(("state".ljust(11), "event".ljust(15), "next")).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for (state, event), after in TRANSITIONS.items():
        cells = (state.value.ljust(widths[0]), event.value.ljust(widths[1]), after.value)
        lines.append("  ".join(cells))
    return "\n".join(lines)
