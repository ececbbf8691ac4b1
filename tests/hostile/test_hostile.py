"""The hostile-plugin suite (issue 5): every attack next to well-behaved plugins.

Each row of ``ATTACKS`` runs one hostile plugin, built for a real world
(``chaos`` and ``hostile-bus`` for the sensor worlds, ``hostile-dashboard`` for
the renderer), in one host on the seeded simulated board together with two
well-behaved plugins: ``steady`` (``chaos`` in counter mode, LED 5) and the
seed ``dht22`` (LED 1), plus the seed dashboard. The test then checks that

* the host stays up: every cycle completes,
* the well-behaved plugins are polled in every cycle and their readings land,
* the attack is visible in ``host.statuses()["hostile"]``,
* nothing outside the grants happened on the board: LEDs, buzzer, fan, GPIO
  pins and I2C addresses (the board's ``i2c_transfer`` and ``read_dht22`` are
  wrapped to record every access that reached it),
* the app state stays publishable JSON (no NaN) and the dashboard still renders,
* the host log stays bounded.

``PAGE_ATTACKS`` does the same for the renderer: ``hostile-dashboard`` replaces
the seed dashboard (the dashboard world has no settings, so a sensor plugin
named ``select-<mode>`` picks its misbehaviour) and ``GET /`` is requested
through aiohttp's test client while a poll cycle runs.

"Time to recover" is measured, not asserted (no timing assertions in this
project): the wall time from the start of the attack cycle until the
well-behaved plugins' next reading has been recorded in the app state. It is
reported with the outcome of each attack in the table ``conftest.py`` prints
at the end of the run. Host weaknesses the attacks reveal are written as
strict xfails whose reason says what is wrong.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from wasihost.boards.base import OFF, Color
from wasihost.boards.sim import SimBoard
from wasihost.capabilities.buzzer_controller import MAX_BEEPS
from wasihost.capabilities.i2c import MAX_READ_LEN
from wasihost.config import HostConfig
from wasihost.cycle import FAULT_COLOR
from wasihost.host import Host
from wasihost.runtime.guest_log import MAX_LINE
from wasihost.web.server import CSP, create_app
from wasihost.web.shell import FRAME_URL

MakeConfig = Callable[..., HostConfig]
Report = Callable[[str, str, float | None], None]

HOSTILE = "hostile"
HOSTILE_LED = 3
GOOD_LEDS = {"steady": 5, "dht22": 1}
GOOD = tuple(GOOD_LEDS)
DHT22_PIN = 4  # the seed dht22's grant ([sensors.dht22] gpio_pin)
CHIP = 0x77  # the simulated BME680
ROOM = (21.0, 45.0)  # pinned DHT22 reading: no alarm, so the seed dht22 never beeps
ROOM_COLOR: Color = (0, 200, 0)  # the seed dht22's comfort colour at 21 °C
SECRET = "hunter2-do-not-leak"
DEADLINE_MS = 200
MAX_HOSTILE_LOG_LINES = 200
MAX_HOSTILE_LOG_CHARS = 150_000


def spaced(number: int) -> str:
    """98 400 rather than 98,400 or 98400."""
    return f"{number:,}".replace(",", " ")


def steady_color(polls: int) -> Color:
    """What ``chaos`` in counter mode with ``led`` writes on its ``polls``-th poll."""
    return (10 * polls % 256, 20, 30)


def chaos(**settings: Any) -> dict[str, Any]:
    return {"built": "chaos", "world": "dht22-plugin", "settings": settings}


def bus(**settings: Any) -> dict[str, Any]:
    """``hostile-bus`` granted the simulated BME680's address, as a driver would be."""
    return {
        "built": "hostile-bus",
        "world": "bme680-plugin",
        "grants": {"i2c_addresses": [CHIP]},
        "settings": {"granted": CHIP, **settings},
    }


