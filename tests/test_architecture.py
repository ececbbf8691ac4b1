"""The documented import rules (docs/ARCHITECTURE.md), checked on the source.

Imports run one way, web -> host -> runtime -> capabilities -> boards -> model,
and only ``runtime/`` imports wasmtime (so a wasmtime upgrade touches one
folder). Imports under ``if TYPE_CHECKING:`` count too: a type an upper layer
needs belongs in a lower one. Modules outside these layers (config, errors,
clock, telemetry, the author tools...) are not ordered by this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "wasihost"

# Top-level name under wasihost -> its layer; a module may import only its own
# layer or lower ones.
LAYERS = {
    "web": 5,
    "host": 4,
    "cycle": 4,
    "runtime": 3,
    "deploy": 4,  # bundles over MQTT: the node side drives runtime/ and bundle/
    "bundle": 3,  # signed plugin bundles: read plugin folders as runtime/ does; no wasmtime
    "capabilities": 2,
    "boards": 1,
    "filters": 0,  # pure logic on model values; the cycle applies it
    "model": 0,
}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "wasihost" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def imported(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


# The host starts the web; the web sees the node only through ``web.node.Node``,
# so the web may not name the host even though the layers would allow it.
FORBIDDEN = {("wasihost.web", "wasihost.host")}


def violations(module: str, source: str, where: str) -> list[str]:
    """What in ``source`` (the text of ``module``) breaks the rules."""
    found = []
    mine = layer_of(module)
    for line, name in imported(source):
        if name.split(".")[0] == "wasmtime" and not module.startswith("wasihost.runtime"):
            found.append(f"{where}:{line}: imports {name} outside runtime/")
        for importer, imported_module in FORBIDDEN:
            if module.startswith(importer) and name.startswith(imported_module):
                found.append(f"{where}:{line}: {module} imports {name}; use web.node.Node")
        theirs = layer_of(name)
        if mine is not None and theirs is not None and theirs > mine:
            found.append(f"{where}:{line}: {module} imports {name}, a layer above it")
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(("wasihost", *parts)).removesuffix(".__init__")


def test_imports_run_one_way_and_only_runtime_imports_wasmtime() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        found += violations(module_name(path), path.read_text(encoding="utf-8"), str(path))
    assert found == []


def test_the_check_sees_an_upward_import_and_a_stray_wasmtime() -> None:
    """The rule test must be able to fail: both kinds, at module level and nested."""
    source = (
        "import wasmtime\n"
        "def f():\n"
        "    from wasihost.web.server import serve\n"
        "from wasihost.boards.base import Board\n"
    )
    found = violations("wasihost.capabilities.x", source, "x.py")
    assert found == [
        "x.py:1: imports wasmtime outside runtime/",
        "x.py:3: wasihost.capabilities.x imports wasihost.web.server, a layer above it",
    ]
    assert violations("wasihost.runtime.y", "import wasmtime\n", "y.py") == []


def test_the_web_may_not_name_the_host() -> None:
    source = "from wasihost.host import Host\n"
    assert violations("wasihost.web.server", source, "s.py") == [
        "s.py:1: wasihost.web.server imports wasihost.host; use web.node.Node"
    ]
