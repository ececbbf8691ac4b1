"""Hostile plugin bundles: what an attacker on the delivery path (or a careless
signer) can hand a node, and the precise reason each is refused.

A bundle is an uncompressed tar of ``manifest.json``, ``manifest.sig`` and
``plugin/<files>`` (docs/BUNDLES.md). Every case here starts from a good bundle
and breaks one thing: the signature, the trust, the content, the archive
itself, or what the bundle asks the node to grant. None of them may be
installed, and none may make the verifier read more than the caps allow.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from wasihost.bundle import archive
from wasihost.bundle.create import create_bundle
from wasihost.bundle.keys import SigningKey, generate_key, read_signing_key, write_key_pair
from wasihost.bundle.manifest import signed_message
from wasihost.bundle.verify import Verdict, verify_bundle
from wasihost.config import HostConfig, parse_config
from wasihost.errors import BundleError

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
WHEN = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def key() -> SigningKey:
    return generate_key()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The sht31 example plugin (a sensor-plugin needing I2C 0x44), with an asset."""
    folder = tmp_path / "sht31"
    shutil.copytree(PLUGINS / "sht31", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "assets").mkdir()
    (folder / "assets" / "note.txt").write_text("calibrated 2026-12\n")
    return folder


def node(key: SigningKey | None, **plugin: Any) -> HostConfig:
    """A node trusting ``key`` that runs sht31 with LED 3 and I2C 0x44."""
    sht31 = {"world": "sensor-plugin", "led": 3, "grants": {"i2c_addresses": ["0x44"]}, **plugin}
    trust = {"keys": [key.public.text]} if key is not None else {}
    return parse_config({"trust": trust, "plugins": {"sht31": sht31}}, Path("node.toml"))


@pytest.fixture
def good(folder: Path, key: SigningKey) -> bytes:
    grants = {"i2c_addresses": [0x44], "leds": [3]}
    return create_bundle(folder, key, version="1.0.0", grants=grants, created_at=WHEN)


def refused(data: bytes, config: HostConfig, *words: str) -> Verdict:
    verdict = verify_bundle(data, config)
    assert verdict.status == "refused", verdict
    for word in words:
        assert word in verdict.reason, (word, verdict.reason)
    return verdict


def repacked(data: bytes, change: Callable[[archive.Archive], archive.Archive]) -> bytes:
    parts = change(archive.unpack(data))
    return archive.pack(parts.manifest, parts.signature, parts.files)


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None], start: bytes | None = None) -> bytes:
    """A tar holding a good bundle's entries (``start``) then the hostile ``members``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if start is not None:
            with tarfile.open(fileobj=io.BytesIO(start), mode="r:") as good:
                for member in good.getmembers():
                    tar.addfile(member, good.extractfile(member))
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def entry(name: str, data: bytes = b"x = 1\n", kind: bytes = tarfile.REGTYPE) -> tuple[Any, Any]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


# -- the baseline ---------------------------------------------------------------
def test_the_good_bundle_is_valid(good: bytes, key: SigningKey) -> None:
    verdict = verify_bundle(good, node(key))
    assert verdict.status == "valid", verdict.reason
    assert verdict.manifest is not None and verdict.manifest.name == "sht31"


def test_verifying_into_a_folder_leaves_the_checked_files_only_when_valid(
    good: bytes, key: SigningKey, tmp_path: Path
) -> None:
    """A node unpacks a delivery once: the files the check read are the ones it
    installs. A refused bundle leaves nothing behind."""
    into = tmp_path / "incoming" / "plugin"
    into.parent.mkdir()
    verdict = verify_bundle(good, node(key), into=into)
    assert verdict.status == "valid", verdict.reason
    written = {
        p.relative_to(into).as_posix(): p.read_bytes() for p in into.rglob("*") if p.is_file()
    }
    assert written == dict(verdict.files) == archive.unpack(good).files
    tampered = repacked(
        good, lambda a: archive.Archive(a.manifest, a.signature, {**a.files, "app.py": b"x = 2\n"})
    )
    other = tmp_path / "incoming" / "other"
    assert verify_bundle(tampered, node(key), into=other).status == "refused"
    assert not other.exists()


# -- signatures and trust ---------------------------------------------------------
def test_an_unsigned_bundle_is_refused(good: bytes, key: SigningKey) -> None:
    unsigned = repacked(good, lambda a: archive.Archive(a.manifest, None, a.files))
    refused(unsigned, node(key), "unsigned", "manifest.sig")


def test_a_corrupted_signature_is_refused(good: bytes, key: SigningKey) -> None:
    def flip(a: archive.Archive) -> archive.Archive:
        assert a.signature is not None
        raw = bytearray(base64.b64decode(a.signature))
        raw[0] ^= 1
        return archive.Archive(a.manifest, base64.b64encode(bytes(raw)) + b"\n", a.files)

    refused(repacked(good, flip), node(key), "signature", "does not match")


def test_a_signature_that_is_not_one_is_refused(good: bytes, key: SigningKey) -> None:
    junk = repacked(good, lambda a: archive.Archive(a.manifest, b"not base64 at all!\n", a.files))
    refused(junk, node(key), "manifest.sig")


def test_a_manifest_edited_after_signing_is_refused(good: bytes, key: SigningKey) -> None:
    """The attacker bumps the version (or anything) and keeps the old signature."""

    def edit(a: archive.Archive) -> archive.Archive:
        manifest = json.loads(a.manifest)
        manifest["version"] = "9.9.9"
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        return archive.Archive(text.encode(), a.signature, a.files)

    refused(repacked(good, edit), node(key), "signature", "does not match")


def test_grants_widened_in_the_manifest_break_the_signature(good: bytes, key: SigningKey) -> None:
    def widen(a: archive.Archive) -> archive.Archive:
        manifest = json.loads(a.manifest)
        manifest["grants"]["buzzer"] = True
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        return archive.Archive(text.encode(), a.signature, a.files)

    refused(repacked(good, widen), node(key), "signature")


def test_a_bundle_signed_by_an_untrusted_key_is_refused(folder: Path, key: SigningKey) -> None:
    stranger = generate_key()
    data = create_bundle(folder, stranger, version="1.0.0", grants={"i2c_addresses": [0x44]})
    verdict = refused(data, node(key), "not trusted", stranger.public.key_id)
    assert key.public.key_id in verdict.reason  # says which keys the node does trust


def test_an_untrusted_signer_cannot_claim_a_trusted_key_id(folder: Path, key: SigningKey) -> None:
    """A manifest naming the trusted key's id but signed by another key."""
    stranger = generate_key()
    data = create_bundle(folder, stranger, version="1.0.0", grants={"i2c_addresses": [0x44]})

    def claim(a: archive.Archive) -> archive.Archive:
        manifest = json.loads(a.manifest)
        manifest["signer"] = key.public.key_id
        text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        signature = base64.b64encode(stranger.sign(signed_message(text))) + b"\n"
        return archive.Archive(text, signature, a.files)

    refused(repacked(data, claim), node(key), "signature", "does not match")


