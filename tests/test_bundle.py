"""Plugin bundles as a signer and an operator use them: the format's promises
(deterministic bytes, the host's own content hash) and the ``wasihost bundle``
commands. What an attacker can do to a bundle is in
tests/hostile/test_hostile_bundles.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wasihost.bundle import archive
from wasihost.bundle.commands import parse_grant
from wasihost.bundle.create import create_bundle, hash_plugin
from wasihost.bundle.keys import generate_key, read_signing_key
from wasihost.bundle.manifest import parse_manifest
from wasihost.cli import main
from wasihost.errors import BundleError
from wasihost.runtime.source import read_sources

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
WHEN = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", ["dht22", "pi-monitor", "bme680", "dashboard", "sht31"])
def test_the_content_hash_is_the_one_the_host_loads_with(name: str) -> None:
    """One function: what a bundle signs and a pin names is what loading computes."""
    assert hash_plugin(PLUGINS / name) == read_sources(PLUGINS / name).content


def test_a_component_hash_is_the_sha256_of_its_bytes(built: dict[str, Path]) -> None:
    data = built["dht22"].read_bytes()
    assert hash_plugin(built["dht22"]) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_same_input_gives_the_same_bytes(tmp_path: Path) -> None:
    key = generate_key()
    folder = tmp_path / "sht31"
    shutil.copytree(PLUGINS / "sht31", folder, ignore=shutil.ignore_patterns("__pycache__"))
    first = create_bundle(folder, key, version="1.0.0", created_at=WHEN)
    os.utime(folder / "app.py", (0, 0))  # times, owners and modes are not part of a bundle
    assert create_bundle(folder, key, version="1.0.0", created_at=WHEN) == first
    (folder / "app.py").write_text((folder / "app.py").read_text() + "\n")
    assert create_bundle(folder, key, version="1.0.0", created_at=WHEN) != first


def test_a_bundle_carries_only_what_the_host_reads(tmp_path: Path) -> None:
    folder = tmp_path / "sht31"
    shutil.copytree(PLUGINS / "sht31", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    (folder / ".secret").write_text("token")
    (folder / "assets").mkdir()
    (folder / "assets" / "page.html").write_text("<p>hi</p>")
    data = create_bundle(folder, generate_key(), version="1", created_at=WHEN)
    files = archive.unpack(data).files
    assert sorted(files) == ["app.py", "assets/page.html", "driver.py", "plugin.toml"]
    manifest = parse_manifest(archive.unpack(data).manifest)
    assert manifest.created_at == "2026-12-06T12:00:00Z"
    assert manifest.content == hash_plugin(folder)


def test_a_component_folder_is_bundled_as_its_built_wasm(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "app.py").write_text("")
    (folder / "plugin.toml").write_text('world = "sensor-plugin"\nkind = "component"\n')
    with pytest.raises(BundleError, match=r'kind = "component": build it and bundle its .wasm'):
        create_bundle(folder, generate_key(), version="1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i2c_addresses=0x44,0x45", ("i2c_addresses", [0x44, 0x45])),
        ("leds=3", ("leds", [3])),
        ("buzzer=yes", ("buzzer", True)),
        ("fan=no", ("fan", False)),
    ],
)
def test_grants_are_written_as_the_config_writes_them(
    text: str, expected: tuple[str, object]
) -> None:
    assert parse_grant(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("root=1", "KEY one of leds, gpio_pins"),
        ("gpio_pins=40", "40 is not a possible GPIO"),
        ("buzzer=maybe", "buzzer=yes or buzzer=no"),
        ("leds=one", "numbers separated by commas"),
    ],
)
def test_a_bad_grant_is_refused_naming_it(text: str, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        parse_grant(text)


def test_the_commands_from_key_to_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    key = tmp_path / "signing.key"
    assert main(["bundle", "keygen", str(key)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public = (tmp_path / "signing.key.pub").read_text().strip()
    assert public == read_signing_key(key).public.text and public in capsys.readouterr().out
    assert main(["bundle", "keygen", str(key)]) == 2  # never over an existing key
    assert "already exists" in capsys.readouterr().err

    node = tmp_path / "host.toml"
    node.write_text(
        f'[trust]\nkeys = ["{public}"]\n\n[plugins.sht31]\nworld = "sensor-plugin"\n'
        'led = 3\ngrants = { i2c_addresses = ["0x44"] }\n'
    )
    plugin = str(PLUGINS / "sht31")
    args = ["bundle", "create", plugin, "--key", str(key), "--version", "1.0.0"]
    assert main([*args, "--config", str(node)]) == 0
    out = capsys.readouterr().out
    assert "wrote sht31-1.0.0.bundle" in out and "I2C 0x44" in out and "plugins.sht31" in out
    assert main(["bundle", "verify", "sht31-1.0.0.bundle", "--config", str(node)]) == 0
    assert "sht31-1.0.0.bundle: valid: sht31 1.0.0" in capsys.readouterr().out

    greedy = [*args, "--grant", "i2c_addresses=0x44", "--grant", "fan=yes", "-o", "greedy.bundle"]
    assert main(greedy) == 0
    capsys.readouterr()
    assert main(["bundle", "verify", "greedy.bundle", "--config", str(node)]) == 4
    assert "needs-grants: needs grants" in capsys.readouterr().out

    assert main(["bundle", "inspect", "sht31-1.0.0.bundle"]) == 0
    shown = capsys.readouterr().out
    assert "not verified" in shown and "content   sha256:" in shown and "plugin.toml" in shown
    assert main(["bundle", "hash", plugin]) == 0
    assert capsys.readouterr().out.strip() == hash_plugin(PLUGINS / "sht31")

    tampered = bytearray(Path("sht31-1.0.0.bundle").read_bytes())
    at = tampered.index(b"class ")  # in app.py's data
    tampered[at] = ord("C")
    Path("tampered.bundle").write_bytes(bytes(tampered))
    assert main(["bundle", "verify", "tampered.bundle", "--config", str(node)]) == 1
    assert "refused: tampered: plugin/app.py" in capsys.readouterr().out
    Path("junk.bundle").write_bytes(b"junk" * 200)
    assert main(["bundle", "inspect", "junk.bundle"]) == 2
    assert "junk.bundle: malformed bundle" in capsys.readouterr().err
    manifest = json.loads(archive.unpack(Path("sht31-1.0.0.bundle").read_bytes()).manifest)
    assert manifest["signer"] == read_signing_key(key).public.key_id
