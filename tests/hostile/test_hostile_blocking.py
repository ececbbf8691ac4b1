"""The hostile suite, blocking calls and supervision (issue 14, classes 2 and 3).

Epoch interruption stops wasm code, not a guest blocked inside a WASI call:
``time.sleep`` is a ``wasi:io/poll`` wait that runs to its end whatever the
deadline. These attacks block (or trap, or spin) in every kind of guest call,
poll, configure, describe, snapshot, restore and the dashboard's render, next
to well-behaved plugins, and check that

* the cycle goes on without the blocked plugin, which shows as ``hung`` (which
  call, since when) and is not called again until its thread returns,
* the other plugins get a reading in every cycle,
* an operator reset, a page view and shutdown never wait for the guest,
* every failure of a lifecycle call is supervised like a poll's trap.

The guest sleeps a few seconds (far past its 200 ms deadline) so that the
tests can also watch the thread come back; nothing here asserts a duration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.errors import PluginError
from wasihost.host import Host
from wasihost.runtime import plugin as plugin_module
from wasihost.runtime.plugin import PluginState
from wasihost.web.server import create_app
from wasihost.web.shell import FRAME_URL

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]
Report = Callable[[str, str, float | None], None]

HOSTILE = "hostile"
DEADLINE_MS = 200
SLEEP_S = 3  # past the deadline by fifteen times, short enough to watch the thread return
GOOD = ("steady", "dht22")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def room(board: SimBoard) -> None:
    """A DHT22 that always answers, so the well-behaved plugins never fail on their own."""
    board.set_dht22(21.0, 45.0)


def chaos(**settings: Any) -> dict[str, Any]:
    return {
        "built": "chaos",
        "world": "dht22-plugin",
        "settings": {"seconds": SLEEP_S, **settings},
        "timeout_ms": DEADLINE_MS,
    }


def well_behaved() -> dict[str, dict[str, Any]]:
    return {"steady": {"built": "chaos", "world": "dht22-plugin", "led": 5}, "dht22": {"led": 1}}


async def until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Wait for a state the host reaches by itself (a guest thread returning)."""
    give_up = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < give_up, "the host never got there"
        await asyncio.sleep(0.02)


async def cycles(host: Host, count: int) -> None:
    for _ in range(count):
        await host.after_cycle(await host.cycle.run_once())


def assert_others_polled(host: Host, polls: int) -> None:
    for name in GOOD:
        status = host.statuses()[name]
        assert (status["state"], status["polls"], status["traps"]) == ("running", polls, 0), name
        assert host.state.plugins[name].error is None


# -- poll ------------------------------------------------------------------------------
async def test_a_poll_blocked_in_a_wasi_wait_does_not_hold_the_cycle(
    make_config: MakeConfig, make_host: MakeHost, monotonic: Any, hostile_report: Report
) -> None:
    host = make_host(make_config({HOSTILE: chaos(mode="sleep"), **well_behaved()}))
    started = time.perf_counter()
    await cycles(host, 1)
    first_cycle_ms = (time.perf_counter() - started) * 1000

    status = host.statuses()[HOSTILE]
    assert status["state"] == "hung"
    assert status["hung"]["call"] == "sensor-logic.poll"
    assert status["hung"]["since_ms"] <= host.clock_ms()
    assert "hung in sensor-logic.poll" in (host.state.plugins[HOSTILE].error or "")
    # The cycle went on: the others polled, and keep polling while it is stuck;
    # the hung plugin is not called again.
    await cycles(host, 3)
    assert_others_polled(host, 4)
    assert host.statuses()[HOSTILE]["polls"] == 1

    # When its thread returns, it is supervised like a trap: a new instance after backoff.
    await until(lambda: host.statuses()[HOSTILE]["state"] != "hung")
    status = host.statuses()[HOSTILE]
    assert (status["state"], status["traps"]) == ("backoff", 1)
    assert "hung in sensor-logic.poll" in status["last_error"]
    hostile_report("sleep 3 s in poll (200 ms deadline)", "hung, then backoff", first_cycle_ms)


