"""The WIT contract as data: its worlds, interfaces, functions and their types.

``wit/plugin.wit`` is the single source of truth. The host reads the world
and interface declarations from it (not from a hand-kept table) to decide
what a component may import and which export is its logic, so adding a
world to the WIT needs no host change here. It also reads every type:
a component declares its own types, and one built against an edited copy of
the WIT (same names, other types) must be refused, which takes the
contract's types to compare with (``runtime.component``).

No WIT parser is available from Python, so this is a small recursive-descent
parser for the subset a contract of plain data uses: interfaces and worlds,
records, variants, enums, flags, type aliases, ``use`` between interfaces of
the package, ``list``/``option``/``result``/``tuple`` and the primitive
types. Anything else (resources, inline world items, foreign packages) is
refused with its line, rather than silently misread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from wasihost.errors import WasihostError

PRIMITIVES = frozenset(
    ["bool", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "f32", "f64", "char", "string"]
)
_ALIASES = {"float32": "f32", "float64": "f64"}  # the older spellings


@dataclass(frozen=True)
class Primitive:
    name: str  # one of PRIMITIVES

    def show(self) -> str:
        return self.name


@dataclass(frozen=True)
class ListOf:
    element: WitType

    def show(self) -> str:
        return f"list<{self.element.show()}>"


@dataclass(frozen=True)
class OptionOf:
    payload: WitType

    def show(self) -> str:
        return f"option<{self.payload.show()}>"


@dataclass(frozen=True)
class ResultOf:
    ok: WitType | None
    err: WitType | None

    def show(self) -> str:
        if self.ok is None and self.err is None:
            return "result"
        ok = "_" if self.ok is None else self.ok.show()
        return f"result<{ok}>" if self.err is None else f"result<{ok}, {self.err.show()}>"


@dataclass(frozen=True)
class TupleOf:
    elements: tuple[WitType, ...]

    def show(self) -> str:
        return f"tuple<{', '.join(e.show() for e in self.elements)}>"


@dataclass(frozen=True)
class Record:
    name: str
    fields: tuple[tuple[str, WitType], ...]

    def show(self) -> str:
        return f"record {self.name}"


@dataclass(frozen=True)
class Variant:
    name: str
    cases: tuple[tuple[str, WitType | None], ...]

    def show(self) -> str:
        return f"variant {self.name}"


@dataclass(frozen=True)
class Enum:
    name: str
    cases: tuple[str, ...]

    def show(self) -> str:
        return f"enum {self.name}"


@dataclass(frozen=True)
class Flags:
    name: str
    flags: tuple[str, ...]

    def show(self) -> str:
        return f"flags {self.name}"


WitType = Primitive | ListOf | OptionOf | ResultOf | TupleOf | Record | Variant | Enum | Flags
NAMED = (Record, Variant, Enum, Flags)  # types that carry a name of their own


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[tuple[str, WitType], ...]
    result: WitType | None


@dataclass(frozen=True)
class Interface:
    name: str
    signatures: dict[str, Function] = field(default_factory=dict)
    types: dict[str, WitType] = field(default_factory=dict)  # declared here or used

    @property
    def functions(self) -> tuple[str, ...]:
        return tuple(self.signatures)


@dataclass(frozen=True)
class World:
    name: str
    imports: frozenset[str]
    exports: frozenset[str]


@dataclass(frozen=True)
class Contract:
    package: str
    version: str
    interfaces: dict[str, Interface]
    worlds: dict[str, World]

    def qualified(self, interface: str) -> str:
        """The name a component uses, e.g. ``wasihost:plugin/i2c@0.1.0``."""
        return f"{self.package}/{interface}@{self.version}"

    def interface_of(self, qualified: str) -> Interface | None:
        """The contract's interface a component names ``qualified``, if any (same
        package and version)."""
        prefix, suffix = f"{self.package}/", f"@{self.version}"
        if not (qualified.startswith(prefix) and qualified.endswith(suffix)):
            return None
        return self.interfaces.get(qualified[len(prefix) : -len(suffix)])

    def allowed_imports(self, world: str) -> frozenset[str]:
        """Qualified names a component of ``world`` may import.

        Interfaces that declare no functions (shared types such as
        ``alarm-types``) are always allowed: they grant nothing.
        """
        types_only = {i.name for i in self.interfaces.values() if not i.functions}
        return frozenset(self.qualified(name) for name in self.worlds[world].imports | types_only)

    def logic_of(self, world: str) -> tuple[str, str]:
        """The (interface, function) the host calls for ``world``: ``poll`` (each
        cycle) or ``render`` (each page view) of its one logic interface, the
        exported interface other than the lifecycle ones."""
        lifecycle = {"settings", "state"}
        logic = sorted(self.worlds[world].exports - lifecycle)
        if len(logic) != 1:
            raise WasihostError(f"world {world} must export exactly one logic interface")
        interface = self.interfaces[logic[0]]
        for function in ("poll", "render"):
            if function in interface.functions:
                return interface.name, function
        raise WasihostError(f"interface {interface.name} exports neither poll nor render")


# -- the parser ---------------------------------------------------------------------------
_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)"
    r"|(?P<id>%?[A-Za-z][A-Za-z0-9-]*)|(?P<number>[0-9]+)|(?P<punct>->|[{}()<>,;:.=@/*_+-])",
    re.S,
)


@dataclass(frozen=True)
class _Token:
    text: str
    line: int


@dataclass(frozen=True)
class _Ref:
    """A named type not resolved yet (it may be declared further down)."""

    name: str
    line: int


# What the parser builds before names are resolved: the same shapes, with
# _Ref where a type is named.
_Raw = object


def _tokens(text: str) -> list[_Token]:
    found: list[_Token] = []
    line, index = 1, 0
    while index < len(text):
        match = _TOKEN.match(text, index)
        if match is None:
            raise WasihostError(f"WIT line {line}: unexpected character {text[index]!r}")
        if match.lastgroup not in ("space", "comment"):
            found.append(_Token(match.group(), line))
        line += match.group().count("\n")
        index = match.end()
    return found


@dataclass
class _RawInterface:
    name: str
    line: int
    functions: list[tuple[str, list[tuple[str, _Raw]], _Raw | None]] = field(default_factory=list)
    typedefs: dict[str, tuple[str, _Raw, int]] = field(default_factory=dict)  # kind, body, line
    uses: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # local -> iface, name


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.package: str | None = None
        self.interfaces: dict[str, _RawInterface] = {}
        self.worlds: dict[str, tuple[set[str], set[str], list[tuple[str, int]]]] = {}

    # -- tokens
    def peek(self, ahead: int = 0) -> str | None:
        at = self.index + ahead
        return self.tokens[at].text if at < len(self.tokens) else None

    def line(self) -> int:
        at = min(self.index, len(self.tokens) - 1)
        return self.tokens[at].line if self.tokens else 1

    def fail(self, message: str) -> WasihostError:
        return WasihostError(f"WIT line {self.line()}: {message}")

    def take(self, expected: str | None = None) -> str:
        text = self.peek()
        if text is None:
            raise self.fail(f"expected {expected or 'more'}, found the end of the file")
        if expected is not None and text != expected:
            raise self.fail(f"expected {expected!r}, found {text!r}")
        self.index += 1
        return text

    def name(self) -> str:
        text = self.take()
        if not re.fullmatch(r"%?[A-Za-z][A-Za-z0-9-]*", text):
            raise self.fail(f"expected a name, found {text!r}")
        return text.removeprefix("%")

    def accept(self, text: str) -> bool:
        if self.peek() == text:
            self.index += 1
            return True
        return False

    def skip_gates(self) -> None:
        """``@since(...)``, ``@unstable(...)``, ``@deprecated(...)``: no effect on types."""
        while self.accept("@"):
            self.name()
            if self.accept("("):
                depth = 1
                while depth:
                    depth += {"(": 1, ")": -1}.get(self.take(), 0)

    # -- file
    def parse(self) -> None:
        while self.peek() is not None:
            self.skip_gates()
            keyword = self.take()
            if keyword == "package":
                parts = []
                while self.peek() != ";":
                    parts.append(self.take())
                self.take(";")
                declared = "".join(parts)
                if self.package is not None and declared != self.package:
                    raise self.fail(f"a second package {declared} (first {self.package})")
                self.package = declared
            elif keyword == "interface":
                self.interface()
            elif keyword == "world":
                self.world()
            else:
                raise self.fail(f"expected package, interface or world, found {keyword!r}")

    def interface(self) -> None:
        iface = _RawInterface(self.name(), self.line())
        if iface.name in self.interfaces:
            raise self.fail(f"interface {iface.name} declared twice")
        self.interfaces[iface.name] = iface
        self.take("{")
        while not self.accept("}"):
            self.skip_gates()
            if self.peek() == "use":
                self.use(iface.uses)
            elif self.peek() in ("record", "variant", "enum", "flags", "type"):
                self.typedef(iface)
            elif self.peek() == "resource":
                raise self.fail("resources are not supported in the contract")
            else:
                name = self.name()
                self.take(":")
                self.take("func")
                params = self.params()
                result = self.type() if self.accept("->") else None
                self.take(";")
                iface.functions.append((name, params, result))

    def use(self, into: dict[str, tuple[str, str, int]]) -> None:
        self.take("use")
        line = self.line()
        source = self.name()
        if self.peek() in (":", "/", "@"):
            raise self.fail("use of another package is not supported in the contract")
        self.take(".")
        self.take("{")
        while not self.accept("}"):
            original = self.name()
            local = self.name() if self.accept("as") else original
            into[local] = (source, original, line)
            if not self.accept(","):
                self.take("}")
                break
        self.take(";")

    def typedef(self, iface: _RawInterface) -> None:
        kind, line = self.take(), self.line()
        name = self.name()
        body: _Raw
        if kind == "type":
            self.take("=")
            body = self.type()
            self.take(";")
        else:
            self.take("{")
            items: list[tuple[str, _Raw | None]] = []
            while not self.accept("}"):
                self.skip_gates()
                item = self.name()
                payload: _Raw | None = None
                if kind == "record":
                    self.take(":")
                    payload = self.type()
                elif kind == "variant" and self.accept("("):
                    payload = self.type()
                    self.take(")")
                items.append((item, payload))
                if not self.accept(","):
                    self.take("}")
                    break
            names = [item for item, _ in items]
            if len(set(names)) != len(names):
                raise self.fail(f"{kind} {name} repeats a name")
            body = items
        if name in iface.typedefs or name in iface.uses:
            raise self.fail(f"type {name} declared twice in interface {iface.name}")
        iface.typedefs[name] = (kind, body, line)

    def params(self) -> list[tuple[str, _Raw]]:
        self.take("(")
        params: list[tuple[str, _Raw]] = []
        while not self.accept(")"):
            name = self.name()
            self.take(":")
            params.append((name, self.type()))
            if not self.accept(","):
                self.take(")")
                break
        return params

    def type(self) -> _Raw:
        line = self.line()
        word = self.name()
        word = _ALIASES.get(word, word)
        if word in PRIMITIVES:
            return Primitive(word)
        if word in ("list", "option"):
            self.take("<")
            inner = self.type()
            self.take(">")
            return (word, inner)
        if word == "result":
            if not self.accept("<"):
                return ("result", None, None)
            ok = None if self.accept("_") else self.type()
            err = self.type() if self.accept(",") else None
            self.take(">")
            return ("result", ok, err)
        if word == "tuple":
            self.take("<")
            elements = [self.type()]
            while self.accept(","):
                elements.append(self.type())
            self.take(">")
            return ("tuple", elements)
        if word in ("own", "borrow", "future", "stream"):
            raise self.fail(f"{word}<...> is not supported in the contract")
        return _Ref(word, line)

    def world(self) -> None:
        name = self.name()
        imports: set[str] = set()
        exports: set[str] = set()
        includes: list[tuple[str, int]] = []
        self.take("{")
        while not self.accept("}"):
            self.skip_gates()
            keyword = self.take()
            if keyword in ("import", "export"):
                item = self.name()
                if self.peek() != ";":
                    raise self.fail(f"only `{keyword} <interface>;` is supported in world {name}")
                (imports if keyword == "import" else exports).add(item)
            elif keyword == "include":
                includes.append((self.name(), self.line()))
            elif keyword == "use":
                self.index -= 1
                self.use({})  # types a world uses only matter to inline items
                continue
            else:
                raise self.fail(f"expected import, export or include in world {name}")
            self.take(";")
        self.worlds[name] = (imports, exports, includes)


class _Resolver:
    """Turns the parsed interfaces' named references into the types they name."""

    def __init__(self, parser: _Parser) -> None:
        self.raw = parser.interfaces
        self.done: dict[tuple[str, str], WitType] = {}
        self.active: set[tuple[str, str]] = set()

    def named(self, iface: str, name: str, line: int) -> WitType:
        key = (iface, name)
        if key in self.done:
            return self.done[key]
        raw = self.raw.get(iface)
        if raw is None:
            raise WasihostError(f"WIT line {line}: no interface {iface}")
        if key in self.active:
            raise WasihostError(f"WIT line {line}: type {name} in {iface} refers to itself")
        self.active.add(key)
        try:
            if name in raw.uses:
                source, original, use_line = raw.uses[name]
                resolved = self.named(source, original, use_line)
            elif name in raw.typedefs:
                resolved = self.typedef(iface, name, *raw.typedefs[name])
            else:
                raise WasihostError(f"WIT line {line}: no type {name} in interface {iface}")
        finally:
            self.active.discard(key)
        self.done[key] = resolved
        return resolved

    def typedef(self, iface: str, name: str, kind: str, body: _Raw, line: int) -> WitType:
        if kind == "type":
            return self.type(iface, body)
        assert isinstance(body, list)
        if kind == "record":
            return Record(name, tuple((n, self.type(iface, t)) for n, t in body))
        if kind == "variant":
            return Variant(
                name, tuple((n, None if t is None else self.type(iface, t)) for n, t in body)
            )
        if kind == "enum":
            return Enum(name, tuple(n for n, _ in body))
        return Flags(name, tuple(n for n, _ in body))

    def type(self, iface: str, raw: _Raw) -> WitType:
        if isinstance(raw, Primitive):
            return raw
        if isinstance(raw, _Ref):
            return self.named(iface, raw.name, raw.line)
        assert isinstance(raw, tuple)
        if raw[0] == "list":
            return ListOf(self.type(iface, raw[1]))
        if raw[0] == "option":
            return OptionOf(self.type(iface, raw[1]))
        if raw[0] == "result":
            ok, err = (None if t is None else self.type(iface, t) for t in raw[1:])
            return ResultOf(ok, err)
        return TupleOf(tuple(self.type(iface, t) for t in raw[1]))