# -- what one attack run observed -----------------------------------------------------
@dataclass
class BusLog:
    """Every access that reached the board's I2C bus and GPIO pins."""

    i2c: list[tuple[int, int, int]] = field(default_factory=list)  # address, written, read_len
    pins: list[int] = field(default_factory=list)

    def attach(self, board: SimBoard) -> None:
        transfer, read_dht22 = board.i2c_transfer, board.read_dht22

        def recording_transfer(address: int, data: bytes, read_len: int) -> bytes:
            self.i2c.append((address, len(data), read_len))
            return transfer(address, data, read_len)

        def recording_read(pin: int) -> Any:
            self.pins.append(pin)
            return read_dht22(pin)

        board.i2c_transfer = recording_transfer  # type: ignore[method-assign]
        board.read_dht22 = recording_read  # type: ignore[method-assign]


class ReadingWatch:
    """When each plugin's readings were recorded in the app state (perf_counter)."""

    def __init__(self, host: Host) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        record = host.state.record_reading

        def recording(reading: Any) -> None:
            record(reading)
            self.times[reading.plugin].append(time.perf_counter())

        host.state.record_reading = recording  # type: ignore[method-assign]

    def count(self, plugin: str) -> int:
        return len(self.times[plugin])

    def recovered_ms(self, since: float, plugins: tuple[str, ...] = GOOD) -> float:
        """From ``since`` until every plugin in ``plugins`` had a reading recorded."""
        firsts = [next(t for t in self.times[p] if t >= since) for p in plugins]
        return (max(firsts) - since) * 1000


@dataclass
class Run:
    host: Host
    board: SimBoard
    bus: BusLog
    cycles: int
    logs: list[logging.LogRecord]
    page: str = ""
    connections: list[Any] = field(default_factory=list)

    @property
    def status(self) -> dict[str, Any]:
        return self.host.statuses()[HOSTILE]

    @property
    def last_error(self) -> str:
        return str(self.status["last_error"])

    def hostile_lines(self) -> list[str]:
        return [r.getMessage() for r in self.logs if f"[{HOSTILE}]" in r.getMessage()]


@dataclass(frozen=True)
class Attack:
    name: str
    plugin: dict[str, Any]
    check: Callable[[Run], str]  # asserts what the host shows; returns the outcome
    cycles: int = 3
    advance_s: float = 0.0  # fake monotonic time between cycles (lets backoff pass)
    supervision: dict[str, Any] = field(default_factory=dict)
    listen: bool = False  # a local TCP server the plugin is told to connect to
    bug: str | None = None  # a host bug: xfail(strict) with this reason
    bug_check: Callable[[Run], None] | None = None  # asserts the fixed behaviour


# -- per-attack checks ------------------------------------------------------------------
def trapped(cause: str, needle: str) -> Callable[[Run], str]:
    def check(run: Run) -> str:
        status = run.status
        assert status["traps"] == run.cycles, status
        assert needle in run.last_error, run.last_error
        assert status["state"] == "backoff"  # the last trap's backoff is still running
        assert status["restarts"] == run.cycles - 1  # each poll ran on a fresh instance
        return f"trapped: {cause} ({status['traps']} polls, backoff)"

    return check


def errored(needle: str, outcome: str) -> Callable[[Run], str]:
    """The guest's own error result, every poll; the instance stays alive."""

    def check(run: Run) -> str:
        status = run.status
        assert status["state"] == "running"
        assert status["traps"] == 0
        assert status["errors"] == run.cycles
        assert needle in run.last_error, run.last_error
        return outcome

    return check


def check_loop(run: Run) -> str:
    trapped("deadline", "interrupt")(run)
    return f"trapped at its {DEADLINE_MS} ms deadline, each of {run.cycles} polls"


