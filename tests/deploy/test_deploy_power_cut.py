"""A node's deploy work cut short: a power cut in the middle of installing, a
delivery that fails to load while the version before it is on probation, and
a full disk at start (docs/MQTT.md, "Deploying plugins"; issue 19).

A power cut is a ``BaseException`` raised from the Nth ``Path.rename`` or from
``write_record``: the ``except Exception`` undo in ``_stage_files`` does not
run, as it would not on a Pi that lost power. Then the start path runs
(``deployed_spec``, as ``Host`` calls it for every plugin before any loads),
and the test looks at what it points at and what is on disk.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from tests.deploy.test_deploy_node import (
    Fleet,
    bundle,
    deployed,
    digest,
    reports,
    until,
    version,
)
from tests.deploy_fleet import counter
from tests.telemetry.test_mqtt import Subscriber
from wasihost.boards.sim import SimBoard
from wasihost.bundle.create import create_bundle, hash_plugin
from wasihost.bundle.keys import SigningKey, generate_key
from wasihost.config import HostConfig
from wasihost.deploy import disk, protocol
from wasihost.deploy.disk import (
    INCOMING,
    RECORD,
    ROLLING,
    deployed_spec,
    plugin_dir,
    restore_files,
    update_record,
    write_record,
)
from wasihost.deploy.node import DeployNode
from wasihost.host import Host
from wasihost.runtime.contract import load_contract
from wasihost.runtime.plugin import PluginSpec
from wasihost.runtime.reload import Reloader
from wasihost.specs import plugin_specs

NONE: dict[str, str | None] = {"version": None, "content_hash": None}
INSTALLED_AT = itertools.count(1_700_000_000_000, 60_000)


class PowerCut(BaseException):
    """The power going off: no handler in the code under test runs."""


@pytest.fixture
def key() -> SigningKey:
    return generate_key()


@pytest.fixture
def config(make_config: Callable[..., Any], tmp_path: Path, key: SigningKey) -> HostConfig:
    """A node with the counter plugin (1.0.0 configured), deploying, trusting ``key``."""
    configured = counter(tmp_path / "plugins" / "counter", "1.0.0")
    made: HostConfig = make_config(
        {"counter": {"source": str(configured), "world": "sensor-plugin"}},
        mqtt={"enabled": True, "outbox_path": str(tmp_path / "outbox.sqlite3")},
        trust={"keys": [key.public.text]},
        deploy={"enabled": True, "dir": str(tmp_path / "deploy")},
        runtime={"plugins_dir": str(tmp_path / "plugins")},
    )
    return made


def stage(
    config: HostConfig,
    key: SigningKey,
    tmp_path: Path,
    version: str,
    running: dict[str, str | None],
    cut: Callable[[], None] | None = None,
    payload: bytes | None = None,
) -> dict[str, str | None]:
    """Install ``version`` (``payload``, or a new bundle of it) on disk as
    ``DeployNode._install`` does: verified into incoming/, ``_stage_files``,
    incoming/ removed after. ``cut`` arms a power cut just before
    ``_stage_files``, after the verify (which renames too)."""
    node = DeployNode(config, {}, cast(Reloader, None), {}, lambda topic, payload: None)
    folder = plugin_dir(config, "counter")
    payload = payload if payload is not None else bundle(tmp_path, key, version)
    verdict = node._verify_into(payload, folder / INCOMING)
    manifest = verdict.manifest
    assert verdict.status == "valid" and manifest is not None, verdict.reason
    probation = {
        "restarts": 0,
        "since_ms": next(INSTALLED_AT),  # each install its own, as the wall clock gives
        "source": "node",
        "previous": running,
        "bundle_sha256": digest(payload),
    }
    if cut is not None:
        cut()
    node._stage_files(folder, verdict, manifest, running, probation)
    shutil.rmtree(folder / INCOMING)
    return {"version": version, "content_hash": manifest.content}


def cut_at_rename(monkeypatch: pytest.MonkeyPatch, n: int) -> Callable[[], None]:
    """A power cut at the ``n``th ``Path.rename`` once armed (it never happens)."""

    def arm() -> None:
        calls = 0
        rename = Path.rename

        def cutting(self: Path, target: Any) -> Path:
            nonlocal calls
            calls += 1
            if calls == n:
                raise PowerCut
            return rename(self, target)

        monkeypatch.setattr(Path, "rename", cutting)

    return arm


def cut_at_record(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """A power cut when deployed.json is written, after every rename."""

    def cutting(path: Path, record: dict[str, Any]) -> None:
        raise PowerCut

    return lambda: monkeypatch.setattr(disk, "write_record", cutting)


def start(config: HostConfig) -> PluginSpec:
    """The counter's spec as a host starting now loads it."""
    [spec] = plugin_specs(config, load_contract())
    return deployed_spec(config, spec)


