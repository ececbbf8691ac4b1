"""Chains and the bank: running every measurement's filters once per poll cycle.

The bank belongs to the poll cycle, not to a plugin instance, so a hot reload
or a recycled instance keeps its windows, averages and timers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from wasihost.filters.running import UNAVAILABLE
from wasihost.filters.specs import FilterSpec
from wasihost.model import Measurement, Reading, StatusValue


class FilterChain:
    """One measurement's filters, in order, with their state."""

    def __init__(self, specs: Sequence[FilterSpec]) -> None:
        self.filters = [spec.build() for spec in specs]

    def step(self, value: float | None, now: float) -> float | None:
        """One cycle: first ``value`` (None: the measurement had no value this
        cycle), then every filter's timer, in order (what one emits goes on
        through the filters after it). Returns the chain's last output of the
        cycle, or None when nothing came out; NaN means unavailable.

        The value goes first so that a timer due in the same cycle sees it: a
        heartbeat sends the newest value, and a timeout reset by it stays quiet
        rather than send unavailable just before the value.
        """
        out: float | None = None
        if value is not None:
            out = self._feed(0, value, now)
        for i, filter_ in enumerate(self.filters):
            fired = filter_.tick(now)
            if fired is not None:
                passed = self._feed(i + 1, fired, now)
                out = passed if passed is not None else out
        return out

    def _feed(self, start: int, value: float, now: float) -> float | None:
        current: float | None = value
        for filter_ in self.filters[start:]:
            assert current is not None
            current = filter_.new_value(current, now)
            if current is None:
                return None
        return current


@dataclass
class _Tracked:
    """A chain and what the host last knew of its measurement."""

    chain: FilterChain
    template: Measurement | None = None  # the last input: its unit and device class
    shown: Measurement | None = None  # the last value the chain let out
    unavailable: bool = False  # its last output was NaN
    checked: bool = False  # told whether the plugin reports it


@dataclass(frozen=True)
class Filtered:
    """A plugin's cycle after its filters.

    ``passed``: the reading for history and MQTT (only what the filters let out
    this cycle, with what they held back in its ``held``); ``shown``: the
    reading for the app state and the dashboard, in which a value the filters
    held back keeps its last one and an unavailable one is absent; both None
    when nothing changed. ``unreported``: measurement names with filters that
    the plugin's first reading lacked (to warn about once).
    """

    passed: Reading | None
    shown: Reading | None
    unreported: tuple[str, ...] = ()


class FilterBank:
    """Every configured chain, keyed by plugin and measurement name.

    It belongs to the poll cycle, not to a plugin instance: a reload or a
    recycled instance keeps the windows, averages and timers.
    """

    def __init__(self, specs: Mapping[str, Mapping[str, Sequence[FilterSpec]]]) -> None:
        self.plugins: dict[str, dict[str, _Tracked]] = {
            plugin: {name: _Tracked(FilterChain(chain)) for name, chain in chains.items() if chain}
            for plugin, chains in specs.items()
        }
        self.plugins = {plugin: chains for plugin, chains in self.plugins.items() if chains}
        self._shown: dict[str, Reading] = {}

    def has(self, plugin: str) -> bool:
        return plugin in self.plugins

    def apply(
        self, plugin: str, world: str, reading: Reading | None, now: float, now_ms: int
    ) -> Filtered:
        """Run ``plugin``'s chains for one cycle: ``reading`` is its poll's (None
        when it was not polled or the poll failed, for the timers alone); ``now``
        is monotonic seconds, ``now_ms`` the wall clock stamp of timer outputs."""
        chains = self.plugins.get(plugin)
        if chains is None:
            return Filtered(reading, reading)
        stamp = reading.timestamp_ms if reading is not None else now_ms
        outputs: dict[str, float | None] = {}
        unreported: list[str] = []
        present = {m.name: m for m in reading.measurements} if reading is not None else {}
        for name, tracked in chains.items():
            measurement = present.get(name)
            if measurement is not None:
                tracked.template = measurement
            elif reading is not None and not tracked.checked and tracked.template is None:
                unreported.append(name)
            if reading is not None:
                tracked.checked = True
            outputs[name] = tracked.chain.step(
                measurement.value if measurement is not None else None, now
            )
        passed: list[Measurement] = []
        for m in reading.measurements if reading is not None else ():
            if m.name not in chains:
                passed.append(m)
        changed = False
        held: list[Measurement] = []
        for name, out in outputs.items():
            tracked = chains[name]
            if out is None:
                if reading is not None and tracked.shown is not None:
                    held.append(tracked.shown)
                continue
            changed = True
            if not math.isfinite(out):
                tracked.unavailable, tracked.shown = True, None
                continue
            assert tracked.template is not None  # nothing comes out before a value went in
            emitted = replace(tracked.template, value=out, timestamp_ms=stamp)
            tracked.unavailable, tracked.shown = False, emitted
            passed.append(emitted)
        if reading is None and not changed:
            return Filtered(None, None)
        status = self._status(chains, reading)
        order = self._order(plugin, reading, chains)
        passed.sort(key=lambda m: order.get(m.name, len(order)))
        base = reading if reading is not None else self._shown.get(plugin)
        out_reading = Reading(plugin, world, stamp, tuple(passed), status, tuple(held))
        shown_measurements = [
            m for m in (base.measurements if base is not None else ()) if m.name not in chains
        ] + [t.shown for t in chains.values() if t.shown is not None]
        shown_measurements.sort(key=lambda m: order.get(m.name, len(order)))
        shown = Reading(
            plugin,
            world,
            base.timestamp_ms if base is not None else stamp,
            tuple(shown_measurements),
            {**self._status(chains, base), **status},
        )
        self._shown[plugin] = shown
        return Filtered(out_reading, shown, tuple(unreported))

    def _status(
        self, chains: Mapping[str, _Tracked], reading: Reading | None
    ) -> dict[str, StatusValue]:
        """The reading's status with ``<name>_status = "unavailable"`` for each
        measurement whose chain last let out NaN, and without that mark (from a
        reading shown before) for the others."""
        status = dict(reading.status) if reading is not None else {}
        for name, tracked in chains.items():
            key = f"{name}_status"
            if tracked.unavailable:
                status[key] = UNAVAILABLE
            elif status.get(key) == UNAVAILABLE:
                del status[key]
        return status

    def _order(
        self, plugin: str, reading: Reading | None, chains: Mapping[str, _Tracked]
    ) -> dict[str, int]:
        """Measurements keep the order the plugin reports them in (the dashboard's)."""
        source = reading if reading is not None else self._shown.get(plugin)
        names = [m.name for m in source.measurements] if source is not None else []
        names += [n for n in chains if n not in names]
        return {name: i for i, name in enumerate(names)}
