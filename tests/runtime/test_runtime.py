"""The runtime: stateful instances, sandboxing, traps and load checks.

Grants are tested together in tests/capabilities/test_grants.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.errors import GuestError, PluginError, PluginTrap
from wasihost.host import Host
from wasihost.runtime.plugin import PluginState

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]


def chaos(**settings: object) -> dict[str, object]:
    return {"built": "chaos", "world": "dht22-plugin", "settings": settings}


def test_state_persists_across_polls(make_config: MakeConfig, make_host: MakeHost) -> None:
    host = make_host(make_config({"counter": chaos(mode="counter")}))
    plugin = host.plugins["counter"]
    counts = [plugin.call()["poll_count"] for _ in range(3)]
    assert counts == [1, 2, 3]


def test_seed_dht22_counter_persists(
    make_config: MakeConfig, make_host: MakeHost, board: SimBoard
) -> None:
    board.set_dht22(22.5, 40.0)
    host = make_host(make_config({"dht22": {"led": 1}}))
    records = [host.plugins["dht22"].call() for _ in range(3)]
    assert [r["poll_count"] for r in records] == [1, 2, 3]
    assert records[-1]["temperature_c"] == pytest.approx(22.5)
    assert records[-1]["alarm"] == "none"


def test_guest_cannot_open_host_files(make_config: MakeConfig, make_host: MakeHost) -> None:
    host = make_host(make_config({"snoop": chaos(mode="open_file", path="/etc/passwd")}))
    with pytest.raises(GuestError, match="open failed: FileNotFoundError"):
        host.plugins["snoop"].call()


def test_guest_sees_no_environment_or_arguments(
    make_config: MakeConfig, make_host: MakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASIHOST_SECRET", "hunter2")
    host = make_host(make_config({"snoop": chaos(mode="environment")}))
    with pytest.raises(GuestError, match=r"env=\{\} argv=\[\]"):
        host.plugins["snoop"].call()


def test_guest_cannot_list_directories(make_config: MakeConfig, make_host: MakeHost) -> None:
    host = make_host(make_config({"snoop": chaos(mode="list_root")}))
    with pytest.raises(GuestError) as info:
        host.plugins["snoop"].call()
    assert info.value.reason in ("listed: []", "listdir failed: FileNotFoundError")


async def test_guest_cannot_open_sockets(make_config: MakeConfig, make_host: MakeHost) -> None:
    connections: list[object] = []
    server = await asyncio.start_server(lambda r, w: connections.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    host = make_host(make_config({"snoop": chaos(mode="socket", port=port)}))
    try:
        with pytest.raises(GuestError, match="connect failed"):
            await asyncio.to_thread(host.plugins["snoop"].call)
        await asyncio.sleep(0)  # let the server accept anything pending
    finally:
        server.close()
    assert connections == []


def test_trap_discards_instance_and_next_poll_runs_fresh(
    make_config: MakeConfig, make_host: MakeHost, monotonic: Any
) -> None:
    host = make_host(make_config({"flaky": chaos(mode="trap_on_poll", poll=2)}))
    plugin = host.plugins["flaky"]
    assert plugin.call()["poll_count"] == 1
    with pytest.raises(PluginTrap, match=r"trapped in sensor-logic\.poll"):
        plugin.call()
    assert plugin.stats.traps == 1
    with pytest.raises(PluginError, match="backing off after a trap"):
        plugin.call()  # not before its backoff has passed
    monotonic.advance()
    # A fresh instance: guest state reset, so the counter starts again.
    assert plugin.call()["poll_count"] == 1
    assert plugin.stats.restarts == 1
    assert plugin.state is PluginState.RUNNING


def test_endless_loop_hits_the_deadline(make_config: MakeConfig, make_host: MakeHost) -> None:
    host = make_host(make_config({"spinner": {**chaos(mode="loop"), "timeout_ms": 100}}))
    with pytest.raises(PluginTrap, match="interrupt"):
        host.plugins["spinner"].call()
    assert host.plugins["spinner"].stats.traps == 1


def test_import_outside_world_is_refused_at_load(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    # pi-monitor's component imports fan-controller and system-info, which
    # the dht22 world does not grant.
    host = make_host(make_config({"dht22": {"built": "pi-monitor", "led": 1}}))
    plugin = host.plugins["dht22"]
    assert plugin.state is PluginState.FAILED
    assert plugin.stats.last_error is not None
    assert "imports wasihost:plugin/" in plugin.stats.last_error
    assert "which world dht22-plugin does not allow" in plugin.stats.last_error
    assert host.state.plugins["dht22"].error == plugin.stats.last_error


def test_component_missing_logic_export_is_refused(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    host = make_host(make_config({"dashboard": {"world": "dht22-plugin", "built": "dashboard"}}))
    assert "does not export wasihost:plugin/sensor-logic@0.1.0#poll" in str(
        host.plugins["dashboard"].stats.last_error
    )


def test_corrupt_and_missing_wasm_are_refused(
    make_config: MakeConfig, make_host: MakeHost, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.wasm"
    corrupt.write_bytes(b"\0asm\x0d\0\x01\0garbage")
    config = make_config(
        {
            "dht22": {"wasm": str(corrupt)},
            "gone": {**chaos(), "wasm": str(tmp_path / "gone.wasm")},
            "counter": chaos(),
        }
    )
    host = make_host(config)
    assert "not a valid WebAssembly component" in str(host.plugins["dht22"].stats.last_error)
    assert "gone.wasm: file not found" in str(host.plugins["gone"].stats.last_error)
    assert host.running() == ["counter"]


def test_settings_refused_by_guest_fail_the_load(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    host = make_host(make_config({"picky": chaos(refuse_settings=True)}))
    assert host.plugins["picky"].state is PluginState.FAILED
    assert "refused its settings: refusing these settings on purpose" in str(
        host.plugins["picky"].stats.last_error
    )


def test_guest_print_goes_to_host_log(
    make_config: MakeConfig, make_host: MakeHost, caplog: pytest.LogCaptureFixture
) -> None:
    host = make_host(make_config({"talker": chaos(say="hello from the guest")}))
    caplog.set_level("INFO", logger="wasihost.guest")
    host.plugins["talker"].call()
    assert "[talker] hello from the guest 1" in caplog.messages


PATHS = ("generic", "typed", "compiled")
PLANS = {"generic": "ExportFunction", "typed": "TypedExport", "compiled": "Export"}


def _poll_every_path(name: str, polls: int, **options: Any) -> dict[str, list[Any]]:
    import itertools

    from wasihost.testing import ComponentPlugin

    results: dict[str, list[Any]] = {}
    for path in PATHS:
        board = SimBoard(seed=7)
        board.set_dht22(21.5, 47.0)
        clock = itertools.count(1_700_000_000_000, 2000)
        plugin = ComponentPlugin(
            Path(__file__).parents[2] / "plugins" / name,
            board=board,
            clock_ms=lambda clock=clock: next(clock),
            call_path=path,  # type: ignore[arg-type]
            **options,
        )
        try:
            instance = plugin.plugin._instance
            assert instance is not None
            planned = {type(export).__name__ for export in instance._functions.values()}
            assert planned == {PLANS[path]}  # no function fell back to another path
            outcomes: list[Any] = []
            for _ in range(polls):
                try:
                    outcomes.append(plugin.poll())
                except GuestError as exc:
                    outcomes.append(("error", exc.reason))
            outcomes.append(plugin.snapshot())
            outcomes.append(plugin.leds.snapshot())
            results[path] = outcomes
        finally:
            plugin.close()
    return results


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("dht22", {"settings": {"gpio_pin": 4, "led": 1}}),
        ("pi-monitor", {"settings": {"led": 0}}),
        ("bme680", {"settings": {"i2c_address": 0x77, "led": 2}}),
        ("sht31", {"settings": {"led": 3}}),
    ],
)
def test_every_call_path_agrees_on_seed_plugins(
    built: dict[str, Path], name: str, options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from wasihost.capabilities import Grants

    caplog.set_level("INFO", logger="wasihost.calls")

    grants = Grants(
        leds=frozenset({0, 1, 2, 3}),
        gpio_pins=frozenset({4}),
        i2c_addresses=frozenset({0x44, 0x77}),
        buzzer=True,
        fan=True,
    )
    results = _poll_every_path(name, 25, grants=grants, **options)
    assert results["typed"] == results["generic"]
    assert results["compiled"] == results["generic"]
    assert "uses the" not in caplog.text  # every capability on the path asked for
    readings = [r for r in results["typed"][:-2] if isinstance(r, dict | list) and r]
    assert len(readings) >= 20  # real readings, not just errors


def test_without_the_compiled_plans_the_host_uses_the_python_ones(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from wasihost.runtime import compiled
    from wasihost.runtime.engine import Engine

    monkeypatch.setattr(compiled, "_UNAVAILABLE", "not built (no compiler)")
    engine = Engine(call_path="compiled")
    try:
        assert engine.call_path == "typed"
        assert "compiled call plans not built (no compiler)" in caplog.text
    finally:
        engine.close()


def test_another_value_layout_falls_back_to_the_generic_path(
    make_config: Callable[..., HostConfig],
    make_host: MakeHost,
    board: SimBoard,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wasmtime release whose value layout differs must not be read at the old
    offsets (the check is a real one, not an assert that ``python -O`` strips)."""
    from wasihost.runtime import compiled, values

    problem = "wasmtime's value layout differs: wasmtime_component_vallist.data at 16, not 8"
    monkeypatch.setattr(values, "LAYOUT_PROBLEM", problem)
    monkeypatch.setattr(compiled, "_UNAVAILABLE", f"refused to start: {problem}")
    board.set_dht22(22.5, 40.0)
    host = make_host(make_config({"dht22": {"led": 1}}))
    assert host.engine.call_path == "generic"
    assert "vallist.data at 16, not 8" in caplog.text and '"generic"' in caplog.text
    assert host.plugins["dht22"].call()["temperature_c"] == pytest.approx(22.5)


