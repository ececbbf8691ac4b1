"""The WIT contract as data: which interfaces each world imports and exports.

``wit/plugin.wit`` is the single source of truth. The host reads the world
and interface declarations from it (not from a hand-kept table) to decide
what a component may import and which export is its logic, so adding a
world to the WIT needs no host change here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from wasihost.errors import WasihostError

_PACKAGE = re.compile(r"^\s*package\s+([a-z0-9-]+:[a-z0-9-]+)@([0-9.]+)\s*;", re.M)
_BLOCK = re.compile(r"^\s*(interface|world)\s+([a-z0-9-]+)\s*\{", re.M)
_FUNC = re.compile(r"^\s*([a-z0-9-]+)\s*:\s*func\(", re.M)
_IMPORT_EXPORT = re.compile(r"^\s*(import|export)\s+([a-z0-9-]+)\s*;", re.M)
_COMMENT = re.compile(r"//[^\n]*")


@dataclass(frozen=True)
class Interface:
    name: str
    functions: tuple[str, ...]


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


def _blocks(text: str) -> list[tuple[str, str, str]]:
    """(kind, name, body) for every top-level interface and world."""
    found = []
    for match in _BLOCK.finditer(text):
        depth, index = 1, match.end()
        while depth and index < len(text):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        found.append((match.group(1), match.group(2), text[match.end() : index - 1]))
    return found


def parse_contract(text: str) -> Contract:
    text = _COMMENT.sub("", text)
    package = _PACKAGE.search(text)
    if package is None:
        raise WasihostError("WIT contract has no 'package name:space@version;' line")
    interfaces: dict[str, Interface] = {}
    worlds: dict[str, World] = {}
    for kind, name, body in _blocks(text):
        if kind == "interface":
            interfaces[name] = Interface(name, tuple(_FUNC.findall(body)))
        else:
            pairs = _IMPORT_EXPORT.findall(body)
            worlds[name] = World(
                name,
                frozenset(i for d, i in pairs if d == "import"),
                frozenset(i for d, i in pairs if d == "export"),
            )
    return Contract(package.group(1), package.group(2), interfaces, worlds)


def packaged_wit() -> Path:
    """The folder of the contract shipped with this host, for tools that need a WIT dir."""
    return Path(str(resources.files("wasihost").joinpath("plugin.wit"))).resolve().parent


@cache
def load_contract() -> Contract:
    """The contract shipped with this host (a copy of ``wit/plugin.wit``)."""
    text = resources.files("wasihost").joinpath("plugin.wit").read_text(encoding="utf-8")
    return parse_contract(text)
