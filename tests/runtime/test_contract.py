"""The WIT contract read by the host matches what the issue asks of the worlds."""

from __future__ import annotations

import pytest

from wasihost.errors import WasihostError
from wasihost.runtime.contract import (
    Enum,
    Flags,
    ListOf,
    OptionOf,
    Primitive,
    Record,
    ResultOf,
    TupleOf,
    Variant,
    load_contract,
    parse_contract,
)

HARDWARE = {
    "gpio-provider",
    "i2c",
    "led-controller",
    "buzzer-controller",
    "fan-controller",
    "system-info",
}


def test_worlds_import_only_what_they_need() -> None:
    contract = load_contract()
    assert contract.package == "wasihost:plugin"
    assert contract.worlds["dashboard-plugin"].imports == frozenset()
    assert "i2c" in contract.worlds["bme680-plugin"].imports
    assert "i2c" not in contract.worlds["dht22-plugin"].imports
    assert "fan-controller" in contract.worlds["pi-monitor-plugin"].imports
    assert set(contract.interfaces) >= HARDWARE


def test_logic_exports() -> None:
    contract = load_contract()
    assert contract.logic_of("dht22-plugin") == ("sensor-logic", "poll")
    assert contract.logic_of("pi-monitor-plugin") == ("pi-monitor-logic", "poll")
    assert contract.logic_of("bme680-plugin") == ("bme680-logic", "poll")
    assert contract.logic_of("dashboard-plugin") == ("dashboard-logic", "render")


def test_types_only_interfaces_are_importable_by_every_world() -> None:
    contract = load_contract()
    allowed = contract.allowed_imports("dashboard-plugin")
    assert allowed == {"wasihost:plugin/alarm-types@0.1.0"}


# -- the contract's types ---------------------------------------------------------------
def test_the_shipped_contract_has_every_type() -> None:
    contract = load_contract()
    poll = contract.interfaces["sensor-logic"].signatures["poll"]
    assert poll.params == ()
    assert isinstance(poll.result, ResultOf) and poll.result.err == Primitive("string")
    record = poll.result.ok
    assert isinstance(record, Record) and record.name == "dht22-data"
    assert [name for name, _ in record.fields][:2] == ["temperature-c", "humidity-percent"]
    assert dict(record.fields)["alarm"] == Enum("alarm", ("none", "high", "low"))
    assert dict(record.fields)["poll-count"] == Primitive("u32")
    set_led = contract.interfaces["led-controller"].signatures["set-led"]
    assert [(n, t.show()) for n, t in set_led.params] == [
        ("index", "u32"), ("r", "u8"), ("g", "u8"), ("b", "u8"),
    ]  # fmt: skip
    transfer = contract.interfaces["i2c"].signatures["transfer"]
    assert transfer.result == ResultOf(ListOf(Primitive("u8")), Primitive("string"))
    poll_list = contract.interfaces["sensor"].signatures["poll"].result
    assert poll_list is not None and poll_list.show() == "result<list<record measurement>, string>"


EVERY_KIND = """
/* a block comment, /* not nested */
package test:kinds@1.2.3;

interface shared {
    /// A doc comment.
    enum level { low, high }
    flags perms { read, write, }
    type id = u32;
}

interface things {
    use shared.{level, id as handle, perms};
    record pair { left: handle, right: option<level> }
    variant shape { none, circle(float32), many(list<tuple<s8, f64>>) }
    type pairs = list<pair>;
    @since(version = 1.2.3)
    get: func(a: pairs, b: perms) -> result<shape, string>;
    unit: func() -> result;
    ok-only: func() -> result<char>;
    err-only: func(%type: bool) -> result<_, s64>;
}

world base { import shared; }
world full { include base; export things; }
"""


def test_every_kind_of_type_is_parsed() -> None:
    contract = parse_contract(EVERY_KIND)
    assert (contract.package, contract.version) == ("test:kinds", "1.2.3")
    things = contract.interfaces["things"]
    level = Enum("level", ("low", "high"))
    pair = Record("pair", (("left", Primitive("u32")), ("right", OptionOf(level))))
    shape = Variant(
        "shape",
        (
            ("none", None),
            ("circle", Primitive("f32")),
            ("many", ListOf(TupleOf((Primitive("s8"), Primitive("f64"))))),
        ),
    )
    get = things.signatures["get"]
    assert get.params == (("a", ListOf(pair)), ("b", Flags("perms", ("read", "write"))))
    assert get.result == ResultOf(shape, Primitive("string"))
    assert things.signatures["unit"].result == ResultOf(None, None)
    assert things.signatures["ok-only"].result == ResultOf(Primitive("char"), None)
    assert things.signatures["err-only"].params == (("type", Primitive("bool")),)
    assert things.signatures["err-only"].result == ResultOf(None, Primitive("s64"))
    assert things.types["handle"] == Primitive("u32")
    assert contract.worlds["full"].imports == {"shared"}
    assert contract.worlds["full"].exports == {"things"}
    assert contract.allowed_imports("base") == {"test:kinds/shared@1.2.3"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("interface i {\n  f: func() -> nope;\n}", "WIT line 3: no type nope in interface i"),
        ("interface i {\n  resource r;\n}", "WIT line 3: resources are not supported"),
        ("interface i {\n  f: func(a: u8 b: u8);\n}", "WIT line 3: expected ')', found 'b'"),
        ("interface i {\n  type a = b;\n  type b = a;\n}", "refers to itself"),
        ("interface i { use other.{x}; }", "no interface other"),
        ("world w { import missing; }", "world w names unknown interface missing"),
        ("world w {\n  import f: func();\n}", "WIT line 3: only `import <interface>;`"),
        ("interface i { f: func() -> list<own<r>>; }", "own<...> is not supported"),
        ("interface i { f: func(); f: func(); }", "interface i repeats a function"),
        ("interface i { record r { a: u8, a: u8 } }", "record r repeats a name"),
        ("interface i {\n  f: func() -> u8\n}", "WIT line 4: expected ';', found '}'"),
        ("interface i { f: func() ", "found the end of the file"),
        ("interface i { f: func() -> u8; } $", "unexpected character '$'"),
    ],
)
def test_bad_wit_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(WasihostError) as caught:
        parse_contract("package a:b@0.1.0;\n" + text)  # so the text starts on line 2
    assert message in str(caught.value)


def test_a_contract_needs_a_versioned_package() -> None:
    with pytest.raises(WasihostError, match="no 'package name:space@version;' line"):
        parse_contract("interface i {}")
