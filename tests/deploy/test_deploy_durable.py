"""An install is on the SD card before deployed.json says it is (docs/MQTT.md,
"Deploying plugins", step 6; issue 19).

The record is written last and durably, so a start trusts it. Unless the
files it names were synced first, a power cut right after it leaves current/
with empty or partial files under a record that names the new version, and
the host loads garbage. A power cut cannot be simulated in a test, so these
record the order of every ``os.fsync`` (by the inode it syncs: files and
folders keep theirs across renames) and every rename, and check the durable
order: every installed file and folder synced, then the renames, then the
plugin folder synced, then the record written.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, cast

import pytest

from tests.deploy.test_deploy_power_cut import NONE, config, key, stage, start
from tests.deploy_fleet import counter
from wasihost.bundle import archive
from wasihost.bundle.create import create_bundle
from wasihost.bundle.keys import SigningKey
from wasihost.bundle.manifest import BundleManifest
from wasihost.bundle.verify import Verdict
from wasihost.config import HostConfig
from wasihost.deploy.disk import CURRENT, RECORD, plugin_dir, restore_files, update_record
from wasihost.deploy.node import DeployNode
from wasihost.grants import Grants
from wasihost.runtime.reload import Reloader

__all__ = ["config", "key"]  # fixtures, used by name

Inode = tuple[int, int]
Event = tuple[str, Any]


def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """("fsync", inode) and ("rename", source, target) in the order they happen;
    ``write_atomically``'s ``os.replace`` of deployed.json is a rename too."""
    events: list[Event] = []
    fsync, rename, replace = os.fsync, os.rename, os.replace

    def syncing(fd: int) -> None:
        st = os.fstat(fd)
        events.append(("fsync", (st.st_dev, st.st_ino)))
        fsync(fd)

    def renaming(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        events.append(("rename", (Path(source), Path(target))))
        rename(source, target, *args, **kwargs)

    def replacing(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        events.append(("rename", (Path(source), Path(target))))
        replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", syncing)
    monkeypatch.setattr(os, "rename", renaming)
    monkeypatch.setattr(os, "replace", replacing)
    return events


def inode(path: Path) -> Inode:
    st = path.lstat()
    return st.st_dev, st.st_ino


def assert_durable_order(events: list[Event], folder: Path) -> None:
    """Every file and folder under current/ synced before it became current/,
    the plugin folder synced after the renames, and all of it before the
    record's rename: the record never names files a power cut can still lose."""
    renames = [(i, pair) for i, (what, pair) in enumerate(events) if what == "rename"]
    [into_current] = [i for i, (_, target) in renames if target == folder / CURRENT]
    [record] = [i for i, (_, target) in renames if target == folder / RECORD]
    last_move = max(i for i, (_, target) in renames if target.name != RECORD and i < record)
    synced = {i: node for i, (what, node) in enumerate(events) if what == "fsync"}
    installed = [folder / CURRENT, *sorted((folder / CURRENT).rglob("*"))]
    for path in installed:
        assert any(node == inode(path) for i, node in synced.items() if i < into_current), (
            f"{path.relative_to(folder)} was not synced before it became current/"
        )
    assert any(node == inode(folder) for i, node in synced.items() if last_move < i < record), (
        "the plugin folder was not synced between the renames and the record"
    )


def test_a_source_install_is_synced_before_its_record(
    config: HostConfig,
    key: SigningKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A source plugin with a subfolder (assets/): its files and both folders."""
    source = counter(tmp_path / "bundles" / "2.0.0" / "counter", "2.0.0")
    (source / "assets").mkdir()
    (source / "assets" / "table.txt").write_text("1 2 3\n")
    payload = create_bundle(source, key, version="2.0.0")
    events = recorded(monkeypatch)
    stage(config, key, tmp_path, "2.0.0", NONE, payload=payload)
    folder = plugin_dir(config, "counter")
    assert (folder / CURRENT / "assets" / "table.txt").read_text() == "1 2 3\n"
    assert_durable_order(events, folder)


def test_a_component_install_is_synced_before_its_record(
    config: HostConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A component's plugin.wasm, written by ``_stage_files`` itself."""
    wasm = b"\x00asm\x0d\x00\x01\x00" + b"\x00" * 64
    content = "sha256:" + hashlib.sha256(wasm).hexdigest()
    manifest = BundleManifest(
        "counter", "2.0.0", "component", "sensor-plugin", Grants(), (), content, "", ""
    )
    verdict = Verdict("valid", "", manifest, files={archive.WASM: wasm})
    node = DeployNode(config, {}, cast(Reloader, None), {}, lambda topic, payload: None)
    folder = plugin_dir(config, "counter")
    (folder / "incoming").mkdir(parents=True)
    events = recorded(monkeypatch)
    node._stage_files(folder, verdict, manifest, dict(NONE), {"restarts": 0})
    assert (folder / CURRENT / archive.WASM).read_bytes() == wasm
    assert_durable_order(events, folder)


def test_a_start_syncs_nothing(
    config: HostConfig,
    key: SigningKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A start with nothing to repair or count (a healthy version) syncs
    nothing: only an install pays for its fsyncs, not every restart."""
    stage(config, key, tmp_path, "2.0.0", NONE)
    update_record(plugin_dir(config, "counter"), probation=None)  # judged healthy
    events = recorded(monkeypatch)
    assert start(config).source == plugin_dir(config, "counter") / CURRENT
    assert [event for event in events if event[0] == "fsync"] == []


def test_a_rollback_is_synced_before_its_record(
    config: HostConfig,
    key: SigningKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """previous/ moved back to current/ is on the card before deployed.json says
    the version before runs again: else a power cut could leave a record naming
    a version whose folder still has its old name."""
    stage(config, key, tmp_path, "2.0.0", NONE)
    stage(config, key, tmp_path, "3.0.0", {"version": "2.0.0", "content_hash": None})
    folder = plugin_dir(config, "counter")
    events = recorded(monkeypatch)
    restore_files(folder, None)
    renames = [(i, pair) for i, (what, pair) in enumerate(events) if what == "rename"]
    [record] = [i for i, (_, target) in renames if target == folder / RECORD]
    [back] = [i for i, (_, target) in renames if target == folder / CURRENT]
    assert any(what == "fsync" and node == inode(folder) for what, node in events[back:record]), (
        "the plugin folder was not synced between the renames and the record"
    )