def record_of(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / RECORD).read_text())
    return data


def warnings_about(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "wasihost.deploy.node"
        and r.levelno == logging.WARNING
        and "[counter]" in r.getMessage()
    ]


# -- a power cut while staging, repaired at start ---------------------------------
@pytest.mark.parametrize("cut", ["after rename 1", "after rename 2", "after rename 3"])
def test_a_power_cut_while_installing_is_undone_at_start(
    config: HostConfig,
    key: SigningKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    cut: str,
) -> None:
    """3.0.0 runs (healthy, 2.0.0 in previous/) when 4.0.0's install loses power
    between its renames: previous/ -> incoming/previous, current/ -> previous/,
    incoming/plugin -> current/, then the record. At start the moves are undone
    before anything loads: 3.0.0 runs from current/, 2.0.0 is back in previous/,
    the record is the one before. Before: after rename 1 previous/ was lost (no
    version to roll back to); after rename 2 the node ran its configured 1.0.0;
    after rename 3 it ran 4.0.0, unrecorded, with no health gate, reported as 3.0.0."""
    folder = plugin_dir(config, "counter")
    two = stage(config, key, tmp_path, "2.0.0", NONE)
    update_record(folder, probation=None)  # healthy
    three = stage(config, key, tmp_path, "3.0.0", two)
    update_record(folder, probation=None)
    before = record_of(folder)
    with monkeypatch.context() as patched:
        arm = {
            "after rename 1": cut_at_rename(patched, 2),
            "after rename 2": cut_at_rename(patched, 3),
            "after rename 3": cut_at_record(patched),
        }[cut]
        with pytest.raises(PowerCut):
            stage(config, key, tmp_path, "4.0.0", three, arm)
    caplog.set_level(logging.INFO, logger="wasihost.deploy.node")

    assert start(config).source == folder / "current"
    assert hash_plugin(folder / "current") == three["content_hash"]
    assert hash_plugin(folder / "previous") == two["content_hash"]
    assert record_of(folder) == before
    assert not (folder / INCOMING).exists()
    said = warnings_about(caplog)
    assert len(said) == 1, said
    assert start(config).source == folder / "current"  # nothing left to repair
    assert warnings_about(caplog) == said


@pytest.mark.parametrize("before", ["no record", "rolled back to the configured version"])
def test_a_power_cut_in_a_first_delivery_leaves_the_configured_version(
    config: HostConfig,
    key: SigningKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    before: str,
) -> None:
    """The first delivery (no deployed version: the configured 1.0.0 runs) loses
    power after incoming/plugin became current/, before the record: current/
    holds a version no record names, so it goes, and 1.0.0 runs. Before, 2.0.0
    ran, unrecorded and never on probation."""
    folder = plugin_dir(config, "counter")
    folder.mkdir(parents=True)
    old = {"current": None, "previous": None, "rejected": {"bundle_sha256": "sha256:x"}}
    if before != "no record":
        write_record(folder / RECORD, old)
    with monkeypatch.context() as patched, pytest.raises(PowerCut):
        stage(config, key, tmp_path, "2.0.0", NONE, cut_at_record(patched))
    assert (folder / "current").is_dir()
    caplog.set_level(logging.INFO, logger="wasihost.deploy.node")

    assert start(config).source == tmp_path / "plugins" / "counter"
    assert not (folder / "current").exists() and not (folder / INCOMING).exists()
    if before == "no record":
        assert not (folder / RECORD).exists()
    else:
        assert record_of(folder) == old
    assert len(warnings_about(caplog)) == 1, warnings_about(caplog)