def check_crash_loop(run: Run) -> str:
    status = run.status
    assert status["traps"] == 3  # polled until quarantined, never again
    assert status["polls"] == 3
    assert status["state"] == "quarantined"
    assert status["quarantines"] == 1
    assert run.board.leds[HOSTILE_LED] in (FAULT_COLOR, OFF)  # blinking on its own LED
    return f"quarantined after 3 traps; LED {HOSTILE_LED} blinks, not polled for 2 cycles"


def check_allocate(run: Run) -> str:
    trapped("memory", "unreachable")(run)
    assert any("MemoryError" in line for line in run.hostile_lines())
    return "trapped: MemoryError at its 48 MB cap (backoff)"


def check_list_root(run: Run) -> str:
    errored("list", "")(run)
    assert run.last_error in ("listed: []", "listdir failed: FileNotFoundError")
    return f"error: {run.last_error}"


def check_environment(run: Run) -> str:
    assert run.last_error == "env={} argv=[]"
    assert SECRET not in json.dumps(run.host.snapshot())
    return "error: sees env={} argv=[]"


def check_socket(run: Run) -> str:
    errored("connect failed", "")(run)
    assert run.connections == []
    return f"error: {run.last_error}; no connection"


def check_flood(run: Run) -> str:
    status = run.status
    limit = 120  # the default max_log_lines_per_minute
    printed = [line for line in run.hostile_lines() if line.startswith(f"[{HOSTILE}] xxx")]
    assert len(printed) == limit
    assert status["dropped_log_lines"] == run.cycles * 2000 - limit
    return f"logged {limit} lines, dropped {spaced(status['dropped_log_lines'])}"


def check_many_lines(run: Run) -> str:
    """Each chunk of output is a host callback: a print loop mostly ends at the deadline."""
    status = run.status
    assert status["traps"] + status["errors"] <= run.cycles
    printed = [line for line in run.hostile_lines() if line.startswith(f"[{HOSTILE}] xxx")]
    assert len(printed) == 120
    dropped = status["dropped_log_lines"]
    assert dropped > 0
    traps = f"{status['traps']}/{run.cycles}"
    return f"{traps} polls hit the deadline; logged 120 lines, dropped {spaced(dropped)}"


def check_long_line(run: Run) -> str:
    printed = [line for line in run.hostile_lines() if line.startswith(f"[{HOSTILE}] xxx")]
    assert len(printed) == run.cycles  # one (cut) line per poll
    assert all(len(line) <= MAX_LINE + 50 for line in printed)
    return f"each 10 MB line cut to {MAX_LINE} characters"


def check_leds(run: Run) -> str:
    errored("LED writes: 4 of 4 refused", "")(run)
    assert run.status["refused_by_kind"] == {"led": 4 * run.cycles}
    # set_all reached its own LED only; the refused set_two wrote neither LED.
    assert run.board.leds[HOSTILE_LED] == (255, 255, 255)
    return f"refused: {4 * run.cycles} writes to LED 1 / 2**32-1 (own LED only)"


def check_gpio(run: Run) -> str:
    errored("read 28 pins: 0 answered (GPIO 0 is not granted to hostile)", "")(run)
    assert run.status["refused_by_kind"] == {"gpio": 28 * run.cycles}
    return "refused: GPIO 0..27 not granted (incl. dht22's pin 4)"


def check_probe(run: Run) -> str:
    errored("probed 2: answered [], refused 2", "")(run)
    assert run.status["refused_by_kind"] == {"i2c": 2 * run.cycles}
    return "refused: I2C 0x76, 0x50 not granted"


def check_scan(run: Run) -> str:
    errored("probed 128: answered ['0x77'], refused 127", "")(run)
    assert run.status["refused_by_kind"] == {"i2c": 127 * run.cycles}
    return "refused: 127 of 128 addresses (only 0x77 granted)"


def check_huge_read(run: Run) -> str:
    errored("huge reads", "")(run)
    assert run.status["refused_by_kind"] == {"i2c-size": 3 * run.cycles}
    assert all(read_len <= MAX_READ_LEN for _, _, read_len in run.bus.i2c)
    return f"refused: reads over {MAX_READ_LEN} bytes"


