"""Guest memory that only grows (componentize-py leaks what a guest sends):
the host measures each instance and moves a plugin to a fresh one, state
carried, before the cap traps it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasihost.config import HostConfig
from wasihost.errors import GuestError
from wasihost.host import Host
from wasihost.runtime import guest_memory
from wasihost.runtime import plugin as plugin_module
from wasihost.runtime.guest_memory import Memory, size_of

LEAKY = Path(__file__).resolve().parents[1] / "source-plugins" / "leaky"
CAP_MB = 24
POLLS = 450
LEAKY_PLUGIN = {
    "leaky": {
        "source": str(LEAKY),
        "max_memory_mb": CAP_MB,
        "grants": {"i2c_addresses": ["0x77"]},
    }
}


def leaky_host(
    make_config: Callable[..., HostConfig], make_host: Callable[[HostConfig], Host]
) -> Host:
    return make_host(make_config(LEAKY_PLUGIN))


def poll_many(host: Host, monotonic: Any, polls: int) -> list[Any]:
    plugin = host.plugins["leaky"]
    results = []
    for _ in range(polls):
        monotonic.advance(plugin_module.MEMORY_CHECK_S)
        results.append(plugin.call())
    return results


def test_a_leaking_plugin_traps_at_its_cap_without_recycling(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The failure the recycling prevents: with it switched off, the leak traps."""
    monkeypatch.setattr(plugin_module, "RECYCLE_AT", 2.0)  # never
    host = leaky_host(make_config, make_host)
    with pytest.raises(Exception, match="trapped"):
        poll_many(host, monotonic, POLLS)
    assert host.plugins["leaky"].stats.traps == 1