async def test_many_hung_plugins_do_not_starve_the_cycle(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    """More hung plugins than asyncio's default executor has threads (6 here)."""
    hung = {f"hung{i}": chaos(mode="sleep") for i in range(8)}
    host = make_host(make_config({**hung, **well_behaved()}))
    await cycles(host, 3)
    assert_others_polled(host, 3)
    assert {host.statuses()[name]["state"] for name in hung} == {"hung"}
    # a page view still gets a thread
    async with TestClient(TestServer(create_app(host))) as client:
        assert (await client.get("/api/plugins")).status == 200


async def test_an_operator_reset_revives_a_hung_plugin_on_a_fresh_thread(
    make_config: MakeConfig, make_host: MakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stuck thread keeps the instance it is inside; the plugin goes on without
    waiting for it. Past the cap of such threads the reset says why instead."""
    monkeypatch.setenv("WASIHOST_TOKEN", "t0ken")
    monkeypatch.setattr(plugin_module, "MAX_HUNG_THREADS", 1)
    sleeper = chaos(mode="sleep", seconds=10)
    host = make_host(make_config({HOSTILE: sleeper, **well_behaved()}))
    plugin = host.plugins[HOSTILE]
    await cycles(host, 1)
    assert plugin.state is PluginState.HUNG
    async with TestClient(TestServer(create_app(host))) as client:
        reset = await client.post(
            f"/api/plugins/{HOSTILE}/reset", headers={"Authorization": "Bearer t0ken"}
        )
        assert reset.status == 200, await reset.text()
        assert (await reset.json())["state"] == "running"
        await cycles(host, 1)  # polled again on the fresh thread, and hangs again
        assert plugin.state is PluginState.HUNG
        refused = await client.post(
            f"/api/plugins/{HOSTILE}/reset", headers={"Authorization": "Bearer t0ken"}
        )
        body = await refused.json()
    assert refused.status == 409
    assert "calls are still hung" in body["error"] and "sensor-logic.poll" in body["error"]
    assert_others_polled(host, 2)
    await until(lambda: plugin.state is not PluginState.HUNG)  # both threads come back
    await until(lambda: not plugin._retired)


async def test_a_new_version_whose_restore_blocks_is_refused_and_the_old_one_polls_on(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    host = make_host(make_config({HOSTILE: chaos(mode="counter"), **well_behaved()}))
    plugin = host.plugins[HOSTILE]
    await cycles(host, 2)
    plugin.spec = dataclasses.replace(plugin.spec, settings={"restore_mode": "sleep", "seconds": 3})
    candidate = await asyncio.to_thread(plugin.prepare)
    with pytest.raises(PluginError, match=r"new version hung in state\.restore"):
        await asyncio.to_thread(plugin.swap, candidate)
    # The live version is not blamed: it polls on, counting where it was.
    await cycles(host, 1)
    status = host.statuses()[HOSTILE]
    assert (status["state"], status["polls"], status["traps"], status["hangs"]) == (
        "running",
        3,
        0,
        0,
    )
    assert host.state.plugins[HOSTILE].reading is not None
    assert host.state.plugins[HOSTILE].reading.status["poll_count"] == 3
    await until(lambda: not plugin._retired)  # the new version's thread returns and frees it


# -- configure, describe, restore --------------------------------------------------------
async def test_a_configure_blocked_at_start_does_not_hold_the_start(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    host = make_host(make_config({HOSTILE: chaos(configure_mode="sleep"), **well_behaved()}))
    status = host.statuses()[HOSTILE]
    assert status["state"] == "failed"
    assert "hung in settings.configure" in status["last_error"]
    await cycles(host, 2)
    assert_others_polled(host, 2)


async def test_a_describe_blocked_at_start_does_not_hold_the_start(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    generic = {"built": "generic", "world": "sensor-plugin", "timeout_ms": DEADLINE_MS}
    generic["settings"] = {"describe_mode": "sleep", "seconds": SLEEP_S}
    host = make_host(make_config({HOSTILE: generic, **well_behaved()}))
    status = host.statuses()[HOSTILE]
    assert status["state"] == "failed"
    assert "hung in sensor.describe" in status["last_error"]


async def test_a_configure_that_fails_on_restart_is_backed_off_not_failed(
    make_config: MakeConfig, make_host: MakeHost, monotonic: Any
) -> None:
    host = make_host(make_config({HOSTILE: chaos(mode="panic"), **well_behaved()}))
    plugin = host.plugins[HOSTILE]
    await cycles(host, 1)  # traps: the next poll needs a new instance, which configure refuses
    plugin.spec = dataclasses.replace(plugin.spec, settings={"configure_mode": "trap"})
    monotonic.advance(10)
    await cycles(host, 1)
    status = host.statuses()[HOSTILE]
    assert status["state"] == "backoff", status
    assert status["traps"] == 2 and "configure" in status["last_error"]
    for _ in range(4):
        monotonic.advance(120)
        await cycles(host, 1)
    assert host.statuses()[HOSTILE]["state"] == "quarantined"
    # an operator reset revives it once its settings are fixed
    plugin.spec = dataclasses.replace(plugin.spec, settings={"mode": "counter"})
    plugin.reset()
    await cycles(host, 1)
    status = host.statuses()[HOSTILE]
    assert (status["state"], host.state.plugins[HOSTILE].error) == ("running", None)


async def test_an_operator_reset_revives_a_failed_plugin_or_says_why_not(
    make_config: MakeConfig, make_host: MakeHost, tmp_path: Path
) -> None:
    host = make_host(make_config({HOSTILE: chaos(configure_mode="trap"), **well_behaved()}))
    plugin = host.plugins[HOSTILE]
    assert plugin.state is PluginState.FAILED
    with pytest.raises(PluginError, match=r"trapped in settings\.configure"):
        plugin.reset()  # still failing: says why instead of answering "done"
    assert plugin.state is PluginState.FAILED
    plugin.spec = dataclasses.replace(plugin.spec, settings={"mode": "counter"})
    plugin.reset()
    assert plugin.state is PluginState.RUNNING
    await cycles(host, 1)
    assert host.statuses()[HOSTILE]["polls"] == 1


async def test_a_restore_blocked_after_a_trap_does_not_hold_the_cycle(
    make_config: MakeConfig, make_host: MakeHost, monotonic: Any
) -> None:
    plugin = chaos(mode="trap_on_poll", poll=2, restore_mode="sleep")
    host = make_host(make_config({HOSTILE: plugin, **well_behaved()}))
    host.plugins[HOSTILE].last_snapshot = b'{"polls": 7}'
    await cycles(host, 2)  # the second poll traps
    monotonic.advance(10)
    await cycles(host, 1)  # a new instance, whose restore blocks
    assert host.statuses()[HOSTILE]["state"] == "hung"
    assert host.statuses()[HOSTILE]["hung"]["call"] == "state.restore"
    assert_others_polled(host, 3)


# -- snapshots -----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sleep", "spin", "trap"])
async def test_snapshots_that_block_spin_or_trap_are_supervised(
    mode: str, make_config: MakeConfig, make_host: MakeHost, monotonic: Any
) -> None:
    hostile = {
        name: chaos(snapshot_mode=mode, led=index) | {"led": index}
        for name, index in (("snap1", 2), ("snap2", 3))
    }
    host = make_host(make_config({**hostile, **well_behaved()}))

    async def cycles_with_snapshots(count: int) -> None:
        for _ in range(count):
            await cycles(host, 1)
            await host.save_snapshots(force=True)  # as at every save interval, or shutdown

    await cycles_with_snapshots(1)
    for name in hostile:
        status = host.statuses()[name]
        if mode == "sleep":
            assert status["state"] == "hung" and status["hung"]["call"] == "state.snapshot"
        else:
            assert (status["state"], status["traps"]) == ("backoff", 1), status
            assert "snapshot" in status["last_error"]
    await cycles_with_snapshots(3)
    assert_others_polled(host, 4)
    if mode != "sleep":  # retried after the backoff, not every cycle
        assert all(host.statuses()[name]["traps"] == 1 for name in hostile)
        monotonic.advance(10)
        await cycles_with_snapshots(1)
        assert all(host.statuses()[name]["traps"] == 2 for name in hostile)


async def test_a_snapshot_for_a_reload_that_blocks_keeps_the_old_version(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    host = make_host(make_config({HOSTILE: chaos(snapshot_mode="sleep"), **well_behaved()}))
    plugin = host.plugins[HOSTILE]
    candidate = await asyncio.to_thread(plugin.prepare)
    with pytest.raises(PluginError, match=r"hung in state\.snapshot"):
        await asyncio.to_thread(plugin.swap, candidate)
    assert plugin.state is PluginState.HUNG


# -- crash loops -----------------------------------------------------------------------------
async def test_an_occasional_fault_is_not_a_crash_loop(
    make_config: MakeConfig, make_host: MakeHost, monotonic: Any
) -> None:
    host = make_host(make_config({HOSTILE: chaos(mode="flaky", every=10)}))
    for _ in range(100):  # 10 traps at a 2 s cadence, far more than quarantine_after
        monotonic.advance(2)
        await cycles(host, 1)
    status = host.statuses()[HOSTILE]
    assert status["traps"] > 2 * host.config.supervision.quarantine_after_traps
    assert status["state"] != "quarantined" and status["quarantines"] == 0
    assert status["polls"] == 100  # the backoff (1 s) never cost it a poll at a 2 s cadence


# -- the dashboard ---------------------------------------------------------------------------
async def test_a_render_blocked_in_a_wasi_wait_gets_the_fallback_page(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    config = make_config(
        {
            "dashboard": {"built": "hostile-dashboard", "timeout_ms": DEADLINE_MS},
            "select-sleep": {"built": "chaos", "world": "dht22-plugin"},
        }
    )
    host = make_host(config)
    await cycles(host, 1)
    async with TestClient(TestServer(create_app(host))) as client:
        first = await (await client.get(FRAME_URL)).text()
        await cycles(host, 1)
        second = await (await client.get(FRAME_URL)).text()  # a new cycle: renders again
    for page in (first, second):
        assert "Dashboard unavailable" in page and "hung in dashboard-logic.render" in page
    assert host.statuses()["dashboard"]["state"] == "hung"


# -- shutdown --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_sigterm_stops_the_host_whatever_the_plugins_do(
    built: dict[str, Path], tmp_path: Path, hostile_report: Report
) -> None:
    chaos_wasm = built["chaos"]
    config = tmp_path / "host.toml"
    config.write_text(
        f"""
[polling]
interval_seconds = 0.5
[web]
port = {free_port()}
[history]
path = "{tmp_path / "history.sqlite3"}"
[state]
dir = "{tmp_path / "state"}"
[plugins.sleeper]
wasm = "{chaos_wasm}"
world = "dht22-plugin"
timeout_ms = {DEADLINE_MS}
settings = {{ mode = "sleep", seconds = 600 }}
[plugins.snapshot-sleeper]
wasm = "{chaos_wasm}"
world = "dht22-plugin"
timeout_ms = {DEADLINE_MS}
settings = {{ snapshot_mode = "sleep", seconds = 600 }}
"""
    )
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "wasihost"), "run", "--config", str(config)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:  # wait until the sleeper is stuck in its poll
            if "hung in sensor-logic.poll" in line:
                break
        else:
            pytest.fail("the host ended before the plugin hung")
        process.send_signal(signal.SIGTERM)
        signalled = time.perf_counter()
        # A liveness bound, not a speed measurement: the guest sleeps for 600 s.
        rest, _ = process.communicate(timeout=60)
        stop_ms = (time.perf_counter() - signalled) * 1000
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
    assert "stopped" in rest
    assert "left running at shutdown" in rest  # said, not silently abandoned
    hostile_report("SIGTERM with 2 plugins sleeping 600 s", "stopped, exit 0", stop_ms)
