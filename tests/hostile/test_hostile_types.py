"""Hostile suite, issue 14 class 1: a component built against a forged contract.

``tests/plugins/forged-types`` is built against its own copy of the WIT
(``wit = "wit"`` in its plugin.toml): the dht22 world's names with other
types. Before the host compared types it loaded and ran it, and its
``mode`` setting chose the damage (measured on the simulated board, three
cycles, next to the seed dht22):

* ``nan``: ``set-led`` with f32 colours put ``(nan, inf, -1.5)`` into the LED
  buffer; ``host.snapshot()`` was no longer strict JSON (what ``/api/readings``
  and every stream event serve to a browser's ``JSON.parse``);
* ``wide``: ``set-all`` with u32 colours put ``(70000, 2147483648, 4294967295)``
  into the LED buffer (the Pi strip driver cannot encode it);
* ``note``: an extra 1 MB string field on the poll record went into every
  cycle's log line and the published state (1 002 318 characters, not 2 327);
* ``count``: a u64 ``poll-count`` (2**40) was accepted as the contract's u32;
* ``timestamp``: ``get-timestamp-ms`` declared to return a string made the
  host function raise ``TypeError`` (a traceback in the log) on every call.

Now the check refuses the component at load, naming each difference, and
``wasihost check`` says the same. The structural comparison itself is
exercised on small components written in the component text format (they
compile in about a millisecond): every kind of WIT type, each way it can be
forged. The capabilities' own range checks and the bounded reading strings
(defence in depth, for a value that gets past a check) are tested last.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wasihost.authoring.build import read_manifest
from wasihost.authoring.check import run_check
from wasihost.boards.base import OFF
from wasihost.boards.sim import SimBoard
from wasihost.capabilities import PROVIDERS, CapabilityContext, Grants
from wasihost.config import HostConfig
from wasihost.errors import BuildError, CapabilityError, PluginLoadError
from wasihost.host import Host
from wasihost.leds import LedBuffer
from wasihost.readings import MAX_STATUS, normalise
from wasihost.runtime import component as component_module
from wasihost.runtime.component import Compiled, check, contract_differences
from wasihost.runtime.contract import load_contract
from wasihost.runtime.engine import Engine

FORGED = "forged"
FORGED_LED = 3
DHT22_LED = 1
ROOM_COLOR = (0, 200, 0)  # the seed dht22's comfort colour at 21 °C
MODES = ("plain", "nan", "wide", "note", "count", "timestamp")
# What the host must name, whichever mode the forged plugin would run in.
DIFFERENCES = (
    "imports wasihost:plugin/gpio-provider@0.1.0#get-timestamp-ms returning string, "
    "the contract says u64",
    "imports wasihost:plugin/led-controller@0.1.0#set-led with param r: f32, the contract says u8",
    "imports wasihost:plugin/led-controller@0.1.0#set-all with param r: u32, the contract says u8",
    "exports wasihost:plugin/sensor-logic@0.1.0#poll returning record dht22-data "
    "with an extra field `note: string`",
)


CYCLES = 3


async def run_forged(
    mode: str,
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
) -> Host:
    """The forged plugin in ``mode`` next to the seed dht22, for CYCLES cycles."""
    board.set_dht22(21.0, 45.0)
    forged = {
        "built": "forged-types",
        "world": "dht22-plugin",
        "led": FORGED_LED,
        "settings": {"mode": mode, "led": FORGED_LED},
    }
    host = make_host(make_config({FORGED: forged, "dht22": {"led": DHT22_LED}}))
    for _ in range(CYCLES):
        await host.after_cycle(await host.cycle.run_once())
    return host


# -- the forged plugin, end to end ------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_forged_contract_is_refused_and_the_host_runs_on(
    mode: str,
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    host = await run_forged(mode, make_config, make_host, board)

    status = host.statuses()[FORGED]
    assert (status["state"], status["polls"]) == ("failed", 0), status
    for difference in DIFFERENCES:
        assert difference in status["last_error"]
    good = host.statuses()["dht22"]
    assert (good["state"], good["polls"], good["errors"], good["traps"]) == (
        "running",
        CYCLES,
        0,
        0,
    )
    expected = [OFF] * board.led_count
    expected[DHT22_LED] = ROOM_COLOR
    assert board.leds == expected
    published = json.dumps(host.snapshot(), allow_nan=False)  # strict JSON, as a browser parses
    assert len(published) < 64_000
    assert not any(r.exc_info for r in caplog.records)  # no host function raised
    assert sum(len(r.getMessage()) for r in caplog.records) < 100_000


@pytest.mark.parametrize("mode", ["plain", "nan", "wide", "note", "count"])
async def test_past_a_missed_check_capabilities_and_readings_still_hold(
    mode: str,
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defence in depth: with the type check switched off, the forged plugin runs,
    and still nothing out of range reaches the LEDs or the published state."""
    monkeypatch.setattr(component_module, "contract_differences", lambda *args: [])
    caplog.set_level(logging.INFO)
    host = await run_forged(mode, make_config, make_host, board)

    status = host.statuses()[FORGED]
    assert status["state"] == "running" and status["traps"] == 0, status
    if mode in ("plain", "nan", "wide"):  # every LED write is refused with the WIT error
        assert status["errors"] == CYCLES and "is not a u8" in status["last_error"]
        assert status["refused_by_kind"] == {"wit-type": CYCLES}
    expected = [OFF] * board.led_count
    expected[DHT22_LED] = ROOM_COLOR
    assert board.leds == expected
    assert host.statuses()["dht22"]["polls"] == CYCLES
    published = json.dumps(host.snapshot(), allow_nan=False)
    assert len(published) < 64_000
    assert sum(len(r.getMessage()) for r in caplog.records) < 100_000


