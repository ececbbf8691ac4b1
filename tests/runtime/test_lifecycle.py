"""The plugin lifecycle: the transition table itself, and the one restore-failure policy.

The first half tests runtime/lifecycle.py without wasm: every state can be
reached, ``stopped`` is the only way out and nothing leaves it, a step the
table does not list is refused, and plugin.py changes its state nowhere but
through the table. The second half runs the chaos plugin through each path
that restores saved state (start, restart after a trap, reset, new version)
with a ``restore`` that refuses, traps or blocks.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasihost.config import HostConfig
from wasihost.errors import PluginError, PluginTrap
from wasihost.host import Host
from wasihost.runtime import lifecycle
from wasihost.runtime import plugin as plugin_module
from wasihost.runtime.lifecycle import (
    INITIAL,
    TRANSITIONS,
    Event,
    ImpossibleTransition,
    PluginState,
    settle,
    transition,
)
from wasihost.runtime.plugin import Plugin

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]

S = PluginState
SAVED = b'{"polls": 7}'  # the chaos plugin's state: its poll counter


# -- the table ---------------------------------------------------------------------------
def test_the_docstring_shows_the_table_the_code_uses() -> None:
    shown = "\n".join("    " + line for line in lifecycle.table().splitlines())
    assert lifecycle.__doc__ is not None and shown in lifecycle.__doc__


def test_every_state_is_reachable_from_the_first() -> None:
    seen, todo = {INITIAL}, deque([INITIAL])
    while todo:
        state = todo.popleft()
        for (source, _), target in TRANSITIONS.items():
            if source is state and target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(PluginState)


def test_every_event_is_a_step_somewhere() -> None:
    assert {event for _, event in TRANSITIONS} == set(Event)


def test_stopped_is_the_only_terminal_state_and_nothing_leaves_it() -> None:
    for state in PluginState:
        exits = {target for (source, _), target in TRANSITIONS.items() if source is state}
        if state is S.STOPPED:
            assert exits == {S.STOPPED}
        else:
            assert exits - {state}, f"{state} is a dead end"
            assert transition(state, Event.CLOSED) is S.STOPPED  # shutdown from anywhere
    for event in Event:
        if event is Event.CLOSED:
            assert transition(S.STOPPED, event) is S.STOPPED  # closing twice is harmless
        else:
            with pytest.raises(ImpossibleTransition):
                transition(S.STOPPED, event)


def test_a_step_the_table_does_not_list_is_refused() -> None:
    missing = [(s, e) for s in PluginState for e in Event if (s, e) not in TRANSITIONS]
    assert len(missing) == len(PluginState) * len(Event) - len(TRANSITIONS)
    for state, event in missing:
        with pytest.raises(ImpossibleTransition) as refused:
            transition(state, event, "p")
        assert isinstance(refused.value, PluginError)  # handled as one plugin's failure
        assert refused.value.reason == f"lifecycle bug: no transition from {state} on {event}"
    # A few that would be real bugs: a reset must first leave a hung call to its
    # thread, a quarantined plugin is never called, a version cannot go live mid-load.
    for state, event in [
        (S.HUNG, Event.RESET),
        (S.HUNG, Event.NEW_VERSION),
        (S.QUARANTINED, Event.CALL_OK),
        (S.BACKOFF, Event.TRAP),
        (S.LOADING, Event.NEW_VERSION),
        (S.RUNNING, Event.LOADED),
    ]:
        assert (state, event) in missing


def test_settle_applies_the_clock_and_the_hang_no_code_fires() -> None:
    assert settle(S.BACKOFF, hung=False, backoff_over=True) is S.RUNNING
    assert settle(S.BACKOFF, hung=False, backoff_over=False) is S.BACKOFF
    assert settle(S.RUNNING, hung=True, backoff_over=True) is S.HUNG
    assert settle(S.BACKOFF, hung=True, backoff_over=True) is S.HUNG  # restart, then hung
    for state in (S.QUARANTINED, S.FAILED, S.LOADING, S.STOPPED):
        assert settle(state, hung=True, backoff_over=True) is state


def test_plugin_py_changes_its_state_only_through_the_table() -> None:
    """``self._state =`` appears in ``__init__`` and ``_step`` only."""
    tree = ast.parse(Path(plugin_module.__file__).read_text(encoding="utf-8"))
    writers = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef):
            for node in ast.walk(function):
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AugAssign | ast.AnnAssign):
                    targets = [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and target.attr == "_state":
                        writers.add(function.name)
    assert writers == {"__init__", "_step"}
    assert Plugin.state.fset is None  # and ``state`` has no setter


# -- the table in a plugin -------------------------------------------------------------------
def chaos(**settings: Any) -> dict[str, Any]:
    return {"built": "chaos", "world": "dht22-plugin", "settings": settings}


def test_an_impossible_step_is_refused_loudly_and_changes_nothing(
    make_config: MakeConfig, make_host: MakeHost, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = make_host(make_config({"p": chaos()})).plugins["p"]
    with pytest.raises(ImpossibleTransition, match="no transition from running on loaded"):
        plugin._move(Event.LOADED)
    assert plugin.state is S.RUNNING
    assert plugin.call()["poll_count"] == 1
    bug = [r for r in caplog.records if "lifecycle bug" in r.getMessage()]
    assert len(bug) == 1 and bug[0].levelno == logging.ERROR and bug[0].stack_info


def test_nothing_revives_a_stopped_plugin(make_config: MakeConfig, make_host: MakeHost) -> None:
    host = make_host(make_config({"p": chaos(configure_mode="trap")}))
    plugin = host.plugins["p"]
    assert plugin.state is S.FAILED
    assert plugin.close() and plugin.close()  # twice is harmless
    plugin.spec = dataclasses.replace(plugin.spec, settings={})
    with pytest.raises(ImpossibleTransition, match="from stopped on reset"):
        plugin.reset()  # refused before it loads anything
    assert plugin.state is S.STOPPED and plugin.loaded_sha256 is None


def test_each_state_change_is_logged_once(
    make_config: MakeConfig,
    make_host: MakeHost,
    monotonic: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wasihost.plugin")
    config = make_config({"p": chaos(mode="panic")}, supervision={"quarantine_after_traps": 2})
    plugin = make_host(config).plugins["p"]
    for _ in range(2):
        with pytest.raises(PluginTrap):
            plugin.call()
        monotonic.advance(10)  # past the backoff, within the crash-loop window
    plugin.reset()
    lines = [r for r in caplog.records if r.name == "wasihost.plugin" and " -> " in r.getMessage()]
    assert [r.getMessage().split(":")[0] for r in lines] == [
        "[p] loading -> running (loaded)",
        "[p] running -> backoff (trap)",
        "[p] running -> quarantined (crash-loop)",
        "[p] quarantined -> running (reset)",
    ]
    assert lines[2].levelno == logging.ERROR  # the crash loop is what an operator must see


# -- one restore-failure policy, on every path ---------------------------------------------
def save_state(config: HostConfig, name: str, data: bytes = SAVED) -> None:
    folder = Path(config.state.dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.state").write_bytes(data)


def assert_went_on_fresh(plugin: Plugin, failures: int, reason: str) -> None:
    """The policy when nothing else holds the state: fresh instance, bytes kept, said."""
    status = plugin.status()
    assert (status["state"], status["restore_failures"]) == ("running", failures)
    assert reason in str(status["restore_error"])
    assert plugin.last_snapshot == SAVED


RESTORE_FAILURES = [("refuse", "refusing this snapshot"), ("trap", "trapped in state.restore")]


@pytest.mark.parametrize(("mode", "reason"), RESTORE_FAILURES)
def test_start_goes_on_fresh_and_keeps_the_saved_state(
    make_config: MakeConfig, make_host: MakeHost, mode: str, reason: str
) -> None:
    config = make_config({"p": chaos(restore_mode=mode)})
    save_state(config, "p")
    plugin = make_host(config).plugins["p"]
    assert_went_on_fresh(plugin, 1, reason)
    assert plugin.call()["poll_count"] == 1  # fresh
    # Kept, so once the plugin takes it (here: fixed settings) a reset restores it.
    plugin.spec = dataclasses.replace(plugin.spec, settings={})
    plugin.reset()
    assert plugin.call()["poll_count"] == 8
    assert plugin.status()["restore_error"] is None


def test_a_start_that_fails_keeps_the_saved_state_for_the_reset(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    """Before: a reset loaded a failed plugin without the state it was started with."""
    config = make_config({"p": chaos(configure_mode="trap")})
    save_state(config, "p")
    plugin = make_host(config).plugins["p"]
    assert plugin.state is S.FAILED and plugin.last_snapshot == SAVED
    plugin.spec = dataclasses.replace(plugin.spec, settings={})
    plugin.reset()
    assert plugin.call()["poll_count"] == 8


def test_a_start_whose_restore_hangs_fails_and_keeps_the_saved_state(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    """A hang is a hang (the start fails, as a blocked configure does), not a
    failed restore: nothing is counted as one, and the bytes stay."""
    config = make_config({"p": {**chaos(restore_mode="sleep", seconds=1), "timeout_ms": 100}})
    save_state(config, "p")
    plugin = make_host(config).plugins["p"]
    status = plugin.status()
    assert status["state"] == "failed" and "hung in state.restore" in status["last_error"]
    assert (status["restore_failures"], plugin.last_snapshot) == (0, SAVED)
    give_up = time.monotonic() + 30
    while plugin._retired:  # the new version's thread returns and frees it
        assert time.monotonic() < give_up
        time.sleep(0.02)


@pytest.mark.parametrize(("mode", "reason"), RESTORE_FAILURES)
def test_a_restart_after_a_trap_goes_on_fresh_and_keeps_the_snapshot(
    make_config: MakeConfig, make_host: MakeHost, monotonic: Any, mode: str, reason: str
) -> None:
    config = make_config({"p": chaos(mode="trap_on_poll", poll=2, restore_mode=mode)})
    plugin = make_host(config).plugins["p"]
    assert plugin.call()["poll_count"] == 1
    plugin.last_snapshot = SAVED
    with pytest.raises(PluginTrap):
        plugin.call()
    monotonic.advance()
    assert plugin.call()["poll_count"] == 1  # fresh (restored, it would be 8)
    assert_went_on_fresh(plugin, 1, reason)
    assert plugin.stats.restarts == 1 and plugin.stats.traps == 1  # a failed restore is no trap


@pytest.mark.parametrize(("mode", "reason"), RESTORE_FAILURES)
def test_a_reset_goes_on_fresh_and_keeps_the_snapshot(
    make_config: MakeConfig, make_host: MakeHost, mode: str, reason: str
) -> None:
    plugin = make_host(make_config({"p": chaos(restore_mode=mode)})).plugins["p"]
    plugin.call()
    plugin.last_snapshot = SAVED
    plugin.reset()
    assert_went_on_fresh(plugin, 1, reason)
    assert plugin.call()["poll_count"] == 1
    plugin.reset()  # tried again: the bytes were kept
    assert_went_on_fresh(plugin, 2, reason)


def rebuilt(wasm: bytes) -> bytes:
    """The same component with a custom section appended: a new file, same logic."""
    name = b"wasihost-test"
    payload = bytes([len(name)]) + name + b"v2"
    return wasm + b"\x00" + bytes([len(payload)]) + payload


def deploy(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_bytes(data)
    os.replace(partial, path)


@pytest.mark.parametrize(("mode", "reason"), RESTORE_FAILURES)
async def test_a_new_version_that_cannot_take_the_state_is_refused(
    make_config: MakeConfig,
    make_host: MakeHost,
    built: dict[str, Path],
    tmp_path: Path,
    mode: str,
    reason: str,
) -> None:
    """Here the live version still has the state: it keeps running with it."""
    target = tmp_path / "p.wasm"
    deploy(target, built["chaos"].read_bytes())
    host = make_host(make_config({"p": {**chaos(restore_mode=mode), "wasm": str(target)}}))
    plugin = host.plugins["p"]
    for _ in range(3):
        plugin.call()
    deploy(target, rebuilt(built["chaos"].read_bytes()))
    assert await host.reloader.reload("p") is False
    status = plugin.status()
    assert "failed to restore state" in status["reload_error"] and reason in status["reload_error"]
    assert (status["restore_failures"], status["restore_error"]) == (1, None)
    assert plugin.last_snapshot == b'{"polls": 3}'
    assert plugin.call()["poll_count"] == 4  # the old version, its state intact


async def test_a_new_version_of_a_plugin_that_never_started_gets_its_saved_state(
    make_config: MakeConfig, make_host: MakeHost, built: dict[str, Path], tmp_path: Path
) -> None:
    """Before: the fixed version went live fresh, and the next save wrote over the state."""
    target = tmp_path / "p.wasm"
    deploy(target, built["chaos"].read_bytes())
    config = make_config({"p": {**chaos(configure_mode="trap"), "wasm": str(target)}})
    save_state(config, "p")
    host = make_host(config)
    plugin = host.plugins["p"]
    assert plugin.state is S.FAILED
    plugin.spec = dataclasses.replace(plugin.spec, settings={})
    deploy(target, rebuilt(built["chaos"].read_bytes()))
    assert await host.reloader.reload("p") is True
    assert plugin.status()["last_reload"]["state"] == "carried"
    assert plugin.call()["poll_count"] == 8
