"""How fast the sht31 and bme680 seed plugins grow their guest memory, and
when they would reach the host's recycle point and the memory cap.

    .venv/bin/python -m bench.guest_memory.plugins [--polls N] [--mode runtime|component]

Needs the shared runtime built (``make build``; ``--mode component`` needs
``wasihost build --components``). Runs each plugin as ``wasihost.testing``
does (the same ``Plugin`` and capability code as the host) on the simulated
board, with the grants and settings of config/host.toml and a fake clock that
advances one poll interval per poll. Memory is read from /proc/self/maps
(maps.py). A new instance has some free heap, so leaks first fill that: the
script polls until the memory first grows, then N polls more, and takes the
slope between the first and the last growth. For stateful bme680 it also
measures what one ``state.snapshot()`` leaks (the host takes one every
``[state] save_interval_seconds``). The projections count the free heap
filled before the first growth as headroom. Not part of ``make test``: about
a minute per mode.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.guest_memory.maps import PAGE, new_memories, size_of
from wasihost.boards.sim import SimBoard
from wasihost.capabilities import Grants
from wasihost.errors import GuestError
from wasihost.runtime.plugin import RECYCLE_AT
from wasihost.testing import ComponentPlugin, RuntimePlugin

ROOT = Path(__file__).resolve().parent.parent.parent
POLL_INTERVAL_S = 2.0  # config/host.toml [polling] interval_seconds
SAVE_INTERVAL_S = 60.0  # [state] save_interval_seconds, the default
CAP = 64 * 1024 * 1024  # [plugins.<name>] max_memory_mb, the default
SAMPLE_EVERY = 50  # polls between two reads of the memory map
MAX_FILL_POLLS = 500_000  # give up when the memory has not grown after this many


@dataclass(frozen=True)
class Subject:
    name: str
    seed: int
    grants: Grants
    settings: dict[str, Any]


SUBJECTS = {
    "sht31": Subject(
        "sht31", 1, Grants(leds=frozenset({3}), i2c_addresses=frozenset({0x44})), {"led": 3}
    ),
    "bme680": Subject(
        "bme680",
        1234,
        Grants(leds=frozenset({2}), i2c_addresses=frozenset({0x77})),
        {"led": 2, "i2c_address": 0x77},
    ),
}


def chunk(length: int) -> int:
    """The heap block the guest's malloc takes for ``length`` bytes (measured
    with repro.py: a 4-byte header, 16-byte alignment, 16 bytes at least)."""
    return max(16, -(-(length + 4) // 16) * 16)


@dataclass
class Writes:
    """Every I2C write the plugin sends, by length."""

    lengths: list[int] = field(default_factory=list)

    def wrap(self, board: SimBoard) -> None:
        real = board.i2c_transfer

        def transfer(address: int, data: bytes, read_len: int) -> bytes:
            self.lengths.append(len(data))
            return real(address, data, read_len)

        board.i2c_transfer = transfer  # type: ignore[method-assign]


def measure(subject: Subject, mode: str, polls: int) -> dict[str, Any]:
    board = SimBoard(seed=subject.seed)
    writes = Writes()
    writes.wrap(board)
    now = [1_700_000_000_000]
    kind = RuntimePlugin if mode == "runtime" else ComponentPlugin
    with new_memories() as memories:
        plugin = kind(
            ROOT / "plugins" / subject.name,
            board=board,
            grants=subject.grants,
            settings=subject.settings,
            clock_ms=lambda: now[0],
        )
    try:
        if len(memories) != 1:
            raise SystemExit(f"{subject.name}: expected one new linear memory, {len(memories)}")
        end = memories[0]
        loaded = size_of(end)
        errors = 0

        def poll() -> None:
            nonlocal errors
            try:
                plugin.poll()
            except GuestError:
                errors += 1
            now[0] += int(POLL_INTERVAL_S * 1000)

        # Fill the free heap: poll until the memory first grows.
        done = 0
        while size_of(end) == loaded:
            if done >= MAX_FILL_POLLS:  # no leak to measure: the snapshots may still leak
                flat = {"loaded": loaded, "fill_polls": None, "per_poll": 0.0, "errors": errors}
                # The free heap is unfilled: enough calls to pass it if each leaked 400 B.
                return {**flat, "snapshot": snapshot_leak(plugin, end, calls=10_000)}
            for _ in range(SAMPLE_EVERY):
                poll()
            done += SAMPLE_EVERY
        fill_polls = done
        growths = [(done, size_of(end))]
        writes.lengths.clear()
        for _ in range(polls // SAMPLE_EVERY):
            for _ in range(SAMPLE_EVERY):
                poll()
            done += SAMPLE_EVERY
            size = size_of(end)
            if size != growths[-1][1]:
                growths.append((done, size))
        measured_polls = done - fill_polls
        (first_poll, first_size), (last_poll, last_size) = growths[0], growths[-1]
        window = last_poll - first_poll
        per_poll = (last_size - first_size) / window if window else 0.0
        result: dict[str, Any] = {
            "loaded": loaded,
            "fill_polls": fill_polls,
            "per_poll": per_poll,
            "growths": len(growths) - 1,
            "window": window,
            "writes_per_poll": len(writes.lengths) / measured_polls,
            "write_lengths": sorted(set(writes.lengths)),
            "predicted": sum(chunk(n) for n in writes.lengths) / measured_polls,
            "errors": errors,
            "snapshot": snapshot_leak(plugin, end),
        }
        return result
    finally:
        plugin.close()


def snapshot_leak(plugin: Any, end: int, calls: int | None = None) -> tuple[int, float] | None:
    """(size, bytes leaked per call) of ``state.snapshot()``, or None without state."""
    snapshot = plugin.snapshot()
    if snapshot is None:
        return None
    count = calls or max(100, min(10_000, (4 << 20) // chunk(len(snapshot))))  # under the cap
    before = size_of(end)
    for _ in range(count):
        plugin.snapshot()
    return len(snapshot), (size_of(end) - before) / count


def days(bytes_per_poll: float, headroom: float) -> float:
    return headroom / bytes_per_poll * POLL_INTERVAL_S / 86_400


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--polls", type=int, default=50_000, help="polls after the first growth")
    parser.add_argument("--mode", choices=("runtime", "component"), default="runtime")
    parser.add_argument("plugins", nargs="*", help=f"some of {', '.join(SUBJECTS)} (default all)")
    args = parser.parse_args(argv)
    unknown = set(args.plugins) - set(SUBJECTS)
    if unknown:
        parser.error(f"unknown plugin(s) {', '.join(sorted(unknown))}")
    print(
        f"{args.mode} mode, a poll every {POLL_INTERVAL_S:g} s, snapshots every "
        f"{SAVE_INTERVAL_S:g} s, memory cap {CAP // 2**20} MiB; memory read in 64 KiB pages "
        f"(±{PAGE / args.polls:.1f} B/poll)\n"
    )
    for name in args.plugins or SUBJECTS:
        started = time.perf_counter()
        r = measure(SUBJECTS[name], args.mode, args.polls)
        took = time.perf_counter() - started
        print(f"{name}: linear memory {r['loaded'] / 2**20:.1f} MiB after load ({took:.0f} s)")
        if r["fill_polls"] is None:
            print(f"  no growth in {MAX_FILL_POLLS} polls ({r['errors']} returned an error)")
            if r["snapshot"] is not None:
                size, per_snapshot = r["snapshot"]
                print(f"  state.snapshot(): {size} bytes, {per_snapshot:.1f} B leaked per call")
            print(flush=True)
            continue
        free = r["fill_polls"] * r["per_poll"]
        print(
            f"  first growth after {r['fill_polls']} polls (about {free / 2**20:.1f} MiB of free "
            f"heap filled), then {r['growths']} growths in {r['window']} polls"
        )
        print(
            f"  {r['per_poll']:.1f} B/poll; i2c writes per poll: {r['writes_per_poll']:g} "
            f"(lengths {r['write_lengths']}), predicted {r['predicted']:.1f} B/poll "
            f"from the guest's heap blocks; {r['errors']} polls returned an error"
        )
        per_poll = r["per_poll"]
        if r["snapshot"] is not None:
            size, per_snapshot = r["snapshot"]
            share = per_snapshot * POLL_INTERVAL_S / SAVE_INTERVAL_S
            print(
                f"  state.snapshot(): {size} bytes, {per_snapshot:.1f} B leaked per call, "
                f"{share:.1f} B/poll at one per {SAVE_INTERVAL_S:g} s"
            )
            per_poll += share
        for what, limit in (("the host's recycle", RECYCLE_AT * CAP), ("the cap", CAP)):
            headroom = limit - r["loaded"] + free
            print(
                f"  to {what} ({limit / 2**20:.1f} MiB): {headroom / per_poll / 1e6:.2f} M polls, "
                f"{days(per_poll, headroom):.1f} days at {per_poll:.1f} B/poll"
            )
        print(flush=True)


if __name__ == "__main__":
    main()