def test_a_node_that_trusts_no_key_refuses_every_bundle(good: bytes) -> None:
    refused(good, node(None), "trusts no keys", "[trust] keys")


# -- content ------------------------------------------------------------------------
def test_a_changed_file_is_refused_naming_it(good: bytes, key: SigningKey) -> None:
    def tamper(a: archive.Archive) -> archive.Archive:
        files = dict(a.files)
        files["app.py"] = files["app.py"] + b"\nimport os  # backdoor\n"
        return archive.Archive(a.manifest, a.signature, files)

    refused(repacked(good, tamper), node(key), "tampered", "app.py", "sha256")


def test_an_added_file_is_refused_naming_it(good: bytes, key: SigningKey) -> None:
    def add(a: archive.Archive) -> archive.Archive:
        return archive.Archive(a.manifest, a.signature, {**a.files, "evil.py": b"x = 1\n"})

    refused(repacked(good, add), node(key), "tampered", "evil.py", "not in the signed manifest")


def test_a_removed_file_is_refused_naming_it(good: bytes, key: SigningKey) -> None:
    def remove(a: archive.Archive) -> archive.Archive:
        files = {path: data for path, data in a.files.items() if path != "driver.py"}
        return archive.Archive(a.manifest, a.signature, files)

    refused(repacked(good, remove), node(key), "tampered", "driver.py", "missing")


def test_a_file_the_host_would_not_read_is_refused(folder: Path, key: SigningKey) -> None:
    """A signer's tool that packed a test module: the host never reads it, so the
    content the node would run is not what the hash names. Refused, not ignored."""
    data = create_bundle(folder, key, version="1", grants={"i2c_addresses": [0x44]})

    def smuggle(a: archive.Archive) -> archive.Archive:
        manifest = json.loads(a.manifest)
        manifest["files"].append({"path": "test_x.py", "sha256": "0" * 64, "size": 1})
        text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        signature = base64.b64encode(key.sign(signed_message(text))) + b"\n"
        return archive.Archive(text, signature, {**a.files, "test_x.py": b"x"})

    refused(repacked(data, smuggle), node(key), "test_x.py")