def check_garbage(run: Run) -> str:
    errored("garbage", "")(run)
    reasons = run.last_error
    assert "burst write needs register/value pairs" in reasons
    assert "I2C write must start with a register address" in reasons
    return "within grant: 2 writes taken, 2 rejected by the chip"


def check_bus_hog(run: Run) -> str:
    trapped("deadline", "interrupt")(run)
    transfers = len(run.bus.i2c) // run.cycles
    return f"trapped at its {DEADLINE_MS} ms deadline after ~{transfers} transfers/poll"


def check_huge_write(run: Run) -> str:
    """Refused before the bus; converting 2 MB still costs the guest's own call time
    (wasmtime-py lowers list<u8> byte by byte before the host sees it)."""
    assert all(written <= MAX_READ_LEN for _, written, _ in run.bus.i2c)
    assert run.status["refused_by_kind"].get("i2c-size", 0) >= 1
    poll_ms = run.status["last_poll_ms"]
    return f"refused: write over 4096 bytes (never on the bus; the call took {poll_ms:.0f} ms)"


def check_huger_write(run: Run) -> str:
    trapped("hostcall fuel", "fuel allocated for hostcalls has been exhausted")(run)
    assert run.bus.i2c == []
    return "trapped: wasmtime hostcall fuel (nothing reached the bus)"


def check_beep(run: Run) -> str:
    status = run.status
    assert len(run.board.beeps) == 6  # the default max_actuator_changes_per_minute
    assert status["refused_by_kind"] == {"buzzer-rate": run.cycles - 6}
    assert all(beep.count <= MAX_BEEPS for beep in run.board.beeps)
    return f"6 beeps, then refused by the rate limit ({run.cycles - 6} refused)"


def measurement_names(run: Run) -> dict[str, float]:
    reading = run.host.state.to_json()["readings"][HOSTILE]
    return {m["name"]: m["value"] for m in reading["measurements"]}


def check_nan(run: Run) -> str:
    names = measurement_names(run)
    assert "temperature" not in names and "humidity" not in names
    return "NaN/inf dropped; the rest published"


def check_absurd(run: Run) -> str:
    names = measurement_names(run)
    assert "pressure" not in names and "gas_resistance" not in names  # NaN, inf
    status = run.host.state.to_json()["readings"][HOSTILE]["status"]
    assert status["poll_count"] == 2**32 - 1
    shown = ", ".join(f"{k} {v:.3g}" for k, v in sorted(names.items()))
    return f"published as-is: {shown}; NaN/inf dropped"


def check_huge_error(run: Run) -> str:
    errored("chars cut]", "")(run)
    assert len(run.last_error) < 600
    assert len(json.dumps(run.host.snapshot())) < 64_000
    return f"error of 10 MB cut to {len(run.last_error)} characters"


MARKUP = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"


def check_markup(run: Run) -> str:
    errored(MARKUP, "")(run)
    assert MARKUP not in run.page and "<script>alert(" not in run.page
    return "error shown escaped on the dashboard"


FORGED = "no reading\nERROR wasihost.host: [dht22] quarantined after repeated traps"


def check_forged(run: Run) -> str:
    errored(FORGED.replace("\n", "\\n"), "")(run)  # shown escaped, on one line
    assert [line for line in run.hostile_lines() if "\n" in line] == []
    return "error escaped: no forged log line"


ESCAPES = "\x1b[2K\rINFO wasihost.host: all plugins healthy"


def check_escapes(run: Run) -> str:
    assert run.status["errors"] == 0
    assert [line for line in run.hostile_lines() if "\x1b" in line or "\r" in line] == []
    assert any("\\x1b[2K\\rINFO" in line for line in run.hostile_lines())  # shown escaped
    return "ESC/CR escaped in the host log"


