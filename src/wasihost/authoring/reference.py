"""The capability reference (docs/CAPABILITIES.md), generated from the WIT doc comments.

``wit/plugin.wit`` is the single source of truth; this renders its ``///``
comments as Markdown with the Python names a plugin uses. A test compares
the committed file with a fresh rendering, so the docs cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ITEM = re.compile(
    r"^\s*(?:(?P<block>interface|world|record|enum)\s+(?P<block_name>[a-z0-9-]+)\s*\{"
    r"|(?P<func>[a-z0-9-]+)\s*:\s*func(?P<sig>\(.*\)(?:\s*->\s*[^;]+)?);"
    r"|(?P<dir>import|export)\s+(?P<iface>[a-z0-9-]+)\s*;"
    r"|(?P<field>[a-z0-9-]+)\s*:\s*(?P<type>[^,]+),?"
    r"|(?P<case>[a-z0-9-]+)\s*,?)\s*$"
)


@dataclass
class Item:
    kind: str
    name: str
    doc: str = ""
    detail: str = ""  # a function's signature, a field's type
    children: list[Item] = field(default_factory=list)


def parse_items(text: str) -> list[Item]:
    """Interfaces and worlds with their documented members, in file order."""
    top: list[Item] = []
    stack: list[Item] = []
    doc: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("///"):
            doc.append(line[3:].strip())
            continue
        if line == "}":
            stack.pop()
            doc = []
            continue
        match = _ITEM.match(line)
        if not match or line.startswith(("package", "use", "//")):
            doc = []
            continue
        text_doc = " ".join(doc)
        doc = []
        if match["block"]:
            item = Item(match["block"], match["block_name"], text_doc)
            (stack[-1].children if stack else top).append(item)
            stack.append(item)
        elif not stack:
            continue
        elif match["func"]:
            stack[-1].children.append(Item("func", match["func"], text_doc, match["sig"].strip()))
        elif match["dir"]:
            stack[-1].children.append(Item(match["dir"], match["iface"], text_doc))
        elif match["field"]:
            stack[-1].children.append(
                Item("field", match["field"], text_doc, match["type"].strip())
            )
        elif match["case"]:
            stack[-1].children.append(Item("case", match["case"], text_doc))
    return top


def _py(name: str) -> str:
    return name.replace("-", "_")


def _class(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _members(item: Item, kind: str) -> list[Item]:
    return [child for child in item.children if child.kind == kind]


def render_reference(text: str) -> str:
    items = parse_items(text)
    worlds = [i for i in items if i.kind == "world"]
    used: dict[str, list[str]] = {}
    for world in worlds:
        for child in world.children:
            used.setdefault(child.name, []).append(f"`{world.name}` ({child.kind})")
    imported = {child.name for world in worlds for child in _members(world, "import")}
    out = [
        "# Capability reference",
        "",
        "Generated from `wit/plugin.wit` by `wasihost reference`; do not edit by hand.",
        "A plugin imports capabilities with `from wit_world.imports import <interface>` and",
        "implements exports as classes of its `app.py`. A capability whose result is an",
        "error raises `componentize_py_types.Err` in the plugin (its `.value` is the reason).",
        "",
        "## Worlds",
        "",
    ]
    for world in worlds:
        imports = ", ".join(f"`{c.name}`" for c in _members(world, "import")) or "nothing"
        exports = ", ".join(f"`{c.name}`" for c in _members(world, "export"))
        out += [f"### `{world.name}`", "", world.doc, "", f"- imports: {imports}",
                f"- exports: {exports}", ""]  # fmt: skip
    out += ["## Interfaces", ""]
    for iface in (i for i in items if i.kind == "interface"):
        out += [f"### `{iface.name}`", "", iface.doc, ""]
        if iface.name in used:
            out += [f"Used by: {', '.join(used[iface.name])}.", ""]
        # An interface no world imports is one plugins implement (state is added by
        # the build, so no world in the file exports it).
        exported = iface.name not in imported
        for func in _members(iface, "func"):
            python = (
                f"implement `{_class(iface.name)}.{_py(func.name)}` in `app.py`"
                if exported
                else f"`{_py(iface.name)}.{_py(func.name)}(...)`"
            )
            out += [f"- **`{func.name}{func.detail}`**  ", f"  Python: {python}.  ",
                    f"  {func.doc}"]  # fmt: skip
        if _members(iface, "func"):
            out.append("")
        for kind in ("record", "enum"):
            for typedef in _members(iface, kind):
                out += [f"#### {kind} `{typedef.name}` (Python `{_class(typedef.name)}`)", "",
                        typedef.doc, ""]  # fmt: skip
                rows = _members(typedef, "field" if kind == "record" else "case")
                if kind == "record":
                    out += ["| field | type | meaning |", "| --- | --- | --- |"]
                    out += [f"| `{_py(r.name)}` | `{r.detail}` | {r.doc} |" for r in rows]
                else:
                    out += ["| case | meaning |", "| --- | --- |"]
                    out += [f"| `{r.name.upper().replace('-', '_')}` | {r.doc} |" for r in rows]
                out.append("")
    return "\n".join(line.rstrip() for line in out).rstrip() + "\n"
