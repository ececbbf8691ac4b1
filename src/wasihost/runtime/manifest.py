"""``plugin.toml``: what a plugin folder says about itself.

Both the build (which turns a folder into a component) and the host (which
loads a source plugin into the shared Python runtime) read it, so it is
parsed in one place and its errors name the file and the key.

Keys:
- ``world``: the contract world the plugin is written for (default ``<folder>-plugin``).
- ``state``: ``true`` to export the ``state`` interface (carried across reloads).
- ``kind``: ``"source"`` (default: the host runs the folder's Python in the
  shared runtime, no build) or ``"component"`` (``wasihost build`` makes a
  component of its own, for a plugin that needs more than the runtime offers).
- ``wit``: a WIT folder inside the plugin to build against instead of the
  contract (the hostile suite forges contracts with it); implies ``kind = "component"``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["source", "component"]
KEYS = ("world", "state", "kind", "wit")


class ManifestError(ValueError):
    """A ``plugin.toml`` that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Manifest:
    world: str
    state: bool = False
    kind: Kind = "source"
    wit: str | None = None  # a WIT folder relative to the plugin, instead of the contract


def read_manifest(plugin_dir: Path) -> Manifest:
    """``plugin_dir/plugin.toml``; without one, a source plugin of world ``<folder>-plugin``."""
    path = plugin_dir / "plugin.toml"
    if not path.exists():
        return Manifest(f"{plugin_dir.name}-plugin")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - set(KEYS)
    if unknown:
        keys = ", ".join(sorted(unknown))
        raise ManifestError(f"{path}: unknown key(s) {keys} (known: {', '.join(KEYS)})")
    world = data.get("world", f"{plugin_dir.name}-plugin")
    wit = data.get("wit")
    state, kind = (
        data.get("state", False),
        data.get("kind", "source" if wit is None else "component"),
    )
    if not isinstance(world, str) or not world:
        raise ManifestError(f'{path}: world: expected world = "<world name>", got {world!r}')
    if not isinstance(state, bool):
        raise ManifestError(f"{path}: state: expected true or false, got {state!r}")
    if kind not in ("source", "component"):
        raise ManifestError(f'{path}: kind: expected "source" or "component", got {kind!r}')
    if wit is not None:
        folder = plugin_dir / str(wit)
        inside = folder.resolve().is_relative_to(plugin_dir.resolve())
        if not isinstance(wit, str) or not inside or not folder.is_dir():
            raise ManifestError(
                f'{path}: wit: expected wit = "<folder in {plugin_dir}>", got {wit!r}'
            )
        if kind != "component":
            raise ManifestError(
                f'{path}: wit: only a kind = "component" plugin has a WIT of its own'
            )
    return Manifest(world, state, kind, wit)