def check_snapshot(run: Run) -> str:
    """Reported, not asserted: the host has no snapshot size policy to check against."""
    status = run.status
    assert (status["traps"], status["errors"]) == (0, 0)
    saved = Path(run.host.config.state.dir) / f"{HOSTILE}.state"
    size = saved.stat().st_size if saved.exists() else 0
    if size > 1_000_000:
        return f"{size / 1e6:.0f} MB written to disk per save interval (no size cap)"
    return f"not written ({size} bytes on disk)"


ATTACKS = [
    Attack(
        "loop forever",
        {**chaos(mode="loop"), "timeout_ms": DEADLINE_MS},
        check_loop,
        advance_s=10,
    ),
    Attack(
        "allocate without end",
        {**chaos(mode="allocate"), "max_memory_mb": 48},
        check_allocate,
        advance_s=10,
    ),
    Attack("recurse without end", chaos(mode="recurse"), trapped("stack", "stack"), advance_s=10),
    Attack(
        "unhandled exception",
        chaos(mode="panic"),
        trapped("unhandled exception", "unreachable"),
        advance_s=10,
    ),
    Attack(
        "trap in every poll",
        chaos(mode="panic"),
        check_crash_loop,
        cycles=5,
        advance_s=10,
        supervision={"quarantine_after_traps": 3},
    ),
    Attack(
        "open a host file",
        chaos(mode="open_file", path="/etc/passwd"),
        errored("open failed: FileNotFoundError", "error: open failed: FileNotFoundError"),
    ),
    Attack(
        "list a directory",
        chaos(mode="list_root"),
        check_list_root,
    ),
    Attack("read the environment", chaos(mode="environment"), check_environment),
    Attack("open a socket", chaos(mode="socket"), check_socket, listen=True),
    Attack("print 2 MB per poll", chaos(mode="flood", lines=2000, width=1000), check_flood),
    Attack(
        "print 100 000 lines per poll",
        chaos(mode="flood", lines=100_000, width=10),
        check_many_lines,
        advance_s=10,
    ),
    Attack("print a 10 MB line", chaos(mode="flood", lines=1, width=10_000_000), check_long_line),
    Attack("chatter the buzzer", chaos(mode="beep"), check_beep, cycles=10),
    Attack("write others' LEDs", {**bus(mode="leds", other_led=1)}, check_leds),
    Attack("read GPIO pins", bus(mode="gpio"), check_gpio),
    Attack("probe I2C 0x76, 0x50", bus(mode="probe", addresses=[0x76, 0x50]), check_probe),
    Attack("scan I2C 0x00-0x7f", bus(mode="scan"), check_scan),
    Attack(
        "oversized I2C reads",
        bus(mode="huge_read", read_lens=[4097, 10**6, 2**32 - 1]),
        check_huge_read,
    ),
    Attack("garbage to granted chip", bus(mode="garbage"), check_garbage),
    Attack(
        "hog the I2C bus",
        {**bus(mode="bus_hog"), "timeout_ms": DEADLINE_MS},
        check_bus_hog,
        advance_s=10,
    ),
    Attack(
        "2 MB I2C write",
        {**bus(mode="huge_write", size=2_000_000), "timeout_ms": DEADLINE_MS},
        check_huge_write,
        cycles=2,
        advance_s=10,
    ),
    Attack(
        "8 MB I2C write",
        {**bus(mode="huge_write", size=8_000_000), "timeout_ms": DEADLINE_MS},
        check_huger_write,
        cycles=2,
        advance_s=10,
    ),
    Attack("NaN and inf readings", chaos(mode="nan"), check_nan),
    Attack("absurd finite record", bus(mode="absurd"), check_absurd),
    Attack("10 MB error string", chaos(mode="huge_error", size=10_000_000), check_huge_error),
    Attack("markup in error string", bus(mode="markup_error", markup=MARKUP), check_markup),
    Attack(
        "forge a log line (error)",
        bus(mode="markup_error", markup=FORGED),
        check_forged,
    ),
    Attack(
        "forge a log line (print)",
        chaos(mode="counter", say=ESCAPES),
        check_escapes,
    ),
    Attack(
        "2 MB state snapshot",
        {**bus(mode="snapshot", snapshot_size=2_000_000), "max_memory_mb": 128},
        check_snapshot,
    ),
]


