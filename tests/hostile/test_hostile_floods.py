"""Hostile suite, issue 14 class 4: floods.

A plugin must not be able to make the host write without bound (log lines,
tracebacks) or hold without bound (strings it returns), and what it prints
must not be able to disguise itself in the host log. Each attack runs next to
two well-behaved plugins, ``steady`` (``chaos`` in counter mode) and the seed
``dht22``, which must get a reading in every cycle, on every call path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host
from wasihost.runtime import calls

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]

PATHS = ["compiled", "typed", "generic"]
GOOD = ("steady", "dht22")
CHIP = 0x77  # the simulated BME680, granted to the hostile plugin


def well_behaved() -> dict[str, dict[str, Any]]:
    return {
        "steady": {"built": "chaos", "world": "dht22-plugin", "settings": {}, "led": 5},
        "dht22": {"led": 1},
    }


def hammer(calls_per_poll: int) -> dict[str, Any]:
    """``hostile-bus`` calling ``i2c.transfer`` on its granted chip in a loop, one poll."""
    return {
        "built": "hostile-bus",
        "world": "bme680-plugin",
        "grants": {"i2c_addresses": [CHIP]},
        "settings": {"granted": CHIP, "mode": "hammer", "calls": calls_per_poll},
        "timeout_ms": 2000,  # the attack is the log, not the deadline
    }


async def run_cycles(host: Host, cycles: int, before: Callable[[int], None]) -> None:
    for cycle in range(cycles):
        before(cycle)
        readings = await host.cycle.run_once()
        await host.after_cycle(readings)


def assert_good_polled(host: Host, cycles: int) -> None:
    """The well-behaved plugins polled and got a reading in every cycle."""
    assert host.state.cycle == cycles
    for name in GOOD:
        status = host.statuses()[name]
        assert (status["polls"], status["errors"], status["traps"]) == (cycles, 0, 0), status
        assert host.state.plugins[name].reading is not None


def transfer_failures(records: list[logging.LogRecord], plugin: str) -> list[logging.LogRecord]:
    return [r for r in records if r.getMessage().startswith(f"[{plugin}] host function transfer")]


# -- a capability failing inside the host on every call -------------------------------
CALLS = 1500


@pytest.mark.parametrize("path", PATHS)
async def test_a_board_failing_every_call_is_logged_once_per_kind_then_counted(
    path: str,
    make_config: MakeConfig,
    make_host: MakeHost,
    board: SimBoard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not the guest's fault (the board raises something no capability expects),
    so the guest gets "internal host error" each time; the log gets one traceback
    per kind, not one per call."""
    caplog.set_level(logging.INFO)
    board.set_dht22(21.0, 45.0)
    plugin = f"flooder-{path}"
    host = make_host(
        make_config({plugin: hammer(CALLS), **well_behaved()}, runtime={"call_path": path})
    )
    failures: list[Callable[[], Exception]] = [
        lambda: RuntimeError("bus wedged"),
        lambda: OSError(121, "Remote I/O error"),
    ]

    def failing(address: int, data: bytes, read_len: int) -> bytes:
        raise failures[0]()

    board.i2c_transfer = failing  # type: ignore[method-assign]

    def before(cycle: int) -> None:
        if cycle == 2:  # a new kind of failure from the third cycle on
            failures.reverse()

    await run_cycles(host, 4, before)

    assert_good_polled(host, 4)
    status = host.statuses()[plugin]
    assert (status["state"], status["traps"], status["errors"]) == ("running", 0, 4)
    assert (
        status["last_error"] == f"{CALLS} calls, {CALLS} refused (internal host error in transfer)"
    )
    logged = transfer_failures(caplog.records, plugin)
    assert [r.exc_info[0] for r in logged if r.exc_info] == [RuntimeError, OSError]
    assert len(logged) == 2  # one per kind, with its traceback; the rest only counted
    assert calls.host_failures(plugin).counts == {
        "transfer: RuntimeError": 2 * CALLS,
        "transfer: OSError": 2 * CALLS,
    }


def test_a_failure_that_goes_on_is_recalled_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    monkeypatch.setattr(calls.HostFailures, "clock", staticmethod(lambda: now[0]))
    failures = calls.HostFailures("steadily-failing")
    for second in range(0, 185):  # three minutes of failures, ten a second
        now[0] = float(second)
        for _ in range(10):
            failures.record("transfer", OSError(5, "I/O error"))
    failures.record("transfer", TypeError("no bytes"), bad_value=True)

    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5, lines
    assert lines[0] == (
        "[steadily-failing] host function transfer failed "
        "(logged once per function and kind, then counted)"
    )
    assert lines[1:4] == [
        f"[steadily-failing] host function transfer still failing (OSError): "
        f"600 times in the last 60 s ({count} in all)"
        for count in (601, 1201, 1801)
    ]
    assert lines[4].startswith("[steadily-failing] host function transfer returned a bad value")
    assert failures.counts == {"transfer: OSError": 1850, "transfer: bad value TypeError": 1}
    assert failures.total == 1851


