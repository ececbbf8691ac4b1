"""``wasihost new NAME``: a plugin that builds, tests and runs as it is.

The files come from ``templates/<world>/``; the config block to paste into
host.toml is returned for the caller to print.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

from wasihost.errors import WasihostError

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def templates() -> list[str]:
    """Worlds that have a template."""
    root = resources.files("wasihost") / "templates"
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir())


def scaffold(name: str, world: str, plugins_dir: Path, led: int) -> tuple[list[Path], str]:
    """Write ``plugins_dir/name/``; returns the files written and the config block."""
    if not _NAME.match(name):
        raise WasihostError(
            f"plugin name {name!r}: use lower-case letters, digits and '-', starting with a letter"
        )
    if world not in templates():
        raise WasihostError(
            f"no template for world {world!r} (available: {', '.join(templates())})"
        )
    target = plugins_dir / name
    if target.exists():
        raise WasihostError(f"{target} already exists; choose another name or remove it")
    target.mkdir(parents=True)
    written = []
    for source in (resources.files("wasihost") / "templates" / world).iterdir():
        if source.name.endswith(".tmpl"):
            text = Template(source.read_text(encoding="utf-8")).substitute(name=name, led=led)
            path = target / source.name.removesuffix(".tmpl")
            path.write_text(text, encoding="utf-8")
            written.append(path)
    config = (
        f"[plugins.{name}]\n"
        f'world = "{world}"\n'
        f'source = "{(plugins_dir / name).as_posix()}"  # run in the shared runtime: no build\n'
        f"led = {led}  # an LED no other plugin uses\n"
        f"# [plugins.{name}.grants]\n"
        f'# i2c_addresses = ["0x44"]  # the bus addresses your driver talks to\n'
    )
    return sorted(written), config
