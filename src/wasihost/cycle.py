"""The poll cycle: poll every sensor plugin, flush the LEDs once, update the state.

Each plugin's calls run on its own thread and board writes on a worker
thread, so the event loop (and the web server on it) never blocks. Plugins
are polled concurrently, so a slow plugin costs the cycle its own guest
calls' deadlines (plus the grace in ``runtime.guest_thread``; a poll after a
trap also makes a new instance, whose configure and restore have theirs), not
the sum of everyone's; one blocked past a deadline is left ``hung`` and the
cycle goes on.

The configured sensor filters (``wasihost.filters``) are applied here, where a
cycle's readings are made, so the app state, history and MQTT all see filtered
values; the cycle owns their state, so a plugin's reload keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from wasihost.boards.base import OFF, Board, Color
from wasihost.clock import wall_clock_ms
from wasihost.errors import PluginError, PluginTrap, WasihostError
from wasihost.filters import FilterBank, FilterSpec
from wasihost.leds import LedBuffer
from wasihost.model import Reading
from wasihost.readings import normalise, normalise_list
from wasihost.runtime.calls import printable
from wasihost.runtime.plugin import Plugin, PluginState
from wasihost.state import AppState

log = logging.getLogger("wasihost.cycle")

FAULT_COLOR: Color = (255, 0, 255)  # magenta, blinking once per cycle


class PollCycle:
    def __init__(
        self,
        plugins: Sequence[Plugin],
        board: Board,
        leds: LedBuffer,
        state: AppState,
        show_sensor_data: bool = True,
        clock_ms: Callable[[], int] = wall_clock_ms,
        filters: Mapping[str, Mapping[str, Sequence[FilterSpec]]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plugins = [p for p in plugins if p.role == "sensor"]
        # Per plugin and measurement (``[plugins.<name>.filters]``); durations run
        # on the monotonic clock, so a wall-clock step moves no timer.
        self.filters = FilterBank(filters or {})
        self.monotonic = monotonic
        self.board = board
        self.leds = leds
        self.state = state
        self.show_sensor_data = show_sensor_data
        self.clock_ms = clock_ms
        self._last_errors: dict[str, str | None] = {}
        self._led_error: str | None = None
        self.led_writes = 0  # strip writes that succeeded / failed (for /metrics)
        self.led_write_errors = 0

    async def _poll(self, plugin: Plugin) -> Reading | PluginError:
        try:
            record = await plugin.call_async()
        except PluginError as exc:
            return exc
        if isinstance(record, list):
            return normalise_list(plugin.name, plugin.world, record, self.clock_ms())
        if not isinstance(record, dict):
            return PluginError(plugin.name, f"poll returned {type(record).__name__}, not a record")
        return normalise(plugin.name, plugin.world, record, self.clock_ms())

    async def run_once(self) -> list[Reading]:
        """One whole cycle; returns its readings. Never raises because of a
        plugin or the board."""
        started = time.perf_counter()
        due = [p for p in self.plugins if p.due()]
        self._show_faults()
        outcomes = await asyncio.gather(*(self._poll(p) for p in due))
        colors = self.leds.snapshot()
        try:
            await asyncio.to_thread(self.board.write_leds, colors)
        except Exception as exc:  # whatever a board raises, the host goes on
            self.led_write_errors += 1
            reason = str(exc) if isinstance(exc, WasihostError) else f"{type(exc).__name__}: {exc}"
            if self._led_error != reason:  # once when it starts or changes, not every cycle
                log.error("LED write failed: %s", printable(reason)[:500])
            self._led_error = reason
        else:
            self.led_writes += 1
            if self._led_error is not None:
                log.info("LED writes work again after: %s", self._led_error)
            self._led_error = None
        now = self.clock_ms()
        readings = self._record(due, outcomes, now)
        self.state.leds = colors
        self.state.cycle += 1
        self.state.timestamp_ms = now
        self.state.completed_at = time.monotonic()
        self.state.last_cycle_ms = (time.perf_counter() - started) * 1000
        if self.show_sensor_data:
            for reading in readings:
                log.info("%s", _describe(reading))
        return readings

    def _record(
        self, due: list[Plugin], outcomes: list[Reading | PluginError], now: int
    ) -> list[Reading]:
        """Put each outcome in the app state through its plugin's filters, and
        return the readings for history and MQTT (what the filters let out).

        A plugin with filters that produced no reading (its poll failed, or it
        was not polled) still runs them for their timers, so a ``timeout`` can
        say its value went quiet and a ``heartbeat`` repeats it.
        """
        mono = self.monotonic()
        readings: list[Reading] = []
        polled: set[str] = set()
        for plugin, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, Reading):
                polled.add(plugin.name)
                filtered = self.filters.apply(plugin.name, plugin.world, outcome, mono, now)
                if filtered.unreported:  # once per measurement; not a string per cycle
                    self._warn_unreported(outcome, filtered.unreported)
                self.state.record_reading(filtered.shown or outcome)
                if filtered.passed is not None:
                    readings.append(filtered.passed)
                self._note_recovery(plugin.name)
            else:
                self.state.record_error(plugin.name, outcome.reason, now)
                self._note_failure(outcome)
        for plugin in self.plugins:
            if plugin.name in polled or not self.filters.has(plugin.name):
                continue
            filtered = self.filters.apply(plugin.name, plugin.world, None, mono, now)
            if filtered.passed is not None:
                readings.append(filtered.passed)
            view = self.state.plugins.get(plugin.name)
            if filtered.shown is not None and view is not None:
                view.reading = filtered.shown  # its error, if the poll failed, stays
        return readings

    def _warn_unreported(self, reading: Reading, unreported: Sequence[str]) -> None:
        """Once per measurement: filters wait for a name the plugin does not report
        (a typo in host.toml, or a measurement this version dropped)."""
        names = ", ".join(m.name for m in reading.measurements) or "nothing"
        for name in unreported:
            log.warning(
                "[%s] filters configured for measurement %r ([plugins.%s.filters]), which "
                "its reading does not have (it reports: %s); they apply once it appears",
                reading.plugin,
                name,
                reading.plugin,
                printable(names),
            )

    def _show_faults(self) -> None:
        """Blink the LEDs of quarantined plugins so the fault shows on the device."""
        color = FAULT_COLOR if self.state.cycle % 2 == 0 else OFF
        for plugin in self.plugins:
            if plugin.state is PluginState.QUARANTINED:
                for index in plugin.spec.grants.leds:
                    self.leds.set(index, color)

    def _note_failure(self, error: PluginError) -> None:
        """Log traps always; log an error when it starts or changes, not every poll."""
        if isinstance(error, PluginTrap):
            log.error("[%s] %s (instance discarded)", error.plugin, error.reason)
        elif self._last_errors.get(error.plugin) != error.reason:
            log.warning("[%s] poll failed: %s", error.plugin, error.reason)
        self._last_errors[error.plugin] = error.reason

    def _note_recovery(self, plugin: str) -> None:
        if self._last_errors.get(plugin):
            log.info("[%s] polling again after: %s", plugin, self._last_errors[plugin])
        self._last_errors[plugin] = None

    async def run_forever(
        self,
        interval_seconds: float,
        stop: asyncio.Event,
        after: Callable[[list[Reading]], Awaitable[None]] | None = None,
    ) -> None:
        """Run cycles at a fixed cadence until ``stop`` is set, calling
        ``after`` with each cycle's readings (history, live stream).

        Start times are scheduled on the monotonic clock, so the cadence does
        not drift by the cycle's own duration; an overrun cycle is followed
        immediately by the next one rather than a burst of catch-up cycles.
        """
        loop = asyncio.get_running_loop()
        next_start = loop.time()
        while not stop.is_set():
            readings = await self.run_once()
            if after is not None:
                await after(readings)
            next_start += interval_seconds
            delay = next_start - loop.time()
            if delay < 0:
                log.warning("cycle overran its interval by %.0f ms", -delay * 1000)
                next_start = loop.time()
                delay = 0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)


def _describe(reading: Reading) -> str:
    """One log line for a reading, escaped: units and status text come from the
    plugin, and a newline or terminal escape in them must not forge host lines."""
    return printable(_line(reading))


def _line(reading: Reading) -> str:
    values = " ".join(f"{m.name}={round(m.value, 2):g}{m.unit}" for m in reading.measurements)
    flags = " ".join(f"{k}={v}" for k, v in reading.status.items())
    if not values and not flags:
        return f"[{reading.plugin}] nothing to report this cycle"
    return f"[{reading.plugin}] {values} {flags}".rstrip()