def _params(attacks: list[Any]) -> list[Any]:
    return [
        pytest.param(
            attack,
            id=attack.name.replace(" ", "-"),
            marks=[pytest.mark.xfail(strict=True, reason=attack.bug)] if attack.bug else [],
        )
        for attack in attacks
    ]


# -- fixtures -------------------------------------------------------------------------
@pytest.fixture
def bus_log(board: SimBoard) -> BusLog:
    board.set_dht22(*ROOM)
    log = BusLog()
    log.attach(board)
    return log


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[Any]]]:
    connections: list[Any] = []
    server = await asyncio.start_server(lambda r, w: connections.append(w), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], connections
    server.close()
    await server.wait_closed()


def well_behaved() -> dict[str, dict[str, Any]]:
    return {
        "steady": {**chaos(led=GOOD_LEDS["steady"]), "led": GOOD_LEDS["steady"]},
        "dht22": {"led": GOOD_LEDS["dht22"]},
    }


def assert_host_held(run: Run, granted_i2c: set[int]) -> None:
    """The invariants every attack must leave intact."""
    host, board, cycles = run.host, run.board, run.cycles
    assert host.state.cycle == cycles
    for name in GOOD:
        status = host.statuses()[name]
        assert status["polls"] == cycles, (name, status)
        assert (status["state"], status["traps"], status["errors"]) == ("running", 0, 0)
        assert host.state.plugins[name].reading is not None
        assert host.state.plugins[name].error is None
    # LEDs: the well-behaved plugins' own colours, the hostile one's own LED, nothing else.
    expected = [OFF] * board.led_count
    expected[GOOD_LEDS["steady"]] = steady_color(cycles)
    expected[GOOD_LEDS["dht22"]] = ROOM_COLOR
    expected[HOSTILE_LED] = board.leds[HOSTILE_LED]
    assert board.leds == expected
    assert len(board.beeps) <= 6 and board.fan_on is False and board.fan_changes == 0
    assert {address for address, _, _ in run.bus.i2c} <= granted_i2c
    assert set(run.bus.pins) <= {DHT22_PIN}
    # The app state stays publishable (no NaN for the browser's JSON.parse) and small.
    published = json.dumps(host.snapshot(), allow_nan=False)
    assert len(published) < 64_000
    lines = run.hostile_lines()
    assert len(lines) <= MAX_HOSTILE_LOG_LINES
    assert sum(map(len, lines)) <= MAX_HOSTILE_LOG_CHARS


async def get_page(client: TestClient, path: str = FRAME_URL) -> tuple[ClientResponse, str]:
    response = await client.get(path)
    return response, await response.text()


