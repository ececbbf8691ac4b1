"""A bundle's manifest (``manifest.json``): what the plugin is and what it needs.

The signature covers the manifest's exact bytes (after a fixed prefix, so a
signature over a manifest can never be taken for a signature over anything
else), and the manifest covers the plugin through each file's SHA-256 and
the content hash (``wasihost.content``). So one signature vouches for every
byte a node installs, and for the grants the plugin says it needs.

It is JSON written one way (sorted keys, two-space indent, ASCII, a final
newline), so the same fields always give the same bytes. Reading is strict:
an unknown key, a missing one, or a value of the wrong shape is refused with
the field named, even in a manifest a trusted key signed (a broken tool).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from wasihost.content import PATTERN as CONTENT_PATTERN
from wasihost.errors import BundleError
from wasihost.grants import GRANTS, Grants

FORMAT = "wasihost-bundle/1"
SIGNED_PREFIX = b"wasihost-bundle/1 manifest\n"
Kind = Literal["source", "component"]

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")  # a plugin's name, as [plugins.<name>] spells it
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")
WORLD = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
SIGNER = re.compile(r"^[0-9a-f]{16}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
KEYS = ("content", "created_at", "files", "format", "grants", "kind", "name", "signer",
        "version", "world")  # fmt: skip


def signed_message(manifest: bytes) -> bytes:
    """What the Ed25519 signature is over: a fixed prefix, then the manifest's bytes."""
    return SIGNED_PREFIX + manifest


@dataclass(frozen=True)
class FileEntry:
    path: str  # below plugin/
    size: int
    sha256: str  # hex


@dataclass(frozen=True)
class BundleManifest:
    name: str
    version: str
    kind: Kind
    world: str
    grants: Grants  # every kind, as the plugin needs it
    files: tuple[FileEntry, ...]
    content: str  # sha256:...
    created_at: str  # UTC, TIME_FORMAT
    signer: str  # the signing key's id (keys.PublicKey.key_id)

    def to_bytes(self) -> bytes:
        grants: dict[str, Any] = {}
        for grant in GRANTS:
            held = grant.held(self.grants)
            grants[grant.key] = held if isinstance(held, bool) else sorted(held)
        data = {
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "world": self.world,
            "grants": grants,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
            "content": self.content,
            "created_at": self.created_at,
            "signer": self.signer,
        }
        return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def _bad(field: str, why: str, got: object = None) -> BundleError:
    shown = "" if got is None else f" (got {got!r:.80})"
    return BundleError(f"malformed manifest.json: {field}: {why}{shown}")


def _string(data: dict[str, Any], field: str, pattern: re.Pattern[str], what: str) -> str:
    value = data[field]
    if not isinstance(value, str) or not pattern.match(value):
        raise _bad(field, f"expected {what}", value)
    return value


def _grants(raw: object) -> Grants:
    if not isinstance(raw, dict):
        raise _bad("grants", "expected an object of grant kind -> values", raw)
    known = {grant.key: grant for grant in GRANTS}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise _bad("grants", f"unknown kind(s) {', '.join(unknown)} (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for key, grant in known.items():
        value = raw.get(key, False if grant.is_switch else [])
        if grant.is_switch:
            if not isinstance(value, bool):
                raise _bad(f"grants.{key}", "expected true or false", value)
            values[key] = value
        else:
            if not isinstance(value, list) or not all(grant.holds(v) for v in value):
                low, high = grant.values or (0, None)
                bounds = f"{low}..{high}" if high is not None else f"{low} or more"
                raise _bad(f"grants.{key}", f"expected a list of numbers {bounds}", value)
            values[key] = frozenset(value)
    return Grants(**values)


def _files(raw: object) -> tuple[FileEntry, ...]:
    if not isinstance(raw, list):
        raise _bad("files", "expected a list of {path, size, sha256}", raw)
    entries = []
    for i, item in enumerate(raw):
        where = f"files[{i}]"
        if not isinstance(item, dict) or set(item) != {"path", "size", "sha256"}:
            raise _bad(where, "expected {path, size, sha256}", item)
        path, size, sha256 = item["path"], item["size"], item["sha256"]
        if not isinstance(path, str) or not path:
            raise _bad(f"{where}.path", "expected a path", path)
        if type(size) is not int or size < 0:
            raise _bad(f"{where}.size", "expected a size in bytes", size)
        if not isinstance(sha256, str) or not SHA256.match(sha256):
            raise _bad(f"{where}.sha256", "expected 64 lower-case hex digits", sha256)
        entries.append(FileEntry(path, size, sha256))
    if len({entry.path for entry in entries}) != len(entries):
        raise _bad("files", "a path listed twice")
    return tuple(entries)


def parse_manifest(data: bytes) -> BundleManifest:
    """A manifest's fields, each checked; ``BundleError`` names the field."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"malformed manifest.json: not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BundleError("malformed manifest.json: expected a JSON object")
    if raw.get("format") != FORMAT:
        raise _bad("format", f"expected {FORMAT!r} (made by another wasihost?)", raw.get("format"))
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise BundleError(f"malformed manifest.json: unknown key(s) {', '.join(unknown)}")
    missing = sorted(set(KEYS) - set(raw))
    if missing:
        raise BundleError(f"malformed manifest.json: missing key(s) {', '.join(missing)}")
    kind = raw["kind"]
    if kind not in ("source", "component"):
        raise _bad("kind", 'expected "source" or "component"', kind)
    created = _string(
        raw,
        "created_at",
        re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"),
        "a UTC time like 2026-12-06T12:00:00Z",
    )
    try:
        datetime.strptime(created, TIME_FORMAT)
    except ValueError:
        raise _bad("created_at", "not a real date and time", created) from None
    return BundleManifest(
        name=_string(raw, "name", NAME, "a plugin name: lower-case letters, digits and '-'"),
        version=_string(raw, "version", VERSION, "a version: letters, digits, '.', '+', '_', '-'"),
        kind=cast(Kind, kind),
        world=_string(raw, "world", WORLD, "a world name"),
        grants=_grants(raw["grants"]),
        files=_files(raw["files"]),
        content=_string(raw, "content", CONTENT_PATTERN, "sha256:<64 lower-case hex digits>"),
        created_at=created,
        signer=_string(raw, "signer", SIGNER, "a key id: 16 lower-case hex digits"),
    )
