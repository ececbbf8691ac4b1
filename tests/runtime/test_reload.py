"""Hot reload: new versions go live between polls, bad ones never do, state carries over."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.errors import PluginTrap
from wasihost.host import Host
from wasihost.runtime import plugin as plugin_module
from wasihost.snapshots import SnapshotStore

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]


def rebuilt(wasm: bytes, tag: bytes = b"v2") -> bytes:
    """The same component with a custom section appended: a new build, same logic."""
    name = b"wasihost-test"
    payload = bytes([len(name)]) + name + tag
    return wasm + b"\x00" + bytes([len(payload)]) + payload


def deploy(path: Path, data: bytes) -> None:
    """Copy-then-rename, the way a careful deploy lands a file."""
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_bytes(data)
    os.replace(partial, path)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    return folder


# The plugin under test is named dht22: it is a dht22-world plugin, and that
# name carries the DHT22 pin grant the seed dht22 logic needs.
def setup_host(
    make_config: MakeConfig,
    make_host: MakeHost,
    plugin_dir: Path,
    built: dict[str, Path],
    source: str,
    **plugin: Any,
) -> Host:
    target = plugin_dir / "dht22.wasm"
    deploy(target, built[source].read_bytes())
    config = make_config(
        {
            "dht22": {"world": "dht22-plugin", "wasm": str(target), "led": 3, **plugin},
            "other": {"built": "chaos", "world": "dht22-plugin"},
        }
    )
    return make_host(config)


async def test_new_version_goes_live_while_others_keep_polling(
    make_config: MakeConfig,
    make_host: MakeHost,
    plugin_dir: Path,
    built: dict[str, Path],
    board: SimBoard,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = setup_host(make_config, make_host, plugin_dir, built, "chaos")
    board.set_dht22(23.5, 40.0)
    await host.cycle.run_once()
    assert host.state.plugins["dht22"].reading is not None
    assert host.state.plugins["dht22"].reading.value("temperature") == 1.0  # chaos: poll count

    # Hold the new version's compile until the test lets it go.
    release = threading.Event()
    real_check = plugin_module.check_component

    def slow_check(*args: Any) -> Any:
        assert release.wait(timeout=30)
        return real_check(*args)

    monkeypatch.setattr(plugin_module, "check_component", slow_check)
    deploy(plugin_dir / "dht22.wasm", built["dht22"].read_bytes())
    reload = asyncio.create_task(host.reloader.reload("dht22"))
    for cycle in range(2, 5):  # three cycles while the new version compiles
        await host.cycle.run_once()
        assert host.plugins["other"].stats.polls == cycle
        assert host.state.plugins["dht22"].reading.value("temperature") == float(cycle)  # old logic
    release.set()
    assert await reload is True

    await host.cycle.run_once()
    reading = host.state.plugins["dht22"].reading
    assert reading.value("temperature") == 23.5  # dht22 logic: reads the board
    assert reading.status["poll_count"] == 1
    status = host.statuses()["dht22"]
    assert status["reloads"] == 1
    assert status["reload_error"] is None
    assert status["last_reload"]["state"] == "reset"  # dht22 has no state interface


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (lambda built: b"\0asm this is not a component", "not a valid WebAssembly component"),
        (lambda built: built["chaos"].read_bytes()[:100_000], "not a valid WebAssembly component"),
        (lambda built: built["dashboard"].read_bytes(), "does not export"),
        (lambda built: built["pi-monitor"].read_bytes(), "which world dht22-plugin does not allow"),
    ],
    ids=["corrupt", "truncated", "wrong-world-exports", "wrong-world-imports"],
)
async def test_bad_versions_are_rejected_and_the_old_one_serves(
    make_config: MakeConfig,
    make_host: MakeHost,
    plugin_dir: Path,
    built: dict[str, Path],
    bad: Callable[[dict[str, Path]], bytes],
    reason: str,
) -> None:
    host = setup_host(make_config, make_host, plugin_dir, built, "chaos")
    await host.cycle.run_once()
    deploy(plugin_dir / "dht22.wasm", bad(built))
    assert await host.reloader.reload("dht22") is False
    status = host.statuses()["dht22"]
    assert reason in status["reload_error"]
    assert status["reloads"] == 0
    await host.cycle.run_once()
    assert host.state.plugins["dht22"].reading.status["poll_count"] == 2  # old instance, state kept
    # Fixed on the next change: the good file goes live.
    deploy(plugin_dir / "dht22.wasm", rebuilt(built["chaos"].read_bytes()))
    assert await host.reloader.reload("dht22") is True
    assert host.statuses()["dht22"]["reload_error"] is None


async def test_trap_in_restore_keeps_the_old_version(
    make_config: MakeConfig, make_host: MakeHost, plugin_dir: Path, built: dict[str, Path]
) -> None:
    host = setup_host(
        make_config, make_host, plugin_dir, built, "chaos", settings={"restore_mode": "trap"}
    )
    await host.cycle.run_once()
    await host.cycle.run_once()
    deploy(plugin_dir / "dht22.wasm", rebuilt(built["chaos"].read_bytes()))
    assert await host.reloader.reload("dht22") is False
    assert "failed to restore state" in host.statuses()["dht22"]["reload_error"]
    await host.cycle.run_once()
    assert host.state.plugins["dht22"].reading.status["poll_count"] == 3


async def test_state_carries_across_reload_with_the_state_interface(
    make_config: MakeConfig, make_host: MakeHost, plugin_dir: Path, built: dict[str, Path]
) -> None:
    host = setup_host(make_config, make_host, plugin_dir, built, "chaos")
    for _ in range(3):
        await host.cycle.run_once()
    deploy(plugin_dir / "dht22.wasm", rebuilt(built["chaos"].read_bytes()))
    assert await host.reloader.reload("dht22") is True
    await host.cycle.run_once()
    assert host.state.plugins["dht22"].reading.status["poll_count"] == 4
    assert host.statuses()["dht22"]["last_reload"]["state"] == "carried"


async def test_state_resets_across_reload_without_it(
    make_config: MakeConfig, make_host: MakeHost, plugin_dir: Path, built: dict[str, Path]
) -> None:
    host = setup_host(make_config, make_host, plugin_dir, built, "dht22")
    for _ in range(3):
        await host.cycle.run_once()
    deploy(plugin_dir / "dht22.wasm", rebuilt(built["dht22"].read_bytes()))
    assert await host.reloader.reload("dht22") is True
    host.board.set_dht22(20.0, 40.0)  # type: ignore[attr-defined]
    await host.cycle.run_once()
    assert host.state.plugins["dht22"].reading.status["poll_count"] == 1


async def test_snapshot_is_restored_after_a_host_restart(
    make_config: MakeConfig, plugin_dir: Path, built: dict[str, Path], board: SimBoard
) -> None:
    config = make_config({"dht22": {"built": "chaos", "world": "dht22-plugin"}})
    first = Host(config, board=board)
    first.load_plugins()
    for _ in range(3):
        await first.cycle.run_once()
    await first.save_snapshots(force=True)
    first.close()

    second = Host(config, board=board)
    second.load_plugins()
    try:
        await second.cycle.run_once()
        assert second.state.plugins["dht22"].reading.status["poll_count"] == 4
    finally:
        second.close()


async def test_snapshot_is_restored_after_a_trap(
    make_config: MakeConfig, make_host: MakeHost, monotonic: Any
) -> None:
    config = make_config(
        {
            "dht22": {
                "built": "chaos",
                "world": "dht22-plugin",
                "settings": {"mode": "trap_on_poll", "poll": 4},
            }
        }
    )
    host = make_host(config)
    plugin = host.plugins["dht22"]
    assert [plugin.call()["poll_count"] for _ in range(2)] == [1, 2]
    assert plugin.snapshot() == b'{"polls": 2}'
    plugin.call()  # 3
    with pytest.raises(PluginTrap):
        plugin.call()
    monotonic.advance()  # past the backoff
    # A fresh instance restored from the snapshot taken at 2 polls.
    assert plugin.call()["poll_count"] == 3


async def test_watcher_picks_up_rename_and_in_place_writes(
    make_config: MakeConfig, make_host: MakeHost, plugin_dir: Path, built: dict[str, Path]
) -> None:
    host = setup_host(make_config, make_host, plugin_dir, built, "chaos")
    stop = asyncio.Event()
    watcher = asyncio.create_task(host.reloader.watch(stop))
    await asyncio.wait_for(host.reloader.ready.wait(), 30)  # the watcher is watching

    async def reloads_reach(count: int) -> None:
        for _ in range(300):
            if host.plugins["dht22"].stats.reloads >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"no reload #{count}: {host.statuses()['x']}")

    try:
        deploy(plugin_dir / "dht22.wasm", rebuilt(built["chaos"].read_bytes(), b"v2"))
        await reloads_reach(1)
        (plugin_dir / "dht22.wasm").write_bytes(rebuilt(built["chaos"].read_bytes(), b"v3"))
        await reloads_reach(2)
    finally:
        stop.set()
        await watcher
        await host.reloader.wait_idle()
    assert host.statuses()["dht22"]["reload_error"] is None


async def test_mtime_fallback_reloads_once_the_file_is_stable(
    make_config: MakeConfig, make_host: MakeHost, plugin_dir: Path, built: dict[str, Path]
) -> None:
    host = setup_host(make_config, make_host, plugin_dir, built, "chaos")
    host.reloader.check_files()
    deploy(plugin_dir / "dht22.wasm", rebuilt(built["chaos"].read_bytes()))
    host.reloader.check_files()  # changed since the last check: not stable yet
    await host.reloader.wait_idle()
    assert host.plugins["dht22"].stats.reloads == 0
    host.reloader.check_files()  # unchanged for a whole check: reload
    await host.reloader.wait_idle()
    assert host.plugins["dht22"].stats.reloads == 1


async def test_precompiled_artifact_is_used_only_when_it_matches(
    make_config: MakeConfig, make_host: MakeHost, plugin_dir: Path, built: dict[str, Path]
) -> None:
    source = built["dht22"]
    for suffix in (".wasm", ".cwasm", ".cwasm.tag"):
        shutil.copy(source.with_suffix(suffix), plugin_dir / f"dht22{suffix}")
    host = make_host(make_config({"dht22": {"wasm": str(plugin_dir / "dht22.wasm"), "led": 1}}))
    checked = host.plugins["dht22"]._checked
    assert checked is not None and checked.precompiled

    # A changed .wasm beside the old artifact: the stale artifact is ignored.
    deploy(plugin_dir / "dht22.wasm", rebuilt(source.read_bytes()))
    assert await host.reloader.reload("dht22") is True
    checked = host.plugins["dht22"]._checked
    assert checked is not None and not checked.precompiled


async def test_bme680_calibration_survives_reload_and_restart(
    make_config: MakeConfig, plugin_dir: Path, built: dict[str, Path], board: SimBoard
) -> None:
    clock = [1_700_000_000_000]
    target = plugin_dir / "bme680.wasm"
    deploy(target, built["bme680"].read_bytes())
    config = make_config({"bme680": {"wasm": str(target), "led": 2, "settings": {"burn_in_s": 60}}})
    host = Host(config, board=board, clock_ms=lambda: clock[0])
    host.load_plugins()
    try:
        plugin = host.plugins["bme680"]
        for _ in range(15):
            clock[0] += 30_000
            accuracy = plugin.call()["iaq_accuracy"]
        assert accuracy >= 2
        deploy(target, rebuilt(built["bme680"].read_bytes()))
        assert await host.reloader.reload("bme680") is True
        assert host.statuses()["bme680"]["last_reload"]["state"] == "carried"
        clock[0] += 30_000
        assert plugin.call()["iaq_accuracy"] >= accuracy
        await host.save_snapshots(force=True)
    finally:
        host.close()

    restarted = Host(config, board=board, clock_ms=lambda: clock[0] + 60_000)
    restarted.load_plugins()
    try:
        record = restarted.plugins["bme680"].call()
        assert record["iaq_accuracy"] >= accuracy
        assert record["poll_count"] == 17
    finally:
        restarted.close()


def test_unchanged_state_is_snapshotted_at_most_once_per_interval(tmp_path: Path) -> None:
    now = [0.0]
    store = SnapshotStore(tmp_path, 60.0, clock=lambda: now[0])
    assert store.due("p") and store.save("p", b"a") is True
    assert not store.due("p")
    now[0] = 60.0
    assert store.due("p")
    assert store.save("p", b"a") is False  # unchanged: nothing written...
    assert not store.due("p")  # ...and the next try is one interval later, not every cycle
    now[0] = 119.0
    assert not store.due("p")
    now[0] = 120.0
    assert store.due("p") and store.save("p", b"b") is True
    assert (tmp_path / "p.state").read_bytes() == b"b"


async def test_host_snapshots_unchanged_state_once_per_interval(
    make_config: MakeConfig,
    make_host: MakeHost,
    monotonic: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = make_host(make_config({"dht22": {"built": "chaos", "world": "dht22-plugin"}}))
    host.snapshots = SnapshotStore(tmp_path / "state", 60.0, clock=monotonic)
    plugin = host.plugins["dht22"]
    calls = []
    real_snapshot = plugin.snapshot_async

    async def counted() -> bytes | None:
        calls.append(monotonic.now)
        return await real_snapshot()

    monkeypatch.setattr(plugin, "snapshot_async", counted)
    await host.cycle.run_once()
    await host.save_snapshots()  # first: written
    monotonic.advance(60.0)
    for _ in range(5):  # state unchanged since: one snapshot, then none until 60 s on
        await host.save_snapshots()
    assert len(calls) == 2
    monotonic.advance(60.0)
    await host.save_snapshots()
    assert len(calls) == 3


async def test_concurrent_reloads_of_one_plugin_swap_once(
    make_config: MakeConfig,
    make_host: MakeHost,
    plugin_dir: Path,
    built: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = setup_host(make_config, make_host, plugin_dir, built, "chaos")
    await host.cycle.run_once()
    plugin = host.plugins["dht22"]
    prepares = []
    real_prepare = plugin.prepare

    def counted() -> Any:
        prepares.append(1)
        return real_prepare()

    monkeypatch.setattr(plugin, "prepare", counted)
    deploy(plugin_dir / "dht22.wasm", rebuilt(built["chaos"].read_bytes()))
    # e.g. the operator endpoint and the file watcher at once
    results = await asyncio.gather(host.reloader.reload("dht22"), host.reloader.reload("dht22"))
    assert sorted(results) == [False, True]
    assert len(prepares) == 1  # the second found the new file already live
    assert host.statuses()["dht22"]["reloads"] == 1
    await host.cycle.run_once()
    assert host.state.plugins["dht22"].reading.status["poll_count"] == 2  # state carried once
