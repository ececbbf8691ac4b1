"""How much linear memory a guest has: the process's memory map, read on Linux.

Guest memory of componentize-py components only grows on some capability
shapes (docs/GUEST-MEMORY.md), until the plugin reaches its cap and traps.
The host moves such a plugin to a fresh instance before that, so it must know
each instance's size, and wasmtime-py exposes no component memory size.

What the map shows: wasmtime reserves each linear memory as one large region
(about 4 GiB plus guard pages on 64-bit Linux) and makes its accessible part
read-write; growing the memory moves the boundary between the read-write part
and the reserved rest, never the region's end. So a memory is known by the end
of its reserved region when the instance is made (the reserved regions that
appeared meanwhile; instantiations and closes are serialised for that, and one that
cannot wait goes unmeasured and is never recycled), which gives
where its read-write part begins; its size later is the length of the
read-write run from there.

Elsewhere (no ``/proc``, or a layout this does not recognise) sizes are
unknown (None) and nothing is recycled.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MAPS = Path("/proc/self/maps")
# Far above any mapping but a wasmtime memory reservation (thread stacks are
# megabytes, the code of a component tens of megabytes).
RESERVATION_MIN = 1 << 30

_instantiating = threading.Lock()


@dataclass(frozen=True)
class Region:
    start: int
    end: int
    perms: str


def regions(text: str) -> list[Region]:
    found = []
    for line in text.splitlines():
        span, perms = line.split(maxsplit=2)[:2]
        start, end = (int(x, 16) for x in span.split("-"))
        found.append(Region(start, end, perms))
    return found


def read_maps() -> str | None:
    try:
        return MAPS.read_text()
    except OSError:
        return None


def _reserved_ends(mapped: list[Region]) -> set[int]:
    return {
        r.end for r in mapped if r.perms.startswith("---") and r.end - r.start >= RESERVATION_MIN
    }


@dataclass(frozen=True)
class Memory:
    """One linear memory: where its accessible part began and where its
    reservation ends."""

    base: int
    end: int


def _memory_of(mapped: list[Region], end: int) -> Memory | None:
    """The memory whose reservation ends at ``end``: its read-write part is the
    run of read-write regions right below the reserved rest."""
    index = next((i for i, r in enumerate(mapped) if r.end == end), None)
    if index is None:
        return None
    base = mapped[index].start
    for region in reversed(mapped[:index]):
        if region.end != base or not region.perms.startswith("rw"):
            break
        base = region.start
    return Memory(base, end)


# How long an instantiation waits for another to finish before it goes on
# unmeasured: a component's start function runs inside instantiation and may
# block (a hostile one for ever), and one plugin must not stall the others.
WAIT_S = 0.2


@contextmanager
def new_memories() -> Iterator[list[Memory]]:
    """Around an instantiation: the list it yields holds, afterwards, the
    memories reserved inside the block (empty where they cannot be told)."""
    found: list[Memory] = []
    if not _instantiating.acquire(timeout=WAIT_S):
        yield found  # another instantiation is in the way: this one goes unmeasured
        return
    try:
        before_text = read_maps()
        yield found
        after_text = read_maps()
    finally:
        _instantiating.release()
    if before_text is None or after_text is None:
        return
    before, after = regions(before_text), regions(after_text)
    for end in sorted(_reserved_ends(after) - _reserved_ends(before)):
        memory = _memory_of(after, end)
        if memory is not None:
            found.append(memory)


@contextmanager
def closing() -> Iterator[None]:
    """Around closing an instance: not while another is being made and measured.

    Closing unmaps a memory, and the kernel may merge its reservation with a
    neighbour's, which moves a reservation's end: inside ``new_memories`` that
    reads as a memory that appeared, and the new instance would be measured
    by someone else's. Waits at most ``WAIT_S``, like an instantiation.
    """
    locked = _instantiating.acquire(timeout=WAIT_S)
    try:
        yield
    finally:
        if locked:
            _instantiating.release()


def size_of(memories: Sequence[Memory], text: str | None = None) -> int | None:
    """Bytes the memories can use now (None if unknown); ``text``: the map
    already read, when several instances are measured at once.

    A memory is found by its base, not by the end of its reservation: when an
    instance is closed wasmtime may keep its region reserved, and the kernel
    then merges it with a neighbour's reserved rest, which moves that end.
    """
    if not memories:
        return None
    text = read_maps() if text is None else text
    if text is None:
        return None
    mapped = regions(text)
    total = 0
    for memory in memories:
        size = _accessible_from(mapped, memory.base)
        if size is None:
            return None  # gone (the instance was closed) or not laid out as expected
        total += size
    return total


def _accessible_from(mapped: list[Region], base: int) -> int | None:
    """The length of the run of read-write regions that holds ``base``, from it."""
    run_end: int | None = None
    for region in mapped:
        if run_end is None:
            if region.start <= base < region.end and region.perms.startswith("rw"):
                run_end = region.end
        elif region.start == run_end and region.perms.startswith("rw"):
            run_end = region.end
        else:
            break
    return None if run_end is None else run_end - base


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to ask
        return None
    return trim


def return_freed_memory() -> None:
    """Hand the heap's free pages back to the kernel (glibc's ``malloc_trim``).

    A recycle frees the old instance's store, wasmtime's and Python's
    allocations for it, and glibc keeps that memory for reuse rather than
    return it: in the soak each of a plugin's first recycles left the host's
    RSS about 0.9 MB higher (levelling off after four), which over a Pi's
    year of recycles is most of the host's drift. Trimmed, 20 recycles cost
    0.2 MB (PERFORMANCE.md, "A year on one Pi"). Costs about a millisecond,
    once per recycle, on the plugin's thread."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