def grown_while(
    settings: dict[str, Any],
    work: Callable[[Any], object],
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    """Bytes the guest memory grew while ``work(plugin)`` ran, for a plugin that keeps
    nothing, with recycling off: what the runtime itself leaks (a big leak traps at the
    cap instead)."""
    monkeypatch.setattr(plugin_module, "RECYCLE_AT", 2.0)  # never
    config = {"leaky": {**LEAKY_PLUGIN["leaky"], "settings": {"hold": False, **settings}}}
    host = make_host(make_config(config))
    plugin = host.plugins["leaky"]
    poll_many(host, monotonic, 1)
    before = plugin.status()["guest_memory_bytes"]
    work(plugin)
    poll_many(host, monotonic, 1)  # memory is read after a call, at most once a second
    after = plugin.status()["guest_memory_bytes"]
    assert plugin.stats.traps == 0
    assert before is not None and after is not None
    return int(after - before)


def polls(count: int, expected: object = None) -> Callable[[Any], object]:
    def run(plugin: Any) -> None:
        for _ in range(count):
            result = plugin.call()
            assert expected is None or result == expected

    return run


def test_byte_lists_a_guest_sends_are_given_back(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """componentize-py 0.25's runtime never frees a byte list a guest sends; the build
    mends it (authoring/leak_mend.py). 450 polls sending 96 KB each (43 MB, past the
    24 MB cap when leaked) leave the memory where it was."""
    grown = grown_while({}, polls(POLLS), make_config, make_host, monotonic, monkeypatch)
    assert grown < 2**20


def test_empty_byte_lists_a_guest_sends_are_given_back(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An empty byte list cost 16 B each (the runtime's copy of zero bytes is a real
    block). sht31 sends one before each read. 400,000 empty writes, 6.1 MB when leaked:
    past the free heap a new instance starts with, so the memory would grow by megabytes."""
    settings = {"size": 0, "writes": 8000}
    grown = grown_while(settings, polls(50), make_config, make_host, monotonic, monkeypatch)
    assert grown < 2**20


def test_empty_lists_of_other_types_a_guest_sends_are_given_back(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A poll that returns ``ok([])`` lowers an empty list<measurement> element by element,
    into what ``cabi_realloc`` gives for zero bytes: a 16-byte block no one freed. The first
    poll holds 6 MB, past the free heap, so 150,000 of them would grow the memory 2.3 MB."""
    settings = {"writes": 0, "empty": True, "prime_kb": 6000}
    work = polls(150_000, expected=[])
    grown = grown_while(settings, work, make_config, make_host, monotonic, monkeypatch)
    assert grown < 2**20


def test_byte_lists_an_export_returns_are_given_back(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``state.snapshot()`` returns a byte list, freed in post-return once the host has
    copied it. 2,000 snapshots of 16 KB are 32 MB when leaked: past the 24 MB cap."""
    settings = {"writes": 0, "snapshot_padding": 16_000}

    def snapshots(plugin: Any) -> None:
        for _ in range(2_000):
            snapshot = plugin.snapshot()
            assert snapshot is not None and len(snapshot) > 16_000

    grown = grown_while(settings, snapshots, make_config, make_host, monotonic, monkeypatch)
    assert grown < 2**20


def test_a_leaking_plugin_moves_to_a_fresh_instance_with_its_state_and_never_traps(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
) -> None:
    host = leaky_host(make_config, make_host)
    plugin = host.plugins["leaky"]
    results = poll_many(host, monotonic, POLLS)
    # Every poll answered, and the count went on across the fresh instances.
    assert [r[0]["value"] for r in results] == [float(n) for n in range(1, POLLS + 1)]
    assert plugin.stats.traps == 0
    assert plugin.stats.recycles >= 2
    status = plugin.status()
    assert status["recycles"] == plugin.stats.recycles
    assert status["recycle_error"] is None
    used = status["guest_memory_bytes"]
    assert used is not None
    assert used < CAP_MB * 2**20 * plugin_module.RECYCLE_AT
    host.metrics.update([], host.statuses(), 1.0)  # what each cycle hands /metrics
    metrics = host.metrics.render().decode()
    recycles = f'wasihost_plugin_recycles_total{{node="{host.config.node_id}",plugin="leaky"}}'
    assert f"{recycles} {float(plugin.stats.recycles)}" in metrics
    assert "wasihost_plugin_guest_memory_bytes{" in metrics


def test_a_leaking_plugin_whose_polls_fail_is_recycled_too(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
) -> None:
    """A driver that leaks on its way to an error (a sensor unplugged: every transfer
    sent, none answered) grows just the same; an error result is a working instance."""
    leaky = {"leaky": {**LEAKY_PLUGIN["leaky"], "settings": {"fail": True}}}
    host = make_host(make_config(leaky))
    plugin = host.plugins["leaky"]
    for n in range(1, POLLS + 1):
        monotonic.advance(plugin_module.MEMORY_CHECK_S)
        with pytest.raises(GuestError, match=f"poll {n} failed"):  # the count goes on
            plugin.call()
    assert plugin.stats.traps == 0
    assert plugin.stats.recycles >= 2


def test_a_fresh_instance_that_refuses_the_state_is_not_retried_every_call(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
) -> None:
    """The old instance keeps working; the next try waits for as much growth again."""
    leaky = {"leaky": {**LEAKY_PLUGIN["leaky"], "settings": {"refuse_restore": True}}}
    host = make_host(make_config(leaky))
    plugin = host.plugins["leaky"]
    polls = 0
    while plugin.stats.restore_failures == 0:  # grow to 85% of the cap, where it tries
        poll_many(host, monotonic, 1)
        polls += 1
        assert polls < 400, "never tried a fresh instance"
    assert plugin.stats.recycles == 0 and plugin.stats.traps == 0
    assert "fresh instance failed to restore state" in (plugin.status()["recycle_error"] or "")
    poll_many(host, monotonic, 5)  # ~0.3 MB more: not worth another try yet
    assert plugin.stats.restore_failures == 1


def test_memory_is_read_from_the_reserved_regions() -> None:
    """The map reading on a made-up map: a memory is known by its reservation's end."""
    text = "\n".join([
        "1000-2000 r-xp 00000000 00:00 0 /usr/bin/python",
        "7f0000000000-7f0000a00000 rw-p 00000000 00:00 0",
        "7f0000a00000-7f0100000000 ---p 00000000 00:00 0",
        "7f0200000000-7f0200800000 rw-p 00000000 00:00 0 thread stack",
    ])  # fmt: skip
    mapped = guest_memory.regions(text)
    memory = guest_memory._memory_of(mapped, 0x7F0100000000)
    assert memory == Memory(0x7F0000000000, 0x7F0100000000)
    assert size_of([memory], text) == 0xA00000
    grown = text.replace("7f0000000000-7f0000a00000", "7f0000000000-7f0000c00000").replace(
        "7f0000a00000-7f0100000000", "7f0000c00000-7f0100000000"
    )
    assert size_of([memory], grown) == 0xC00000
    assert size_of([memory], "1000-2000 r-xp 00000000 00:00 0\n") is None  # closed
    assert size_of([], text) is None
    # The reservation's end moved (merged with a closed neighbour's): still found.
    merged = grown.replace("7f0000c00000-7f0100000000", "7f0000c00000-7f0300000000")
    assert size_of([memory], merged) == 0xC00000


def test_an_instance_closed_while_another_is_measured_does_not_skew_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Closing unmaps a reservation, which the kernel may merge with a neighbour's and so
    move its end: inside a measurement that reads as a new memory. A close waits until
    the measurement is over, and then changes nothing it sees."""
    maps = ["7f0000000000-7f0000a00000 rw-p 0 00:00 0\n7f0000a00000-7f0100000000 ---p 0 00:00 0\n"]
    monkeypatch.setattr(guest_memory, "read_maps", lambda: maps[0])
    closed = threading.Event()

    def close_another() -> None:
        with guest_memory.closing():
            # The closed neighbour's region merged into this reservation: its end moved.
            maps[0] = maps[0].replace("7f0100000000", "7f0180000000")
        closed.set()

    with guest_memory.new_memories() as found:
        closer = threading.Thread(target=close_another)
        closer.start()
        assert not closed.wait(0.05)  # the close waits for the measurement
        # The instantiation reserves its memory:
        maps[0] += (
            "7f0200000000-7f0200100000 rw-p 0 00:00 0\n7f0200100000-7f0300000000 ---p 0 00:00 0\n"
        )
    closer.join()
    assert found == [Memory(0x7F0200000000, 0x7F0300000000)]


def test_each_recycle_hands_the_freed_heap_back_to_the_kernel(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    monotonic: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """glibc keeps what the old store freed (about 0.9 MB for each of a plugin's
    first recycles in the soak, PERFORMANCE.md) unless asked to return it."""
    trims: list[int] = []
    monkeypatch.setattr(guest_memory, "return_freed_memory", lambda: trims.append(1))
    host = leaky_host(make_config, make_host)
    poll_many(host, monotonic, POLLS)
    assert host.plugins["leaky"].stats.recycles >= 2
    assert len(trims) == host.plugins["leaky"].stats.recycles


def test_returning_freed_memory_is_safe_to_call_anywhere() -> None:
    guest_memory.return_freed_memory()  # glibc: malloc_trim; elsewhere: nothing
    guest_memory.return_freed_memory()