def _world_items(
    name: str, worlds: dict[str, tuple[set[str], set[str], list[tuple[str, int]]]], seen: set[str]
) -> tuple[set[str], set[str]]:
    """A world's imports and exports, with those of the worlds it includes."""
    imports, exports, includes = worlds[name]
    imports, exports = set(imports), set(exports)
    for included, line in includes:
        if included not in worlds or included in seen:
            raise WasihostError(f"WIT line {line}: world {name} includes unknown world {included}")
        more_imports, more_exports = _world_items(included, worlds, seen | {included})
        imports |= more_imports
        exports |= more_exports
    return imports, exports


def parse_contract(text: str) -> Contract:
    parser = _Parser(text)
    parser.parse()
    if parser.package is None or "@" not in parser.package:
        raise WasihostError("WIT contract has no 'package name:space@version;' line")
    package, version = parser.package.split("@", 1)
    resolver = _Resolver(parser)
    interfaces: dict[str, Interface] = {}
    for name, raw in parser.interfaces.items():
        types = {
            local: resolver.named(name, local, line)
            for local, line in [(t, d[2]) for t, d in raw.typedefs.items()]
            + [(t, u[2]) for t, u in raw.uses.items()]
        }
        signatures = {
            fname: Function(
                fname,
                tuple((p, resolver.type(name, t)) for p, t in params),
                None if result is None else resolver.type(name, result),
            )
            for fname, params, result in raw.functions
        }
        if len(signatures) != len(raw.functions):
            raise WasihostError(f"WIT line {raw.line}: interface {name} repeats a function")
        interfaces[name] = Interface(name, signatures, types)
    worlds: dict[str, World] = {}
    for name in parser.worlds:
        imports, exports = _world_items(name, parser.worlds, {name})
        for item in sorted(imports | exports):
            if item not in interfaces:
                raise WasihostError(f"world {name} names unknown interface {item}")
        worlds[name] = World(name, frozenset(imports), frozenset(exports))
    return Contract(package, version, interfaces, worlds)


WIT_FILES = ("plugin.wit", "runtime.wit")


def packaged_wit() -> Path:
    """The folder of the contract shipped with this host, for tools that need a WIT dir."""
    return Path(str(resources.files("wasihost").joinpath("plugin.wit"))).resolve().parent


@cache
def load_contract() -> Contract:
    """The contract shipped with this host (copies of ``wit/*.wit``): the plugins'
    ``plugin.wit`` and ``runtime.wit``, the shared Python runtime's loader."""
    package = resources.files("wasihost")
    texts = [package.joinpath(name).read_text(encoding="utf-8") for name in WIT_FILES]
    return parse_contract("\n".join(texts))