def test_wasihost_check_names_every_difference(built: dict[str, Path]) -> None:
    lines: list[str] = []
    assert not run_check(built["forged-types"], None, None, echo=lines.append)
    report = "\n".join(lines)
    assert "fits worlds: none" in report
    assert "✗ dht22-plugin: built against another contract: " in report
    for difference in DIFFERENCES:
        assert difference in report


def test_check_with_config_says_the_same(
    built: dict[str, Path], make_config: Callable[..., HostConfig]
) -> None:
    config = make_config({FORGED: {"built": "forged-types", "world": "dht22-plugin"}})
    lines: list[str] = []
    assert not run_check(built["forged-types"], config, FORGED, echo=lines.append)
    refusal = next(line for line in lines if line.startswith("✗ plugins.forged"))
    for difference in DIFFERENCES:
        assert difference in refusal


# -- the structural comparison, on small text-format components -------------------------
@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    engine = Engine()
    yield engine
    engine.close()


ALARM = '(type $alarm (enum "none" "high" "low"))'


def importing(interface: str, funcs: str, types: str = "") -> str:
    """A component importing the contract's ``interface`` with these members."""
    return f'(component {types} (import "wasihost:plugin/{interface}@0.1.0" (instance {funcs})))'


def func(name: str, signature: str) -> str:
    return f'(export "{name}" (func {signature}))'


def reading(record: str) -> str:
    """gpio-provider with ``read-dht22`` returning ``record``: a record in a
    signature must be an exported (named) type, as in a real component."""
    return importing(
        "gpio-provider",
        '(export "dht22-reading" (type $r (eq $rec)))'
        + func("read-dht22", '(param "pin" u8) (result (result $r (error string)))'),
        f"(type $rec {record})",
    )


LED_OK = "(result (result (error string)))"
SET_LED = '(param "index" u32) (param "r" u8) (param "g" u8) (param "b" u8)'
DHT22 = '(record (field "temperature-c" f32) (field "humidity-percent" f32))'


def refusal(engine: Engine, wat: str) -> str:
    """Why the check refuses ``wat`` for the first world that may import what it imports."""
    from wasmtime import component

    contract = load_contract()
    comp = component.Component(engine.wasmtime, wat)
    names = {n.split("/")[1].split("@")[0] for n in comp.type.imports(engine.wasmtime)}
    world = next(
        w for w in sorted(contract.worlds) if names - {"alarm-types"} <= contract.worlds[w].imports
    )
    compiled = Compiled(comp, Path("forged.wasm"), "0" * 64, False, 0.0)
    with pytest.raises(PluginLoadError) as caught:
        check("forged", engine, contract, world, compiled)
    return caught.value.reason