# -- the archive itself -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("member", "words"),
    [
        (entry("plugin/../../etc/cron.d/x"), ("..",)),
        (entry("../outside.py"), ("..",)),
        (entry("/etc/passwd"), ("absolute",)),
        (entry("plugin//app2.py"), ("empty",)),
        (entry("plugin/./x.py"), ("'.'",)),
        (entry("plugin\\..\\x.py"), ("backslash",)),
        (entry("plugin/a\nb.py"), ("control",)),
        (entry("plugin/link.py", kind=tarfile.SYMTYPE), ("symlink",)),
        (entry("plugin/hard.py", kind=tarfile.LNKTYPE), ("hard link",)),
        (entry("plugin/dev", kind=tarfile.CHRTYPE), ("not a regular file",)),
        (entry("plugin/fifo", kind=tarfile.FIFOTYPE), ("not a regular file",)),
        (entry("plugin/sub", kind=tarfile.DIRTYPE), ("not a regular file",)),
        (entry("elsewhere.txt"), ("outside plugin/",)),
        (entry("plugin/app.py"), ("twice",)),
        (entry("plugin/APP.py"), ("twice",)),
    ],
    ids=[
        "dotdot-inside",
        "dotdot-top",
        "absolute",
        "empty-part",
        "dot-part",
        "backslash",
        "newline",
        "symlink",
        "hardlink",
        "device",
        "fifo",
        "directory",
        "stray-top-level",
        "duplicate",
        "duplicate-by-case",
    ],
)
def test_hostile_entries_are_refused_naming_them(
    good: bytes, key: SigningKey, member: tuple[tarfile.TarInfo, bytes | None], words: tuple[str]
) -> None:
    verdict = refused(tar_of(member, start=good), node(key), "malformed", *words)
    assert repr(member[0].name)[1:-1] in verdict.reason or member[0].name in verdict.reason


def test_a_symlink_entry_is_never_followed_even_to_a_real_file(
    good: bytes, key: SigningKey, tmp_path: Path
) -> None:
    info, _ = entry("plugin/secrets.py", kind=tarfile.SYMTYPE)
    info.linkname = "/etc/passwd"
    refused(tar_of((info, None), start=good), node(key), "symlink", "plugin/secrets.py")


def test_a_file_over_the_per_file_cap_is_refused_without_reading_it(
    good: bytes, key: SigningKey
) -> None:
    """The header claims 5 GB: refused from the header, before any data is read."""
    info, _ = entry("plugin/big.py", b"")
    info.size = 5 * 1024**3
    header = info.tobuf(tarfile.PAX_FORMAT)
    with tarfile.open(fileobj=io.BytesIO(good), mode="r:") as tar:
        last = tar.getmembers()[-1]
    end = last.offset_data + -(-last.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    data = good[:end] + header + b"\0" * 1024  # the 5 GB of data are never there
    started = time.perf_counter()
    refused(data, node(key), "malformed", "plugin/big.py", "larger than")
    assert time.perf_counter() - started < 1


def test_too_many_bytes_in_all_are_refused(good: bytes, key: SigningKey) -> None:
    """Each file under its cap, together more than a source plugin may load."""
    chunk = b"#" * (archive.MAX_FILE_BYTES - 1)
    count = archive.MAX_SOURCE_BYTES // len(chunk) + 1
    members = [entry(f"plugin/pad{i}.py", chunk) for i in range(count)]
    refused(tar_of(*members, start=good), node(key), "malformed", "in all")


def test_too_many_entries_are_refused(good: bytes, key: SigningKey) -> None:
    members = [entry(f"plugin/m{i}.py", b"") for i in range(archive.MAX_ENTRIES + 1)]
    refused(tar_of(*members, start=good), node(key), "malformed", "entries")


def test_a_compressed_bomb_is_refused_without_inflating_it(key: SigningKey) -> None:
    """1 GiB of zeros gzipped to about 1 MB: a bundle is never decompressed."""
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
        block = b"\0" * (1024 * 1024)
        for _ in range(1024):
            gz.write(block)
    started = time.perf_counter()
    refused(raw.getvalue(), node(key), "malformed", "compressed")
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"PK\x03\x04" + b"\0" * 600, ("zip",)),
        (b"BZh91AY&SY" + b"\0" * 600, ("compressed",)),
        (b"\xfd7zXZ\x00" + b"\0" * 600, ("compressed",)),
        (b"\x28\xb5\x2f\xfd" + b"\0" * 600, ("compressed",)),
        (b"hello, I am not a tar file at all" * 40, ("not a tar",)),
        (b"", ("empty",)),
    ],
    ids=["zip", "bzip2", "xz", "zstd", "garbage", "empty"],
)
def test_what_is_not_a_bundle_is_refused(
    data: bytes, words: tuple[str, ...], key: SigningKey
) -> None:
    refused(data, node(key), "malformed", *words)