def test_a_power_cut_under_a_damaged_record_deletes_nothing(
    config: HostConfig,
    key: SigningKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a deployed.json that cannot be read nothing says which version is
    which: the start path says so and deletes nothing (the host still starts,
    as with any damaged record)."""
    folder = plugin_dir(config, "counter")
    folder.mkdir(parents=True)
    (folder / RECORD).write_text('{"current": ')
    with monkeypatch.context() as patched, pytest.raises(PowerCut):
        stage(config, key, tmp_path, "2.0.0", NONE, cut_at_record(patched))
    caplog.set_level(logging.INFO, logger="wasihost.deploy.node")

    start(config)
    assert (folder / "current").is_dir() and (folder / RECORD).read_text() == '{"current": '
    said = warnings_about(caplog)
    assert len(said) == 1 and RECORD in said[0], said


# -- a delivery that fails to load while the one before is on probation -----------
def broken_bundle(tmp_path: Path, key: SigningKey, version: str) -> bytes:
    """A bundle that verifies but whose plugin raises at import: it cannot load."""
    folder = counter(tmp_path / "bundles" / version / "counter", version)
    app = folder / "app.py"
    app.write_text(app.read_text() + "\nraise RuntimeError('broken at import')\n")
    return create_bundle(folder, key, version=version)


async def test_a_version_that_fails_to_load_gives_back_the_probation_of_the_one_before(
    fleet: Fleet, tmp_path: Path
) -> None:
    """3.0.0 is live and on probation (2.0.0 before it, in previous/) when 4.0.0
    arrives and fails to load. 3.0.0 goes back to what it was: on probation in
    deployed.json, 2.0.0 in previous/, and judged by its gate, which here passes.
    Before, the record was rewritten without 3.0.0's probation (and without
    previous/): 3.0.0 ran on, never judged, and a restart did not judge it either."""
    host = fleet.host("n1", gate_polls=3)
    await fleet.start("n1")
    assert host.deploy is not None
    folder = tmp_path / "n1" / "deploy" / "counter"
    three = bundle(tmp_path, fleet.key, "3.0.0")
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        await fleet.deliver("2.0.0")
        await until(lambda: ("2.0.0", "healthy") in reports(sub), "2.0.0 healthy", (host,))
        await host.deploy.wait_idle()
        await fleet.deliver(three)
        # No cycles from here until 4.0.0 failed: 3.0.0's gate cannot end meanwhile.
        await until(lambda: ("3.0.0", "live") in reports(sub), "3.0.0 live")
        await host.deploy.wait_idle()
        before = deployed(tmp_path)
        assert before["probation"]["bundle_sha256"] == digest(three), before
        await fleet.publish(
            "wasihost/deploy/node/n1/counter", broken_bundle(tmp_path, fleet.key, "4.0.0")
        )
        await until(lambda: ("4.0.0", "failed") in reports(sub), "4.0.0 failed")
        await host.deploy.wait_idle()
        assert version(host) == "3.0.0"
        assert deployed(tmp_path) == before
        assert hash_plugin(folder / "current") == before["current"]["content_hash"]
        assert hash_plugin(folder / "previous") == before["previous"]["content_hash"]
        gate = host.deploy._held["counter"].gate
        assert gate is not None and gate.bundle == digest(three), gate
        await until(lambda: ("3.0.0", "healthy") in reports(sub), "3.0.0 healthy", (host,))
        await host.deploy.wait_idle()
    assert "probation" not in deployed(tmp_path)


# -- a full disk at start -----------------------------------------------------------
def on_probation(config: HostConfig, key: SigningKey, tmp_path: Path) -> tuple[Any, Any]:
    """3.0.0 installed and on probation, 2.0.0 (healthy before it) in previous/."""
    folder = plugin_dir(config, "counter")
    two = stage(config, key, tmp_path, "2.0.0", NONE)
    update_record(folder, probation=None)
    three = stage(config, key, tmp_path, "3.0.0", two)
    return two, three


def full_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, record: dict[str, Any]) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(disk, "write_record", full)


def test_a_full_disk_does_not_keep_a_version_on_probation_running_across_restarts(
    config: HostConfig,
    key: SigningKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The host keeps stopping under 3.0.0, on probation, with the disk full: the
    restart count cannot be written to deployed.json. The first such start still
    runs 3.0.0 (as a counted one would); from the next, 2.0.0 runs, from
    previous/, without a write, and the log says why; once the disk has room,
    the start rolls 3.0.0 back on disk. Before, the count never advanced, so
    3.0.0 ran at every start, never rolled back."""
    folder = plugin_dir(config, "counter")
    two, three = on_probation(config, key, tmp_path)
    before = record_of(folder)
    caplog.set_level(logging.INFO, logger="wasihost.deploy.node")
    with monkeypatch.context() as patched:
        full_disk(patched)
        assert start(config).source == folder / "current"  # 3.0.0: one restart, as counted
        for _ in range(2):
            assert start(config).source == folder / "previous"  # 2.0.0
        assert record_of(folder) == before
        assert hash_plugin(folder / "current") == three["content_hash"]
        assert hash_plugin(folder / "previous") == two["content_hash"]
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert said and all("[counter]" in s and "2.0.0" in s for s in said), said

    assert start(config).source == folder / "current"  # room again: rolled back on disk
    assert hash_plugin(folder / "current") == two["content_hash"]
    record = record_of(folder)
    assert record["current"] == two and "probation" not in record, record
    assert "across 2 restarts" in record["rejected"]["report"]["reason"], record
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def test_a_full_disk_that_cannot_even_mark_the_restart_runs_the_previous_version(
    config: HostConfig, key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not even an empty file fits: the restart cannot be counted at all, so the
    version on probation is not run at this start."""
    folder = plugin_dir(config, "counter")
    on_probation(config, key, tmp_path)
    full_disk(monkeypatch)

    def no_room(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "touch", no_room)
    assert start(config).source == folder / "previous"


async def test_a_node_running_the_previous_version_for_a_full_disk_reports_it(
    config: HostConfig, key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the start runs 2.0.0 from previous/ in place of 3.0.0 on probation,
    the node says 2.0.0 runs and judges nothing: 3.0.0's gate is not 2.0.0's."""
    two, _ = on_probation(config, key, tmp_path)
    full_disk(monkeypatch)
    start(config)  # the one start 3.0.0 still gets
    host = Host(config, board=SimBoard(seed=1))
    try:
        host.load_plugins()
        assert version(host) == "2.0.0"
        assert host.deploy is not None
        await host.deploy.start()
        assert host.deploy.versions["counter"] == two
        assert host.deploy._held["counter"].gate is None
    finally:
        host.close()


# -- what a rollback or a full disk leaves behind ------------------------------------
def test_a_power_cut_after_a_rollback_to_the_configured_version_keeps_it(
    config: HostConfig, key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2.0.0, the first deployed version, is rolled back at a start (the host kept
    stopping under it): its record names no deployed version, so the configured
    1.0.0 runs. The power goes off while .rolling-back (2.0.0, set aside) is being
    removed. The next start runs 1.0.0 and removes what is left. Before, finding
    current/ missing beside .rolling-back, it moved 2.0.0 (or what was left of it)
    back to current/: the rejected version ran, named by no record, with no gate."""
    folder = plugin_dir(config, "counter")
    stage(config, key, tmp_path, "2.0.0", NONE)
    start(config)  # a restart on probation
    rmtree = shutil.rmtree

    def cutting(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path).name == ROLLING and Path(path).exists():
            raise PowerCut
        rmtree(path, *args, **kwargs)

    with monkeypatch.context() as patched, pytest.raises(PowerCut):
        patched.setattr(shutil, "rmtree", cutting)
        start(config)  # one too many: rolled back, cut before 2.0.0 is removed
    assert record_of(folder)["current"] is None and (folder / ROLLING).is_dir()

    assert start(config).source == tmp_path / "plugins" / "counter"
    assert not (folder / "current").exists() and not (folder / ROLLING).exists()
    assert start(config).source == tmp_path / "plugins" / "counter"


def test_a_restart_counted_for_an_earlier_probation_does_not_count_again(
    config: HostConfig, key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3.0.0 on probation starts once on a full disk (the restart counted in an
    empty file), then its gate rolls it back. Later the same bundle is installed
    again, a new probation: its first restart is its first. Before, the file of
    the old probation (named for the same bundle) was still there and counted:
    3.0.0 was rolled back at its first restart."""
    folder = plugin_dir(config, "counter")
    payload = bundle(tmp_path, key, "3.0.0")
    two = stage(config, key, tmp_path, "2.0.0", NONE)
    update_record(folder, probation=None)
    stage(config, key, tmp_path, "3.0.0", two, payload=payload)
    with monkeypatch.context() as patched:
        full_disk(patched)
        assert start(config).source == folder / "current"
    restore_files(folder, {"bundle_sha256": digest(payload), "report": {}})  # its gate's verdict
    assert record_of(folder)["current"] == two

    three = stage(config, key, tmp_path, "3.0.0", two, payload=payload)  # delivered again
    assert start(config).source == folder / "current"
    assert record_of(folder)["current"] == three
    assert record_of(folder)["probation"]["restarts"] == 1
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def reporting(host: Host) -> list[dict[str, Any]]:
    """The counter's rollout reports ``host`` publishes from now on."""
    assert host.deploy is not None
    said: list[dict[str, Any]] = []
    topic = protocol.report_topic(host.config.node_id, "counter")

    def publish(to: str, payload: bytes) -> None:
        if to == topic:
            said.append(json.loads(payload))

    host.deploy.publish = publish
    return said


async def test_a_version_held_back_on_a_full_disk_is_reported_and_not_installed_again(
    config: HostConfig, key: SigningKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployer waiting for 3.0.0's verdict hears one when the node holds it
    back: rolled-back, 2.0.0 running, the reason saying why. The delivery of
    3.0.0 still retained on the broker, received again at connect, is not
    installed again (with room on disk by then): the report is said again.
    Before, nothing was published (the deployer waited for its timeout) and the
    re-delivery installed 3.0.0 with a new probation, its restarts forgotten."""
    folder = plugin_dir(config, "counter")
    payload = bundle(tmp_path, key, "3.0.0")
    two = stage(config, key, tmp_path, "2.0.0", NONE)
    update_record(folder, probation=None)
    three = stage(config, key, tmp_path, "3.0.0", two, payload=payload)
    before = record_of(folder)
    with monkeypatch.context() as patched:
        full_disk(patched)
        start(config)  # the one start 3.0.0 still gets
        host = Host(config, board=SimBoard(seed=1))  # the next: held back
    try:
        host.load_plugins()
        said = reporting(host)
        assert host.deploy is not None
        await host.deploy.start()
        [report] = said
        assert report["state"] == "rolled-back", report
        assert (report["version"], report["content_hash"]) == ("3.0.0", three["content_hash"])
        assert report["previous"] == two and "held back" in report["reason"], report

        host.deploy.handle(protocol.node_topic(config.node_id, "counter"), payload, True)
        await host.deploy.wait_idle()
        again = [{**r, "timestamp_ms": 0} for r in said[1:]]
        assert again == [{**report, "timestamp_ms": 0}], said
        assert version(host) == "2.0.0" and record_of(folder) == before
    finally:
        host.close()


@pytest.mark.parametrize("instead", ["previous/", "the configured version"])
async def test_a_delivery_to_a_node_holding_a_version_back_replaces_it(
    config: HostConfig,
    key: SigningKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    instead: str,
) -> None:
    """The node runs 2.0.0 from previous/ (or its configured 1.0.0) in place of
    3.0.0, held back on a full disk; with room again, 4.0.0 arrives. 3.0.0 is
    rolled back on disk first, so 4.0.0's previous/ is the version that ran,
    the one its record names. Before, 3.0.0 (current/) became previous/ while
    the record named 2.0.0 (or the configured version): a rollback of 4.0.0
    would have run 3.0.0, reported as the other."""
    folder = plugin_dir(config, "counter")
    if instead == "previous/":
        ran = stage(config, key, tmp_path, "2.0.0", NONE)
        update_record(folder, probation=None)
        stage(config, key, tmp_path, "3.0.0", ran)
    else:
        stage(config, key, tmp_path, "3.0.0", NONE)
    with monkeypatch.context() as patched:
        full_disk(patched)
        start(config)
        host = Host(config, board=SimBoard(seed=1))
    try:
        host.load_plugins()
        said = reporting(host)
        assert host.deploy is not None
        await host.deploy.start()
        ran = dict(host.deploy.versions["counter"])
        assert ran["version"] == ("2.0.0" if instead == "previous/" else None), ran

        four = bundle(tmp_path, key, "4.0.0")
        host.deploy.handle(protocol.node_topic(config.node_id, "counter"), four, True)
        await host.deploy.wait_idle()
        assert [r["state"] for r in said][-1] == "live", said
        assert version(host) == "4.0.0"
        record = record_of(folder)
        assert record["current"]["version"] == "4.0.0", record
        if instead == "previous/":
            assert record["previous"] == ran, record
            assert hash_plugin(folder / "previous") == ran["content_hash"]
        else:  # None: the configured version, which no folder here holds
            assert record["previous"] is None and not (folder / "previous").exists(), record
        assert record["probation"]["previous"] == ran, record
    finally:
        host.close()


async def test_a_gate_rollback_on_a_full_disk_still_runs_and_reports_the_previous_version(
    fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2.0.0 traps in its gate when deployed.json cannot be written: the rollback
    cannot be recorded, and ``restore_files`` leaves the files as they were. The
    node still runs the version before (here the configured 1.0.0) and reports
    2.0.0 rolled-back, saying it is not on disk. Before, the OSError ended the
    rollback task: 2.0.0 ran on, trapping, with no gate and no report (a deployer
    waited for its timeout)."""
    host = fleet.host("n1")
    await fleet.start("n1")
    assert host.deploy is not None
    async with Subscriber(fleet.broker.port, "wasihost/+/rollout/+") as sub:
        two = bundle(tmp_path, fleet.key, "2.0.0", trap=True)
        await fleet.deliver(two)
        await until(lambda: ("2.0.0", "live") in reports(sub), "2.0.0 live")
        await host.deploy.wait_idle()
        before = deployed(tmp_path)
        full_disk(monkeypatch)
        await until(lambda: ("2.0.0", "rolled-back") in reports(sub), "rolled back", (host,))
        await host.deploy.wait_idle()
        report = sub.json_on("wasihost/n1/rollout/counter")[-1]
    assert report["reason"].startswith("trapped") and "not on disk" in report["reason"], report
    assert version(host) == "1.0.0"
    assert deployed(tmp_path) == before
    assert host.deploy.versions["counter"]["version"] is None
