"""A guest's linear memory size, read from this process's memory map (Linux only).

wasmtime-py exposes no size for a component's memory, so this reads
``/proc/self/maps``. With wasmtime's default configuration on 64-bit Linux
each 32-bit linear memory is one reservation: a guard region, then the
memory's accessible part (read-write: anonymous pages and the copy-on-write
image of its initial data), then the rest of a 4 GiB reservation plus guard
pages (``---p``). Growing the memory moves the boundary between the
read-write part and the reserved rest; the reservation's end never moves.

So a memory is known by the end of its reservation, found as the large
``---p`` regions that appeared while the instance was made, and its size is
where the reserved rest begins minus where the read-write run below it
begins. Resolution: one wasm page (64 KiB). A componentize-py component has
one linear memory (checked: one new reservation per instance).

Limits: Linux only; the default (on-demand) instance allocator, not the
pooling one; no other instantiation may run in the process while one is
watched. The size is what the guest's allocator has claimed, not what is in
use: the allocator never gives memory back, and leaks first fill whatever
free heap the instance started with before the memory grows at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MAPS = Path("/proc/self/maps")
# Far above any other mapping (thread stacks are megabytes, compiled code tens of MB).
RESERVATION_MIN = 1 << 30
PAGE = 64 * 1024


@dataclass(frozen=True)
class Region:
    start: int
    end: int
    perms: str


def read_maps() -> list[Region]:
    regions = []
    for line in MAPS.read_text().splitlines():
        span, perms = line.split(maxsplit=2)[:2]
        start, end = (int(x, 16) for x in span.split("-"))
        regions.append(Region(start, end, perms))
    return regions


def _reservation_ends(regions: list[Region]) -> set[int]:
    return {
        r.end for r in regions if r.perms.startswith("---") and r.end - r.start >= RESERVATION_MIN
    }


def size_of(end: int, regions: list[Region] | None = None) -> int:
    """Bytes the memory whose reservation ends at ``end`` can use now."""
    regions = read_maps() if regions is None else regions
    index = next((i for i, r in enumerate(regions) if r.end == end), None)
    if index is None:
        raise LookupError(f"no mapping ends at {end:#x}: was the instance closed?")
    boundary = regions[index].start
    base = boundary
    for region in reversed(regions[:index]):
        if region.end != base or not region.perms.startswith("rw"):
            break
        base = region.start
    return boundary - base


@contextmanager
def new_memories() -> Iterator[list[int]]:
    """Around an instantiation: afterwards the yielded list holds the
    reservation end of each linear memory made inside the block."""
    if not MAPS.exists():
        raise SystemExit("needs Linux: the memory size is read from /proc/self/maps")
    before = _reservation_ends(read_maps())
    found: list[int] = []
    yield found
    found.extend(sorted(_reservation_ends(read_maps()) - before))