def test_a_truncated_bundle_is_refused(good: bytes, key: SigningKey) -> None:
    refused(good[: len(good) // 2], node(key), "malformed")


def test_a_bundle_file_over_the_cap_is_refused_before_it_is_read(
    tmp_path: Path, key: SigningKey
) -> None:
    path = tmp_path / "huge.bundle"
    with path.open("wb") as out:  # sparse: no disk used, no bytes to read
        out.truncate(archive.MAX_BUNDLE_BYTES + 1)
    started = time.perf_counter()
    refused_verdict = verify_bundle(path, node(key))
    assert refused_verdict.status == "refused"
    assert "larger than" in refused_verdict.reason and str(path) in refused_verdict.reason
    assert time.perf_counter() - started < 1


def test_a_manifest_that_is_not_json_is_refused(good: bytes, key: SigningKey) -> None:
    broken = repacked(good, lambda a: archive.Archive(b"{not json", a.signature, a.files))
    refused(broken, node(key), "malformed", "manifest.json")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("name", "../../etc", ("name",)),
        ("kind", "native", ("kind",)),
        ("content", "md5:abc", ("content",)),
        ("grants", {"leds": [1], "root": True}, ("grants", "root")),
        ("grants", {"leds": "all"}, ("grants.leds",)),
        ("extra", 1, ("unknown", "extra")),
        ("format", "wasihost-bundle/99", ("format",)),
    ],
    ids=["name", "kind", "content", "grant-kind", "grant-value", "unknown-key", "format"],
)
def test_a_signed_manifest_with_bad_fields_is_refused(
    good: bytes, key: SigningKey, field: str, value: Any, words: tuple[str, ...]
) -> None:
    """Even signed by a trusted key (a broken tool): each field is checked."""

    def resign(a: archive.Archive) -> archive.Archive:
        manifest = json.loads(a.manifest)
        manifest[field] = value
        text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        return archive.Archive(text, base64.b64encode(key.sign(signed_message(text))), a.files)

    refused(repacked(good, resign), node(key), *words)


def test_a_plugin_toml_for_another_world_is_refused(folder: Path, key: SigningKey) -> None:
    data = create_bundle(folder, key, version="1", grants={"i2c_addresses": [0x44]})

    def lie(a: archive.Archive) -> archive.Archive:
        manifest = json.loads(a.manifest)
        manifest["world"] = "dashboard-plugin"
        text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        return archive.Archive(text, base64.b64encode(key.sign(signed_message(text))), a.files)

    refused(repacked(data, lie), node(key), "plugin.toml", "sensor-plugin", "dashboard-plugin")


# -- what the node grants ------------------------------------------------------------
def test_a_bundle_needing_more_grants_is_held_naming_them(folder: Path, key: SigningKey) -> None:
    needs = {"i2c_addresses": [0x44, 0x45], "leds": [3, 4], "buzzer": True}
    data = create_bundle(folder, key, version="2.0.0", grants=needs, created_at=WHEN)
    verdict = verify_bundle(data, node(key))
    assert verdict.status == "needs-grants"
    assert verdict.missing == ("LEDs 4", "I2C 0x45", "buzzer")
    assert "plugins.sht31.grants" in verdict.reason and "node.toml" in verdict.reason


def test_a_bundle_for_a_plugin_the_node_does_not_run_is_held(folder: Path, key: SigningKey) -> None:
    data = create_bundle(folder, key, version="1", grants={"i2c_addresses": [0x44]})
    config = parse_config({"trust": {"keys": [key.public.text]}}, Path("node.toml"))
    verdict = verify_bundle(data, config)
    assert verdict.status == "needs-grants"
    assert "plugins.sht31" in verdict.reason and "not configured" in verdict.reason


def test_a_bundle_for_another_world_than_the_config_says_is_refused(
    good: bytes, key: SigningKey
) -> None:
    config = node(key, world="dht22-plugin", led=None, grants={})
    refused(good, config, "world", "dht22-plugin", "sensor-plugin")


def test_a_bundle_the_node_pins_away_is_refused_naming_both_hashes(
    good: bytes, key: SigningKey
) -> None:
    pin = "sha256:" + "0" * 64
    verdict = refused(good, node(key, pin=pin), "pin", pin)
    assert verdict.manifest is not None and verdict.manifest.content in verdict.reason


# -- the signer's own key --------------------------------------------------------------
def test_a_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    write_key_pair(path)
    assert read_signing_key(path).public.key_id
    os.chmod(path, 0o644)
    with pytest.raises(BundleError, match=r"readable by others .*chmod 600"):
        read_signing_key(path)