def test_the_layout_this_wasmtime_declares_is_the_one_the_plans_read() -> None:
    from wasihost.runtime import compiled, values

    assert values.LAYOUT_PROBLEM is None
    assert compiled.unavailable() is None  # built and accepted here (CI builds it too)


def test_generic_call_path_is_a_config_switch(
    make_config: Callable[..., HostConfig], make_host: MakeHost, board: SimBoard
) -> None:
    board.set_dht22(22.5, 40.0)
    host = make_host(make_config({"dht22": {"led": 1}}, runtime={"call_path": "generic"}))
    assert host.engine.call_path == "generic"
    assert host.plugins["dht22"].call()["temperature_c"] == pytest.approx(22.5)


def test_start_up_says_which_plugins_are_still_loading(
    make_config: Callable[..., HostConfig],
    board: SimBoard,
    monotonic: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    from wasihost.runtime.plugin import Plugin

    caplog.set_level("INFO", logger="wasihost")
    real_load = Plugin.load
    release = threading.Event()

    def slow_load(self: Plugin, saved_state: bytes | None = None) -> None:
        if self.name == "dht22":  # stands in for a cold compile
            release.wait(5)
        real_load(self, saved_state)

    monkeypatch.setattr(Plugin, "load", slow_load)
    board.set_dht22(22.5, 40.0)
    host = Host(make_config({"dht22": {"led": 1}, "pi_monitor": {"led": 0}}), board=board,
                monotonic=monotonic)  # fmt: skip
    host.LOAD_PROGRESS_S = 0.05
    threading.Timer(0.3, release.set).start()
    try:
        started = time.perf_counter()
        host.load_plugins()
        assert time.perf_counter() - started >= 0.3
        progress = [m for m in caplog.messages if m.startswith("still loading")]
        assert progress and all("dht22" in m for m in progress)
        assert any("still loading dht22 (" in m for m in progress)  # pi-monitor finished first
        assert host.plugins["dht22"].call()["poll_count"] == 1
    finally:
        host.close()


def test_an_unchanged_component_file_is_not_read_again(
    built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every source plugin and every reload of one loads the 20 MB shared runtime:
    the engine remembers a file's hash by inode, mtime and size; a new version
    (landed by rename, as the build does) is read and hashed again."""
    import shutil

    from wasihost.runtime.component import compile_file
    from wasihost.runtime.engine import Engine

    wasm = tmp_path / "plugin.wasm"
    shutil.copy(built["generic"], wasm)
    engine = Engine()
    try:
        first = compile_file("p", engine, wasm)
        reads: list[Path] = []
        read_bytes = Path.read_bytes

        def counted(self: Path) -> bytes:
            reads.append(self)
            return read_bytes(self)

        monkeypatch.setattr(Path, "read_bytes", counted)
        again = compile_file("p", engine, wasm)
        assert reads == []
        assert again.component is first.component and again.sha256 == first.sha256
        landed = tmp_path / "landing.wasm"
        shutil.copy(built["chaos"], landed)
        landed.replace(wasm)
        third = compile_file("p", engine, wasm)
        assert reads == [wasm] and third.sha256 != first.sha256
    finally:
        engine.close()