# -- Unicode format characters in guest text ---------------------------------------------
# A right-to-left override makes "[good] ok gnp.exe" read differently than it is stored;
# zero-width characters hide text from a search or make two names look the same.
DISGUISE = (
    "ok \u202egnp.exe\u202c \u2066x\u2069 a\u200bb\u200dc\u2060d\ufeff \U000e0041 \u061c\u00ad"
)
FORMAT_ESCAPED = (
    "ok \\u202egnp.exe\\u202c \\u2066x\\u2069 a\\u200bb\\u200dc\\u2060d\\ufeff "
    "\\U000e0041 \\u061c\\xad"
)


def test_format_characters_are_escaped_like_control_characters() -> None:
    import sys
    import unicodedata

    assert calls.printable(DISGUISE) == FORMAT_ESCAPED
    unseen = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp")
        and calls.printable(chr(code)) == chr(code)
    ]
    assert unseen == []  # every control, format and line/paragraph separator
    assert calls.printable("21.5 °C, naïve, 温度 ☃ \\ 'q'") == "21.5 °C, naïve, 温度 ☃ \\ 'q'"


@pytest.mark.parametrize("path", PATHS)
async def test_format_characters_in_guest_output_and_errors_are_escaped(
    path: str,
    make_config: MakeConfig,
    make_host: MakeHost,
    board: SimBoard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    board.set_dht22(21.0, 45.0)
    printer = {"built": "chaos", "world": "dht22-plugin", "settings": {"say": DISGUISE}}
    erring = {**hammer(0), "settings": {"mode": "markup_error", "markup": DISGUISE}}
    host = make_host(
        make_config(
            {"printer": printer, "erring": erring, **well_behaved()},
            runtime={"call_path": path},
        )
    )
    await run_cycles(host, 2, lambda cycle: None)

    assert_good_polled(host, 2)
    printed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[printer] ok")]
    assert printed == [f"[printer] {FORMAT_ESCAPED} {polls}" for polls in (1, 2)]
    assert host.statuses()["erring"]["last_error"] == FORMAT_ESCAPED
    for record in caplog.records:
        assert calls.printable(record.getMessage()) == record.getMessage(), record.getMessage()


# -- strings the guest sends, bounded before they cost the host -------------------------
def peak_rss_growth() -> Callable[[], int]:
    """Reset the process's peak resident set (Linux: ``clear_refs``); the returned
    function gives the growth of the peak since, in bytes."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError as exc:
        pytest.skip(f"cannot reset the peak RSS here: {exc}")

    def peak() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/self/status")

    start = peak()
    return lambda: peak() - start


def renderer(mode: str, **limits: Any) -> dict[str, dict[str, Any]]:
    """``hostile-dashboard`` as the dashboard, its attack selected by a sensor plugin's name."""
    return {
        "dashboard": {"built": "hostile-dashboard", "world": "dashboard-plugin", **limits},
        f"select-{mode}": {"built": "chaos", "world": "dht22-plugin", "settings": {}},
    }


PAGE_BYTES = 120_000_000  # hostile-dashboard "flood": a page just under wasmtime's 128 MiB
# The floor, measured at 497 MB for this page: the guest's two copies of it in its own
# memory and the two wasmtime makes when it lifts the result (its C API hands a string
# over whole; a string over 128 MiB traps in wasmtime itself). Decoding it into Python
# as well took the generic path to 617 MB; the typed paths' decode came after wasmtime
# had freed its copies, so it added to the time and the garbage, not to the peak.
HOST_OVERHEAD_BOUND = 60_000_000


@pytest.mark.parametrize("path", PATHS)
async def test_a_120_mb_page_is_refused_before_it_is_decoded(
    path: str, make_config: MakeConfig, make_host: MakeHost, board: SimBoard
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from wasihost.web.server import create_app
    from wasihost.web.shell import FRAME_URL

    board.set_dht22(21.0, 45.0)
    host = make_host(
        make_config(
            {**renderer("flood", max_memory_mb=512, timeout_ms=2000), **well_behaved()},
            runtime={"call_path": path},
        )
    )
    await run_cycles(host, 1, lambda cycle: None)
    async with TestClient(TestServer(create_app(host))) as client:
        growth = peak_rss_growth()
        response = await client.get(FRAME_URL)
        page = await response.text()
        grown = growth()
    assert response.status == 200
    assert "Dashboard unavailable" in page
    assert (
        f"dashboard-logic.render: the returned page is over {calls.MAX_PAGE_CHARS} characters "
        f"({PAGE_BYTES} bytes of UTF-8, refused as lifted)"
    ) in page
    assert len(page) < 100_000
    assert grown < 4 * PAGE_BYTES + HOST_OVERHEAD_BOUND, f"peak RSS grew {grown / 1e6:.0f} MB"
    assert host.statuses()["dashboard"]["state"] == "running"  # refused, not trapped
    await run_cycles(host, 1, lambda cycle: None)
    assert_good_polled(host, 2)


def test_a_page_under_the_cap_in_characters_is_not_refused_for_its_bytes(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    """1 999 000 characters of 3-byte UTF-8: 6 MB, but under 2 M characters."""
    host = make_host(make_config(renderer("wide"), runtime={"call_path": "compiled"}))
    state = '{"readings": {"select-wide": {}}}'
    page = host.plugins["dashboard"].call(state)
    assert len(page) == 1_999_000 and len(page.encode()) == 5_996_994
