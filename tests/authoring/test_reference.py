"""docs/CAPABILITIES.md is generated from the WIT doc comments and must match them."""

from __future__ import annotations

from pathlib import Path

from wasihost.authoring.reference import parse_items, render_reference

ROOT = Path(__file__).resolve().parents[2]


def test_committed_reference_is_up_to_date() -> None:
    fresh = render_reference((ROOT / "wit" / "plugin.wit").read_text(encoding="utf-8"))
    committed = (ROOT / "docs" / "CAPABILITIES.md").read_text(encoding="utf-8")
    assert committed == fresh, (
        "docs/CAPABILITIES.md is out of date: run "
        "`wasihost reference -o docs/CAPABILITIES.md` and commit the result"
    )


def test_every_item_of_the_contract_is_documented() -> None:
    undocumented = []

    def walk(items: list, where: str) -> None:
        for item in items:
            if not item.doc and item.kind not in ("import", "export"):
                undocumented.append(f"{where}{item.kind} {item.name}")
            walk(item.children, f"{where}{item.name}.")

    walk(parse_items((ROOT / "wit" / "plugin.wit").read_text(encoding="utf-8")), "")
    assert undocumented == []


def test_parser_reads_docs_fields_and_signatures() -> None:
    items = parse_items(
        "/// An interface.\ninterface i {\n    /// A record.\n    record r {\n"
        "        /// A field.\n        f-1: u8,\n    }\n    /// A function.\n"
        "    go: func(x: u8) -> result<r, string>;\n}\n"
    )
    (iface,) = items
    record, func = iface.children
    assert (iface.doc, record.doc, func.doc) == ("An interface.", "A record.", "A function.")
    assert (record.children[0].name, record.children[0].detail) == ("f-1", "u8")
    assert func.detail == "(x: u8) -> result<r, string>"