FORGERIES = [
    pytest.param(
        importing(
            "led-controller", func("set-led", SET_LED.replace('"g" u8', '"g" float32') + LED_OK)
        ),
        "#set-led with param g: f32, the contract says u8",
        id="float-for-u8",
    ),
    pytest.param(
        importing(
            "led-controller",
            func("set-led", SET_LED.replace('"index" u32', '"index" u64') + LED_OK),
        ),
        "#set-led with param index: u64, the contract says u32",
        id="wider-integer",
    ),
    pytest.param(
        importing(
            "led-controller",
            func("set-led", SET_LED.replace('"index" u32', '"index" s32') + LED_OK),
        ),
        "#set-led with param index: s32, the contract says u32",
        id="signed-for-unsigned",
    ),
    pytest.param(
        importing(
            "led-controller", func("set-led", SET_LED.replace('"b" u8', '"blue" u8') + LED_OK)
        ),
        "#set-led with params (index: u32, r: u8, g: u8, blue: u8), "
        "the contract says (index: u32, r: u8, g: u8, b: u8)",
        id="renamed-param",
    ),
    pytest.param(
        importing("led-controller", func("set-led", SET_LED + ' (param "x" u8)' + LED_OK)),
        "#set-led with params (index: u32, r: u8, g: u8, b: u8, x: u8), the contract says",
        id="extra-param",
    ),
    pytest.param(
        importing("led-controller", func("set-led", SET_LED)),
        "#set-led returning nothing, the contract says result<_, string>",
        id="no-result",
    ),
    pytest.param(
        importing(
            "led-controller", func("set-led", SET_LED + " (result (result u8 (error string)))")
        ),
        "#set-led returning result<u8, string>, the contract says result<_, string>",
        id="result-ok-added",
    ),
    pytest.param(
        importing(
            "led-controller", func("set-led", SET_LED + " (result (result (error (list u8))))")
        ),
        "#set-led returning result<_, list<u8>>, the contract says result<_, string>",
        id="result-err-retyped",
    ),
    pytest.param(
        importing("led-controller", func("set-rgbw", SET_LED + LED_OK)),
        "imports wasihost:plugin/led-controller@0.1.0#set-rgbw which the contract does not have",
        id="extra-function",
    ),
    pytest.param(
        importing(
            "i2c",
            func(
                "transfer",
                '(param "address" u8) (param "data" (list u16)) '
                '(param "read-len" u32) (result (result (list u8) (error string)))',
            ),
        ),
        "#transfer with param data: list<u16>, the contract says list<u8>",
        id="list-element",
    ),
    pytest.param(
        reading(DHT22.replace("))", ') (field "x" string))')),
        "#read-dht22 returning record dht22-reading with an extra field `x: string`",
        id="record-extra-field",
    ),
    pytest.param(
        reading('(record (field "temperature-c" f32))'),
        "#read-dht22 returning record dht22-reading without field `humidity-percent`",
        id="record-missing-field",
    ),
    pytest.param(
        reading('(record (field "humidity-percent" f32) (field "temperature-c" f32))'),
        "#read-dht22 returning record dht22-reading with its fields in another order "
        "(humidity-percent, temperature-c); the contract says temperature-c, humidity-percent",
        id="record-reordered",
    ),
    pytest.param(
        reading(DHT22.replace('"humidity-percent" f32', '"humidity-percent" f64')),
        "#read-dht22 returning record dht22-reading with field `humidity-percent`: "
        "f64, the contract says f32",
        id="record-retyped-field",
    ),
    pytest.param(
        reading('(record (field "temperature-c" f32) (field "humidity" f32))'),
        "#read-dht22 returning record dht22-reading with an extra field `humidity: f32`",
        id="record-renamed-field",
    ),
    pytest.param(
        importing("gpio-provider", func("read-cpu-temperature", "(result (option f32))")),
        "#read-cpu-temperature returning option<f32>, the contract says result<f32, string>",
        id="option-for-result",
    ),
    pytest.param(
        importing(
            "gpio-provider",
            func("read-cpu-temperature", "(result (result (tuple f32 f32) (error string)))"),
        ),
        "returning result<tuple<f32, f32>, string>, the contract says result<f32, string>",
        id="tuple-for-float",
    ),
    pytest.param(
        importing("fan-controller", func("set-fan", '(param "on" u8)' + LED_OK)),
        "#set-fan with param on: u8, the contract says bool",
        id="integer-for-bool",
    ),
    pytest.param(
        importing(
            "alarm-types",
            '(export "alarm" (type (eq $alarm)))',
            ALARM.replace('"low"', '"low" "panic"'),
        ),
        "imports wasihost:plugin/alarm-types@0.1.0 type alarm: enum alarm with none, high, "
        "low, panic; the contract says none, high, low",
        id="enum-extra-case",
    ),
    pytest.param(
        importing(
            "alarm-types",
            '(export "alarm" (type (eq $alarm)))',
            '(type $alarm (flags "none" "high" "low"))',
        ),
        "imports wasihost:plugin/alarm-types@0.1.0 type alarm: flags {none, high, low}, "
        "the contract says enum alarm",
        id="flags-for-enum",
    ),
    pytest.param(
        importing(
            "alarm-types",
            '(export "alarm" (type (eq $alarm)))',
            '(type $alarm (variant (case "none") (case "high" u8) (case "low")))',
        ),
        "type alarm: variant {none, high(u8), low}, the contract says enum alarm",
        id="variant-for-enum",
    ),
]


