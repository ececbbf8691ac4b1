"""``wasihost bundle ...``: what each subcommand prints and returns.

Kept out of ``cli.py`` (which only parses arguments) so the commands are
plain functions tests call. A problem with the input (a key file others can
read, a plugin folder that does not load, a malformed bundle given to
``inspect``) is a ``BundleError`` the CLI prints and exits 2 on; ``verify``
answers with a verdict and an exit code instead: 0 valid, 1 refused,
4 held because it needs grants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from wasihost.atomic import write_atomically
from wasihost.bundle import archive
from wasihost.bundle.create import create_bundle, hash_plugin
from wasihost.bundle.keys import read_signing_key, write_key_pair
from wasihost.bundle.manifest import parse_manifest
from wasihost.config import HostConfig
from wasihost.errors import BundleError
from wasihost.grants import GRANTS, describe

Echo = Callable[[str], None]
EXIT = {"valid": 0, "refused": 1, "needs-grants": 4}
TRUE, FALSE = ("true", "yes", "on"), ("false", "no", "off")


def parse_grant(text: str) -> tuple[str, list[int] | bool]:
    """``--grant KEY=VALUES``: ``leds=1,2``, ``i2c_addresses=0x44``, ``buzzer=yes``."""
    key, sep, value = text.partition("=")
    known = {grant.key: grant for grant in GRANTS}
    if not sep or key not in known:
        raise BundleError(
            f"--grant {text}: expected KEY=VALUES with KEY one of {', '.join(known)} "
            "(e.g. --grant i2c_addresses=0x44 --grant buzzer=yes)"
        )
    grant = known[key]
    if grant.is_switch:
        if value.lower() not in TRUE + FALSE:
            raise BundleError(f"--grant {text}: expected {key}=yes or {key}=no")
        return key, value.lower() in TRUE
    try:
        values = [int(v, 0) for v in value.split(",") if v.strip()]
    except ValueError:
        raise BundleError(f"--grant {text}: expected numbers separated by commas") from None
    for v in values:
        if not grant.holds(v):
            raise BundleError(f"--grant {text}: {grant.show(v)} is not a possible {grant.label}")
    return key, values


def keygen(out: Path, echo: Echo) -> int:
    key = write_key_pair(out)
    echo(f"wrote the private key {out} (mode 0600: keep it off the nodes and out of git)")
    echo(f"and the public key {out}.pub; key id {key.public.key_id}")
    echo("\nto trust it on a node, in its host.toml:\n")
    echo(f'[trust]\nkeys = ["{key.public.text}"]')
    return 0


def create(
    plugin: Path,
    key_file: Path,
    version: str,
    out: Path | None,
    grants: Iterable[str],
    config: HostConfig | None,
    echo: Echo,
    name: str | None = None,
    world: str | None = None,
) -> int:
    """Sign a bundle of ``plugin``. The grants it needs are the ``--grant`` ones,
    else what ``config`` grants a plugin of that name, else none."""
    key = read_signing_key(key_file)
    needs: dict[str, Any] = dict(parse_grant(text) for text in grants)
    source = "--grant" if needs else "none given (--grant KEY=VALUES)"
    plugin_name = name or (plugin.name if plugin.is_dir() else plugin.stem)
    if not needs and config is not None and plugin_name in config.plugins:
        needs = config.plugins[plugin_name].grants.model_dump(exclude_none=True)
        source = f"plugins.{config.plugin_keys[plugin_name]} in {config.path}"
    data = create_bundle(plugin, key, version=version, grants=needs, name=name, world=world)
    manifest = parse_manifest(archive.unpack(data).manifest)
    target = out or Path(f"{manifest.name}-{manifest.version}.bundle")
    write_atomically(target, data)  # a watcher never sees half a bundle
    echo(f"wrote {target} ({len(data)} bytes)")
    echo(f"  {manifest.name} {manifest.version}, {manifest.kind}, world {manifest.world}")
    files = f"{len(manifest.files)} file" + ("s" if len(manifest.files) != 1 else "")
    echo(f"  content {manifest.content} ({files})")
    echo(f"  needs   {describe(manifest.grants)} (from {source})")
    echo(f"  signed  by key {manifest.signer} ({key_file})")
    return 0


def verify(bundle: Path, config: HostConfig, echo: Echo) -> int:
    from wasihost.bundle.verify import verify_bundle

    verdict = verify_bundle(bundle, config)
    echo(f"{bundle}: {verdict.status}: {verdict.reason}")
    return EXIT[verdict.status]


def inspect(bundle: Path, echo: Echo) -> int:
    """What a bundle says about itself; nothing here is verified."""
    parts = archive.read_archive(bundle)
    try:
        manifest = parse_manifest(parts.manifest)
    except BundleError as exc:
        raise BundleError(f"{bundle}: {exc}") from None
    signature = "present" if parts.signature is not None else "none (unsigned)"
    rows = [
        ("name", manifest.name),
        ("version", manifest.version),
        ("kind", manifest.kind),
        ("world", manifest.world),
        ("needs", describe(manifest.grants)),
        ("content", manifest.content),
        ("created", manifest.created_at),
        ("signer", f"key {manifest.signer}"),
        ("signature", signature),
    ]
    echo(f"{bundle} (not verified: wasihost bundle verify checks it against a node's config)")
    for label, value in rows:
        echo(f"  {label:<10}{value}")
    echo(f"  files     {len(manifest.files)}, {sum(f.size for f in manifest.files)} bytes")
    for entry in manifest.files:
        echo(f"    {entry.sha256[:16]}  {entry.size:>9}  {entry.path}")
    return 0


def hash_(plugin: Path, echo: Echo) -> int:
    echo(hash_plugin(plugin))
    return 0