# -- the sensor-world attacks ---------------------------------------------------------
@pytest.mark.parametrize("attack", _params(ATTACKS))
async def test_hostile_plugin(
    attack: Attack,
    make_config: MakeConfig,
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
    bus_log: BusLog,
    monotonic: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    hostile_report: Report,
    listener: tuple[int, list[Any]],
) -> None:
    monkeypatch.setenv("WASIHOST_SECRET", SECRET)
    caplog.set_level(logging.INFO)
    hostile = {**attack.plugin, "led": HOSTILE_LED}
    connections: list[Any] = []
    if attack.listen:
        port, connections = listener
        hostile["settings"] = {**hostile["settings"], "port": port}
    config = make_config(
        {HOSTILE: hostile, **well_behaved(), "dashboard": {}}, supervision=attack.supervision
    )
    host = make_host(config)
    assert host.statuses()[HOSTILE]["state"] == "running"
    watch = ReadingWatch(host)

    attack_started = time.perf_counter()
    for cycle in range(attack.cycles):
        if cycle:
            monotonic.now += attack.advance_s
        readings = await host.cycle.run_once()
        await host.after_cycle(readings)
    recover_ms = watch.recovered_ms(attack_started)

    async with TestClient(TestServer(create_app(host))) as client:
        response, page = await get_page(client)
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert "Dashboard unavailable" not in page  # still rendered by the dashboard plugin
    await asyncio.sleep(0)  # let the socket listener accept anything pending
    run = Run(host, board, bus_log, attack.cycles, caplog.records, page, connections)

    for name in GOOD:
        assert watch.count(name) == attack.cycles  # a reading in every cycle
    granted = set(hostile.get("grants", {}).get("i2c_addresses", []))
    assert_host_held(run, granted)
    hostile_report(attack.name, attack.check(run), recover_ms)
    if attack.bug_check is not None:
        attack.bug_check(run)


# -- the dashboard-world attacks --------------------------------------------------------
@dataclass(frozen=True)
class PageAttack:
    name: str
    mode: str  # selected in hostile-dashboard by a sensor plugin named "select-<mode>"
    check: Callable[[Host, list[str]], str]  # gets the pages served during the attack
    requests: int = 1  # concurrent GET / during the attack cycle
    limits: dict[str, Any] = field(default_factory=dict)  # the renderer's [plugins.*] limits
    bug: str | None = None
    bug_check: Callable[[Host], None] | None = None


# asyncio's default executor on a 4-core Raspberry Pi 4 has min(32, cores + 4) threads;
# the poll cycle and the web handlers share them.
PI_WORKERS = 8