@pytest.mark.parametrize(("wat", "needle"), FORGERIES)
def test_forged_types_are_refused_naming_the_difference(
    engine: Engine, wat: str, needle: str
) -> None:
    reason = refusal(engine, wat)
    assert "forged.wasm: built against another contract: " in reason
    assert needle in reason, reason


def test_matching_types_pass_the_type_check(engine: Engine) -> None:
    """The contract's own types, written independently, compare equal: the check
    then goes on to the next one (this component exports no logic)."""
    from wasmtime import component

    wat = (
        f"(component {ALARM} (type $rec {DHT22})"
        ' (import "wasihost:plugin/alarm-types@0.1.0"'
        ' (instance (export "alarm" (type (eq $alarm)))))'
        ' (import "wasihost:plugin/led-controller@0.1.0" (instance'
        + func("set-led", SET_LED + LED_OK)
        + func("clear", LED_OK)
        + "))"
        ' (import "wasihost:plugin/gpio-provider@0.1.0" (instance'
        ' (export "dht22-reading" (type $r (eq $rec)))'
        + func("read-dht22", '(param "pin" u8) (result (result $r (error string)))')
        + func("get-timestamp-ms", "(result u64)")
        + ")))"
    )
    comp = component.Component(engine.wasmtime, wat)
    imports = comp.type.imports(engine.wasmtime)
    assert contract_differences(load_contract(), imports, engine, "imports") == []
    reason = refusal(engine, wat)
    assert "forged.wasm: does not export " in reason and "#poll required by world" in reason


def test_many_differences_are_listed_up_to_a_bound(engine: Engine) -> None:
    funcs = "".join(func(f"extra-{n}", "") for n in range(12))
    reason = refusal(engine, importing("led-controller", funcs))
    assert reason.count("which the contract does not have") == 5
    assert reason.endswith("(and 7 more differences)")


def test_a_huge_forged_type_is_described_briefly(engine: Engine) -> None:
    fields = "".join(f'(field "f{n}" string)' for n in range(2000))
    wat = reading(f"(record {fields})")
    reason = refusal(engine, wat)
    assert "record dht22-reading with an extra field" in reason
    assert len(reason) < 2_000


# -- defence in depth: capabilities take only values their WIT types can carry ----------
@pytest.fixture
def bound() -> tuple[dict[str, Callable[..., Any]], CapabilityContext, SimBoard]:
    board = SimBoard(seed=1)
    ctx = CapabilityContext(
        plugin="p",
        board=board,
        leds=LedBuffer(board.led_count),
        grants=Grants(
            leds=frozenset({3}),
            gpio_pins=frozenset({4}),
            i2c_addresses=frozenset({0x77}),
            buzzer=True,
            fan=True,
        ),
    )
    functions: dict[str, Callable[..., Any]] = {}
    for interface, binder in PROVIDERS.items():
        functions.update({f"{interface}#{n}": f for n, f in binder(ctx).items()})
    return functions, ctx, board


OUT_OF_RANGE = [
    ("led-controller#set-led", (3, math.nan, 0, 0), "r = nan is not a u8"),
    ("led-controller#set-led", (3, 0.0, 200.0, 0.0), "r = 0.0 is not a u8"),
    ("led-controller#set-led", (3, 256, 0, 0), "r = 256 is not a u8"),
    ("led-controller#set-led", (3, 0, -1, 0), "g = -1 is not a u8"),
    ("led-controller#set-led", (3.0, 0, 0, 0), "index = 3.0 is not a u32"),
    ("led-controller#set-led", (True, 0, 0, 0), "index = True is not a u32"),
    ("led-controller#set-all", (70_000, 0, 0), "r = 70000 is not a u8"),
    ("led-controller#set-two", (3, 0, 0, 0, 3, 0, 0, 2**32), "b-b = 4294967296 is not a u8"),
    ("buzzer-controller#beep", (1, 100.5, 100), "duration-ms = 100.5 is not a u32"),
    ("buzzer-controller#beep", (-1, 100, 100), "count = -1 is not a u8"),
    ("fan-controller#set-fan", (1,), "on = 1 is not a bool"),
    ("gpio-provider#read-dht22", (4.0,), "pin = 4.0 is not a u8"),
    ("i2c#transfer", (0x77, "ab", 1), "data = 'ab' is not a list<u8>"),
    ("i2c#transfer", (0x77, b"\x00", 2**32), "read-len = 4294967296 is not a u32"),
    ("i2c#transfer", (119.0, b"\x00", 1), "address = 119.0 is not a u8"),
]


@pytest.mark.parametrize(("name", "args", "needle"), OUT_OF_RANGE)
def test_capabilities_refuse_values_outside_their_wit_types(
    bound: tuple[dict[str, Callable[..., Any]], CapabilityContext, SimBoard],
    name: str,
    args: tuple[Any, ...],
    needle: str,
) -> None:
    functions, ctx, board = bound
    with pytest.raises(CapabilityError, match=needle.replace("(", r"\(")):
        functions[name](*args)
    assert ctx.refusals["wit-type"] == 1
    assert ctx.leds.snapshot() == [OFF] * board.led_count  # nothing reached the buffer
    assert board.fan_on is False and board.beeps == []


def test_capabilities_still_take_values_in_range(
    bound: tuple[dict[str, Callable[..., Any]], CapabilityContext, SimBoard],
) -> None:
    functions, ctx, board = bound
    functions["led-controller#set-led"](3, 255, 0, 7)
    functions["buzzer-controller#beep"](2, 100, 100)
    functions["fan-controller#set-fan"](True)
    assert functions["i2c#transfer"](0x77, b"\xd0", 1) == b"\x61"  # the BME680's chip id
    assert ctx.leds.snapshot()[3] == (255, 0, 7)
    assert board.fan_on is True and board.beeps
    assert not ctx.refusals


# -- defence in depth: what a poll record can put into host state -----------------------
def test_reading_status_strings_are_bounded_and_numbers_finite() -> None:
    record = {
        "temperature_c": math.nan,
        "humidity_percent": 45.0,
        "dew_point_c": math.inf,
        "heat_index_c": True,  # a bool is not a measurement
        "note": "x" * 1_000_000,
        "age_ms": -math.inf,
        "nested": {"deep": ["y" * 10_000]},
        "k" * 10_000: 1,
    }
    reading = normalise("p", "dht22-plugin", record, 0)
    assert [m.name for m in reading.measurements] == ["humidity"]
    assert reading.status["age_ms"] is None
    assert len(str(reading.status["note"])) <= MAX_STATUS + 20
    assert len(str(reading.status["nested"])) <= MAX_STATUS + 20
    assert all(len(key) <= 64 for key in reading.status)
    json.dumps({"m": [m.value for m in reading.measurements], "s": reading.status}, allow_nan=False)


def test_a_plugins_own_wit_folder_must_exist(tmp_path: Path) -> None:
    """The ``wit`` key that lets the forged plugin carry its WIT names a folder in the plugin."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (tmp_path / "outside").mkdir()
    for wit in ("../outside", "missing", "1"):
        (plugin / "plugin.toml").write_text(f'world = "dht22-plugin"\nwit = "{wit}"\n')
        with pytest.raises(BuildError, match=r"wit: expected wit = \"<folder in "):
            read_manifest(plugin)
    tmp_path = plugin
    (tmp_path / "wit").mkdir()
    (tmp_path / "plugin.toml").write_text('world = "dht22-plugin"\nwit = "wit"\n')
    assert read_manifest(tmp_path).wit == "wit"