def count_calls(owner: Any, method: str) -> list[float]:
    """Wrap the coroutine method ``owner.method`` (on the instance) to note each call's start."""
    calls: list[float] = []
    original = getattr(owner, method)

    async def counting(*args: Any) -> Any:
        calls.append(time.perf_counter())
        return await original(*args)

    setattr(owner, method, counting)
    return calls


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait for ``condition`` (a state the attack reaches), yielding to the loop."""
    give_up = time.perf_counter() + timeout_s
    while not condition():
        assert time.perf_counter() < give_up, "the attack never got going"
        await asyncio.sleep(0.001)


def renderer_status(host: Host) -> dict[str, Any]:
    return host.statuses()["dashboard"]


def fell_back(needle: str, outcome: str) -> Callable[[Host, list[str]], str]:
    def check(host: Host, pages: list[str]) -> str:
        for page in pages:
            assert "Dashboard unavailable" in page and needle in page, page[:300]
            assert "<h2>Raw readings</h2>" in page and "&quot;steady&quot;" in page
        return outcome

    return check


def check_huge_page(host: Host, pages: list[str]) -> str:
    fell_back("page is over 2000000 characters", "")(host, pages)
    assert all(len(page) < 100_000 for page in pages)
    return "refused (over 2 000 000 chars): fallback page"


def check_script_page(host: Host, pages: list[str]) -> str:
    # The renderer owns the page, so its markup is served; the CSP is what
    # keeps it from loading, framing, posting or sending anything elsewhere.
    assert all("evil.example" in page for page in pages)
    for directive in ("default-src 'none'", "connect-src 'none'", "form-action 'none'"):
        assert directive in CSP
    return "served under the CSP (no external loads or posts)"


def check_garbage_page(host: Host, pages: list[str]) -> str:
    assert all(page.startswith("\x00\x01\x02") for page in pages)
    assert renderer_status(host)["traps"] == 0
    return "served as-is (valid UTF-8): 200 with the CSP"


def check_surrogates(host: Host, pages: list[str]) -> str:
    status = renderer_status(host)
    assert status["traps"] == 1
    fell_back("trapped in dashboard-logic.render", "")(host, pages)
    return "trapped (not UTF-8): fallback page"


def check_loop_page(host: Host, pages: list[str]) -> str:
    fell_back("interrupt", "")(host, pages)
    assert renderer_status(host)["state"] == "backoff"
    return f"trapped at its {DEADLINE_MS} ms deadline: fallback page"


def check_trap_page(host: Host, pages: list[str]) -> str:
    fell_back("unreachable", "")(host, pages)
    return "trapped: fallback page"


def check_burst(host: Host, pages: list[str]) -> str:
    assert all("Dashboard unavailable" in page for page in pages)
    assert renderer_status(host)["traps"] == 1
    return f"{len(pages)} requests, one render per cycle: the looping renderer ran once"


PAGE_ATTACKS = [
    # Building and returning 30 MB takes the guest longer than DEADLINE_MS on a busy
    # machine; this attack is about the page cap, so it gets time to reach it.
    PageAttack(
        "dashboard: 30 MB page",
        "huge",
        check_huge_page,
        limits={"max_memory_mb": 256, "timeout_ms": 2000},
    ),
    PageAttack("dashboard: script injection", "script", check_script_page),
    PageAttack("dashboard: garbage page", "garbage", check_garbage_page),
    PageAttack("dashboard: lone surrogates", "surrogates", check_surrogates),
    PageAttack("dashboard: render loops", "loop", check_loop_page),
    PageAttack("dashboard: render traps", "trap", check_trap_page),
    PageAttack(
        "dashboard: 16 requests, render loops",
        "loop",
        check_burst,
        requests=16,
    ),
]


@pytest.mark.parametrize("attack", _params(PAGE_ATTACKS))
async def test_hostile_dashboard(
    attack: PageAttack,
    make_config: MakeConfig,
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
    bus_log: BusLog,
    hostile_report: Report,
) -> None:
    selector = f"select-{attack.mode}"
    config = make_config(
        {
            "dashboard": {
                "built": "hostile-dashboard",
                "world": "dashboard-plugin",
                "timeout_ms": DEADLINE_MS,
                **attack.limits,
            },
            selector: chaos(),
            **well_behaved(),
        }
    )
    host = make_host(config)
    assert renderer_status(host)["state"] == "running"
    watch = ReadingWatch(host)
    good = (*GOOD, selector)
    renderer = host.plugins["dashboard"]
    rendering = count_calls(renderer, "call_async")
    executor = ThreadPoolExecutor(PI_WORKERS, thread_name_prefix="hostile-test")
    asyncio.get_running_loop().set_default_executor(executor)
    try:
        async with TestClient(TestServer(create_app(host))) as client:
            await host.cycle.run_once()  # readings to render
            pages = [asyncio.create_task(get_page(client)) for _ in range(attack.requests)]
            # The attack is under way once a render is running: the host renders at
            # most once per cycle, so the other requests wait for that page.
            await until(lambda: len(rendering) >= 1)
            attack_started = time.perf_counter()
            await host.cycle.run_once()
            recover_ms = watch.recovered_ms(attack_started, good)
            served = await asyncio.gather(*pages)
            await host.cycle.run_once()  # and polling goes on
            health, _ = await get_page(client, "/healthz")
            assert health.status == 200
    finally:
        executor.shutdown(wait=True)
    for response, page in served:
        assert response.status == 200
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.content_type == "text/html"
        assert page
    for name in good:
        assert watch.count(name) == 3
        assert host.statuses()[name]["polls"] == 3
    expected = [OFF] * board.led_count
    expected[GOOD_LEDS["steady"]] = steady_color(3)
    expected[GOOD_LEDS["dht22"]] = ROOM_COLOR
    assert board.leds == expected
    assert bus_log.i2c == [] and set(bus_log.pins) <= {DHT22_PIN}
    hostile_report(attack.name, attack.check(host, [page for _, page in served]), recover_ms)
    if attack.bug_check is not None:
        attack.bug_check(host)
