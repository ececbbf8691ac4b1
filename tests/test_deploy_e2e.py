"""End to end: the real ``wasihost deploy`` CLI, run as a user runs it (a
process), against three real nodes (``wasihost run`` processes, each with the
counter plugin and a dht22) on a real Mosquitto (docs/BUNDLES.md, "Deploying
with wasihost deploy"; docs/MQTT.md, "Deploying plugins").

The deployer alone is tested with fake nodes (tests/telemetry/test_deploy_cli.py)
and the node alone with in-process hosts (tests/deploy/test_deploy_node.py);
here both run together, as processes. What is observed is what an operator
sees: the CLI's exit code and output, and what the nodes publish (rollout
reports, versions, and each plugin's state and health every cycle).

"Missed no poll" is read from the health message every plugin publishes each
cycle: its ``polls`` counter grows by exactly one from one cycle to the next.
"State carried" is read from the counter's own count: its values form one run
of consecutive numbers, across versions and restarts (a reset would repeat
one). No test sleeps for a fixed time; every wait is for a condition, bounded
only to catch a hang.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_fleet import HostProcess, counter, kill_all, wasihost
from tests.mosquitto import MOSQUITTO, Broker
from tests.telemetry.test_deploy_cli import retained
from tests.telemetry.test_mqtt import Subscriber
from tests.telemetry.test_mqtt import until as wait_for
from wasihost.bundle import archive
from wasihost.bundle.create import create_bundle, hash_plugin
from wasihost.bundle.keys import SigningKey, write_key_pair
from wasihost.bundle.manifest import BundleManifest, parse_manifest
from wasihost.deploy.deployer import short
from wasihost.deploy.protocol import (
    all_topic,
    label_topic,
    node_topic,
    report_topic,
    versions_topic,
)

pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists(), reason="needs mosquitto (apt-get install mosquitto)"
)
NODES = ("n1", "n2", "n3")
INTERVAL = 0.2  # seconds between polls on each node
GATE_POLLS = 3
HANG = 90.0  # a wait longer than this is a hang, not a slow machine


async def until(condition: Callable[[], bool], what: str) -> None:
    await wait_for(condition, what, HANG)


@dataclass
class Cli:
    code: int
    out: str
    err: str


@dataclass
class Fleet:
    """Three node processes, the broker, the signing key and a subscriber that
    records everything under ``wasihost/`` from before the nodes start."""

    broker: Broker
    folder: Path
    key: SigningKey
    pub: Path
    hosts: dict[str, HostProcess]
    sub: Subscriber

    # -- what the nodes published ---------------------------------------------
    def count(self) -> int:
        """A mark: the number of messages received so far."""
        return len(self.sub.messages)

    def json_on(self, topic: str, since: int = 0) -> list[dict[str, Any]]:
        return [
            json.loads(payload)
            for t, payload, _ in self.sub.messages[since:]
            if t == topic and payload
        ]

    def reports(self, node: str, since: int = 0) -> list[dict[str, Any]]:
        return self.json_on(report_topic(node, "counter"), since)

    def states(self, node: str, content: str, since: int = 0) -> list[str]:
        """The rollout states ``node`` reported for one version, in order (a
        state reported again, as ``live`` is while its good polls count up, once)."""
        states = [r["state"] for r in self.reports(node, since) if r["content_hash"] == content]
        return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]

    def health(self, node: str, plugin: str, since: int = 0) -> list[dict[str, Any]]:
        return self.json_on(f"wasihost/{node}/{plugin}/health", since)

    def counts(self, node: str, since: int = 0) -> list[int]:
        """The counter plugin's count in each state message."""
        return [int(s["polls"]) for s in self.json_on(f"wasihost/{node}/counter/state", since)]

    def running(self, node: str) -> dict[str, Any]:
        """What ``node`` last said it runs as the counter (its versions message)."""
        return dict(self.json_on(versions_topic(node))[-1]["plugins"]["counter"])

    def online(self, node: str) -> bool | None:
        said = [p for t, p, _ in self.sub.messages if t == f"wasihost/{node}/availability"]
        return said[-1] == b"online" if said else None

    # -- acting ------------------------------------------------------------------
    async def ready(self, *nodes: str) -> None:
        """Each node online, its counter polled at least twice since now."""
        mark = self.count()
        for node in nodes:
            await until(lambda n=node: self.online(n) is True, f"{node} online")  # type: ignore[misc]
            await until(
                lambda n=node: len(self.health(n, "counter", mark)) >= 2,  # type: ignore[misc]
                f"{node} polling",
            )

    async def cycles(self, node: str, count: int) -> None:
        """Wait for ``node`` to run ``count`` more cycles."""
        mark = self.count()
        await until(lambda: len(self.health(node, "dht22", mark)) >= count, f"{node} cycling")

    async def deploy(self, *args: str) -> Cli:
        """``wasihost deploy ARGS --broker ...`` as a process, from an empty folder."""
        process = await asyncio.create_subprocess_exec(
            wasihost(),
            "deploy",
            *args,
            "--broker",
            f"127.0.0.1:{self.broker.port}",
            cwd=self.folder,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), HANG)
        assert process.returncode is not None
        return Cli(process.returncode, out.decode(), err.decode())

    def bundle(self, version: str, key: SigningKey | None = None, trap: bool = False) -> Path:
        folder = counter(self.folder / "bundles" / version / "counter", version, trap)
        path = self.folder / f"counter-{version}{'-trap' if trap else ''}.bundle"
        path.write_bytes(create_bundle(folder, key or self.key, version=version))
        return path


def manifest_of(bundle: Path) -> BundleManifest:
    return parse_manifest(archive.unpack(bundle.read_bytes()).manifest)


@pytest.fixture
async def fleet(
    broker: Broker, built: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Fleet]:
    """n1, n2, n3 running and polling; killed (logs printed) after the test.
    Indirect parameters: ``nodes`` (other ids), ``gate_polls``, ``labels`` (per node)."""
    options = getattr(request, "param", {})
    key = write_key_pair(tmp_path / "signing.key")
    hosts = {
        node: HostProcess(
            tmp_path / node,
            node,
            broker.port,
            key.public.text,
            interval_seconds=INTERVAL,
            gate_polls=options.get("gate_polls", GATE_POLLS),
            labels=options.get("labels", {}).get(node, ()),
            plugins={"dht22": {"wasm": str(built["dht22"]), "led": 1}},
        )
        for node in options.get("nodes", NODES)
    }
    work = tmp_path / "deployer"
    work.mkdir()
    async with Subscriber(broker.port, "wasihost/#") as sub:
        made = Fleet(broker, work, key, tmp_path / "signing.key.pub", hosts, sub)
        try:
            for host in hosts.values():
                host.start()
            await made.ready(*hosts)
            yield made
        finally:
            await asyncio.to_thread(kill_all, list(hosts.values()))
            for host in hosts.values():
                print(host.log_tail())


def table(text: str) -> list[dict[str, str]]:
    """``--status``'s table as rows by column name (cells are left-aligned
    under their heading, and may hold spaces: "rolled-back 2.0.0 (…)")."""
    head, *lines = text.splitlines()
    names = head.split()
    starts = [head.index(f" {name}") + 1 if i else 0 for i, name in enumerate(names)]
    ends = [*starts[1:], None]
    return [
        {name: line[a:b].strip() for name, a, b in zip(names, starts, ends, strict=True)}
        for line in lines
    ]


def assert_every_cycle_polled(health: list[dict[str, Any]], what: str) -> None:
    """One health message per cycle: ``polls`` grows by exactly one each time,
    and nothing trapped (a failed read is still a poll: the simulated DHT22
    fails one now and then, as the real one does)."""
    polls = [h["polls"] for h in health]
    assert len(polls) >= 2, f"{what}: too few cycles seen: {polls}"
    steps = {b - a for a, b in itertools.pairwise(polls)}
    assert steps == {1}, f"{what}: a cycle without a poll: {polls}"
    assert {h["traps"] for h in health} == {health[0]["traps"]}, f"{what}: trapped: {health}"


def assert_count_carried(counts: list[int], what: str) -> None:
    """The count never restarted and no poll was lost: one run of consecutive
    numbers (in arrival order or not: an outage's backlog arrives late)."""
    assert counts, what
    assert sorted(counts) == list(range(min(counts), max(counts) + 1)), f"{what}: {counts}"


# -- (a) a good version, a canary, and a node that was offline -----------------------
async def test_a_good_version_reaches_every_node_through_a_canary_and_an_offline_one_catches_up(
    fleet: Fleet,
) -> None:
    # n3 goes offline before the rollout: it must not hold it up, and catches up later.
    n3 = fleet.hosts["n3"]
    await asyncio.to_thread(n3.stop)
    await until(lambda: fleet.online("n3") is False, "n3 offline")
    bundle = fleet.bundle("2.0.0")
    new = manifest_of(bundle).content
    mark = fleet.count()

    cli = await fleet.deploy(
        str(bundle), "--all", "--canary", "n1", "--key-pub", str(fleet.pub), "--timeout", "60"
    )

    assert cli.code == 0, cli
    out = cli.out
    assert "broker: 2 node(s) online (n1, n2), 1 offline (n3)" in out, out
    assert "canary: node n1" in out and "canaries healthy: promoting to all nodes" in out, out
    assert f"  n1: healthy ({GATE_POLLS} polls)" in out, out
    assert "  n2: healthy" in out and "counter 2.0.0 is healthy on every online target" in out
    assert "cleared deliveries: wasihost/deploy/node/n1/counter" in out, out
    assert out.rstrip().endswith("summary: 2 healthy (n1, n2); 1 offline (n3)"), out
    # The canary got it first, on its own topic, and was healthy before n2 heard of it.
    n1_seen, n2_seen = fleet.states("n1", new, mark), fleet.states("n2", new, mark)
    assert n1_seen[:4] == ["received", "staging", "live", "healthy"], n1_seen
    assert n2_seen[:3] == ["received", "staging", "live"] and n2_seen[-1] == "healthy", n2_seen
    first_n2 = next(r for r in fleet.reports("n2", mark) if r["content_hash"] == new)
    assert first_n2["source"] == "all"
    assert fleet.reports("n1", mark)[0]["source"] == "node"
    # The canary's own delivery is cleared; the all delivery stays for latecomers.
    assert await retained(fleet.broker, node_topic("n1", "counter")) is None
    assert await retained(fleet.broker, all_topic("counter")) == bundle.read_bytes()

    # n3 comes back: the retained all delivery reaches it, it goes healthy by itself.
    n3.start()
    await until(lambda: "healthy" in fleet.states("n3", new, mark), "n3 healthy on 2.0.0")
    n3_seen = fleet.states("n3", new, mark)
    assert n3_seen[:3] == ["received", "staging", "live"], n3_seen
    await until(lambda: fleet.running("n3")["version"] == "2.0.0", "n3's versions")

    for node in NODES:
        assert fleet.running(node) == {"version": "2.0.0", "content_hash": new}, node
        # The count went on across the versions (and n3's restart): state carried.
        await fleet.cycles(node, 2)
        assert_count_carried(fleet.counts(node), node)
        assert max(fleet.counts(node)) > GATE_POLLS + 2, node
        record = json.loads((fleet.hosts[node].folder / "deploy/counter/deployed.json").read_text())
        assert record["current"] == {"version": "2.0.0", "content_hash": new}, node
    # The healthy nodes polled their other plugin in every cycle through it all.
    for node in ("n1", "n2"):
        assert_every_cycle_polled(fleet.health(node, "dht22", mark), f"{node} dht22")

    # (d) --status: every node's state, from what the broker retains.
    status = await fleet.deploy("--status")
    assert status.code == 0, status
    rows = table(status.out)
    for node in NODES:
        mine = {row["PLUGIN"]: row for row in rows if row["NODE"] == node}
        assert set(mine) == {"counter", "dht22"}, status.out
        row = mine["counter"]
        assert (row["ONLINE"], row["VERSION"], row["CONTENT"], row["ROLLOUT"]) == (
            "online",
            "2.0.0",
            short(new),
            "healthy",
        ), status.out
    only = table((await fleet.deploy("--status", "--plugin", "counter")).out)
    assert sorted(row["NODE"] for row in only) == list(NODES), only
    assert {row["PLUGIN"] for row in only} == {"counter"}, only


# -- (b) a version that traps: stopped on the canary, rolled back by the node -------
async def test_a_trapping_version_stays_on_the_canary_which_rolls_it_back_by_itself(
    fleet: Fleet,
) -> None:
    bundle = fleet.bundle("2.0.0", trap=True)
    new = manifest_of(bundle).content
    configured = hash_plugin(fleet.hosts["n1"].source)
    mark = fleet.count()

    cli = await fleet.deploy(
        str(bundle), "--all", "--canary", "n1", "--key-pub", str(fleet.pub), "--timeout", "60"
    )

    assert cli.code == 1, cli
    assert "stopped: canary n1 rolled-back: trapped" in cli.out, cli.out
    assert "cleared deliveries: wasihost/deploy/node/n1/counter" in cli.out, cli.out
    assert "summary: 1 rolled back (n1)" in cli.out, cli.out
    assert "promoting" not in cli.out
    seen = fleet.states("n1", new, mark)
    assert seen == ["received", "staging", "live", "rolled-back"], seen
    last = fleet.reports("n1", mark)[-1]
    assert last["reason"].startswith("trapped"), last
    assert last["previous"] == {"version": None, "content_hash": configured}, last
    # Rolled back by the node itself: the configured version runs and counts on.
    await until(lambda: fleet.running("n1")["content_hash"] == configured, "n1's versions")
    assert fleet.running("n1") == {"version": None, "content_hash": configured}
    after = fleet.count()
    await until(lambda: len(fleet.counts("n1", after)) >= 3, "n1's counter polling again")
    assert not (fleet.hosts["n1"].folder / "deploy/counter/current").exists()
    # Nothing unproven stays on the broker; the others never got it.
    assert await retained(fleet.broker, node_topic("n1", "counter")) is None
    assert await retained(fleet.broker, all_topic("counter")) is None
    await fleet.cycles("n2", 3)
    for node in ("n2", "n3"):
        assert fleet.reports(node) == [], node
        assert fleet.running(node) == {"version": None, "content_hash": configured}, node
        assert_every_cycle_polled(fleet.health(node, "counter", mark), f"{node} counter")
        assert_every_cycle_polled(fleet.health(node, "dht22", mark), f"{node} dht22")
        assert_count_carried(fleet.counts(node), node)
        assert not (fleet.hosts[node].folder / "deploy/counter").exists(), node
    # On the canary, the other plugin polled in every cycle through install and rollback.
    assert_every_cycle_polled(fleet.health("n1", "dht22", mark), "n1 dht22")

    # --status shows where n1 is: on its configured code, 2.0.0 rolled back.
    status = await fleet.deploy("--status", "--plugin", "counter")
    assert status.code == 0, status
    n1 = next(row for row in table(status.out) if row["NODE"] == "n1")
    assert n1["VERSION"] == "?" and n1["CONTENT"] == short(configured), status.out
    assert n1["ROLLOUT"] == f"rolled-back 2.0.0 ({short(new)})", status.out


# -- (c) an unknown key and a tampered bundle: refused by the CLI, and by every node -
async def test_an_unknown_key_or_a_tampered_bundle_is_refused_by_the_cli_and_by_every_node(
    fleet: Fleet,
) -> None:
    rogue = write_key_pair(fleet.folder / "rogue.key")
    unknown = fleet.bundle("6.6.6", key=rogue)
    good = fleet.bundle("2.0.0")
    data = bytearray(good.read_bytes())
    data[data.index(b"class ")] = ord("C")  # app.py, after signing
    tampered = fleet.folder / "tampered.bundle"
    tampered.write_bytes(bytes(data))
    configured = hash_plugin(fleet.hosts["n1"].source)
    mark = fleet.count()

    # The CLI checks as a node would, before anything is published.
    cli = await fleet.deploy(str(unknown), "--all", "--key-pub", str(fleet.pub))
    assert cli.code == 2, cli
    assert f"signed by key {rogue.public.key_id}, which is not trusted" in cli.err, cli
    cli = await fleet.deploy(str(tampered), "--all", "--canary", "n1", "--key-pub", str(fleet.pub))
    assert cli.code == 2, cli
    assert "refused: tampered: plugin/app.py" in cli.err, cli
    assert await retained(fleet.broker, all_topic("counter")) is None
    assert await retained(fleet.broker, node_topic("n1", "counter")) is None
    assert all(fleet.reports(node) == [] for node in NODES)

    # An operator whose CLI trusts the rogue key: it publishes, every node refuses.
    cli = await fleet.deploy(
        str(unknown), "--all", "--key-pub", str(fleet.folder / "rogue.key.pub")
    )
    assert cli.code == 1, cli
    assert "summary: 3 refused (n1, n2, n3)" in cli.out, cli.out
    for node in NODES:
        report = fleet.reports(node)[-1]
        assert report["state"] == "refused" and report["version"] == "6.6.6", report
        assert "not trusted here" in report["reason"], report

    # The tampered bundle published straight to the all topic: every node refuses it.
    refused_before = {node: len(fleet.reports(node)) for node in NODES}
    await fleet.sub.client.publish(all_topic("counter"), bytes(data), qos=1, retain=True)
    for node in NODES:
        await until(
            lambda n=node: len(fleet.reports(n)) > refused_before[n],  # type: ignore[misc]
            f"{node}'s verdict on the tampered bundle",
        )
        report = fleet.reports(node)[-1]
        assert report["state"] == "refused", report
        assert report["reason"].startswith("tampered: plugin/app.py"), report

    # Nothing was installed anywhere; every plugin polled in every cycle.
    await fleet.cycles("n3", 2)
    for node in NODES:
        assert {r["state"] for r in fleet.reports(node)} == {"refused"}, node
        assert fleet.running(node) == {"version": None, "content_hash": configured}, node
        assert not (fleet.hosts[node].folder / "deploy/counter/current").exists(), node
        assert fleet.health(node, "counter")[-1]["reloads"] == 0, node
        for plugin in ("counter", "dht22"):
            assert_every_cycle_polled(fleet.health(node, plugin, mark), f"{node} {plugin}")
        assert_count_carried(fleet.counts(node), node)


# -- labels: a canary label, then a label -------------------------------------------
@pytest.mark.parametrize(
    "fleet", [{"labels": {"n1": ("canary", "kitchen"), "n2": ("kitchen",)}}], indirect=True
)
async def test_a_label_rollout_with_a_canary_label_reaches_its_nodes_only(fleet: Fleet) -> None:
    bundle = fleet.bundle("2.0.0")
    new = manifest_of(bundle).content
    configured = hash_plugin(fleet.hosts["n3"].source)
    mark = fleet.count()
    args = ("--label", "kitchen", "--canary-label", "canary", "--key-pub", str(fleet.pub))

    cli = await fleet.deploy(str(bundle), *args, "--timeout", "60")

    assert cli.code == 0, cli
    assert "canaries healthy: promoting to label kitchen" in cli.out, cli.out
    assert "cleared deliveries: wasihost/deploy/label/canary/counter" in cli.out, cli.out
    assert cli.out.rstrip().endswith("summary: 2 healthy (n1, n2)"), cli.out
    n1_seen, n2_seen = fleet.states("n1", new, mark), fleet.states("n2", new, mark)
    assert n1_seen[:4] == ["received", "staging", "live", "healthy"], n1_seen
    assert n2_seen[:3] == ["received", "staging", "live"] and n2_seen[-1] == "healthy", n2_seen
    assert fleet.reports("n2", mark)[0]["source"] == "label"
    for node in ("n1", "n2"):
        await until(
            lambda n=node: fleet.running(n)["version"] == "2.0.0",  # type: ignore[misc]
            f"{node}'s versions",
        )
        assert_count_carried(fleet.counts(node), node)
    # n3 carries neither label: never offered it, polled on.
    assert fleet.reports("n3") == []
    assert fleet.running("n3") == {"version": None, "content_hash": configured}
    assert_every_cycle_polled(fleet.health("n3", "counter", mark), "n3 counter")
    assert await retained(fleet.broker, label_topic("canary", "counter")) is None
    assert await retained(fleet.broker, label_topic("kitchen", "counter")) == bundle.read_bytes()
    status = table((await fleet.deploy("--status", "--plugin", "counter")).out)
    assert {row["NODE"]: row["LABELS"] for row in status} == {
        "n1": "canary,kitchen",
        "n2": "kitchen",
        "n3": "-",
    }, status


@pytest.mark.parametrize("fleet", [{"nodes": ("n1", "n2")}], indirect=True)
async def test_a_stopped_canary_stage_does_not_call_the_nodes_never_offered_not_reporting(
    fleet: Fleet,
) -> None:
    bundle = fleet.bundle("2.0.0", trap=True)
    cli = await fleet.deploy(
        str(bundle), "--all", "--canary", "n1", "--key-pub", str(fleet.pub), "--timeout", "60"
    )
    assert cli.code == 1, cli
    summary = cli.out.rstrip().splitlines()[-1]
    assert "1 rolled back (n1)" in summary, cli.out
    assert "not reporting" not in summary, cli.out


@pytest.mark.parametrize("fleet", [{"nodes": ("n1",)}], indirect=True)
async def test_a_target_never_seen_does_not_hold_the_rollout_up(fleet: Fleet) -> None:
    bundle = fleet.bundle("2.0.0")
    args = ("--node", "n1", "ghost", "--key-pub", str(fleet.pub), "--timeout", "6")
    done = await fleet.deploy(str(bundle), *args)
    assert "ghost: never seen on this broker; it gets the bundle when it connects" in done.out
    assert "  n1: healthy" in done.out, done.out
    assert done.code == 0, done
    assert done.out.rstrip().endswith("summary: 1 healthy (n1); 1 offline (ghost)"), done.out
    assert await retained(fleet.broker, node_topic("ghost", "counter")) == bundle.read_bytes()


# -- a node that stops during its health gate ---------------------------------------
SLOW_GATE = 25  # polls: 5 s at INTERVAL, time enough to stop the node during the gate


async def live_then_killed(fleet: Fleet, content: str, mark: int) -> HostProcess:
    """Wait for n1 to report ``content`` live, then kill it (a crash, a power cut)."""
    await until(lambda: "live" in fleet.states("n1", content, mark), "n1 live")
    n1 = fleet.hosts["n1"]
    assert n1.process is not None
    n1.process.kill()
    await asyncio.to_thread(n1.wait)
    return n1


@pytest.mark.parametrize("fleet", [{"nodes": ("n1",), "gate_polls": SLOW_GATE}], indirect=True)
async def test_a_node_killed_during_the_health_gate_gates_the_version_again_after_restart(
    fleet: Fleet,
) -> None:
    bundle = fleet.bundle("2.0.0")
    new = manifest_of(bundle).content
    mark = fleet.count()
    # Published as the deployer does (retained, on n1's topic); the CLI is the next test.
    await fleet.sub.client.publish(node_topic("n1", "counter"), bundle.read_bytes(), 1, retain=True)
    n1 = await live_then_killed(fleet, new, mark)
    restarted = fleet.count()
    n1.start()
    await fleet.ready("n1")
    await until(
        lambda: any(r["content_hash"] == new for r in fleet.reports("n1", restarted)),
        "n1's report after its restart",
    )
    # A fresh gate after the restart: live again, healthy only once it passed.
    await until(lambda: "healthy" in fleet.states("n1", new, restarted), "n1 healthy")
    after = [r for r in fleet.reports("n1", restarted) if r["content_hash"] == new]
    assert fleet.states("n1", new, restarted) == ["live", "healthy"], after
    unproven = [r for r in after if r["state"] == "healthy" and r["polls_ok"] < SLOW_GATE]
    assert unproven == [], [(r["state"], r["reason"], r["polls_ok"]) for r in after]
    assert fleet.running("n1") == {"version": "2.0.0", "content_hash": new}


@pytest.mark.parametrize("fleet", [{"nodes": ("n1",), "gate_polls": SLOW_GATE}], indirect=True)
async def test_a_version_the_node_keeps_dying_under_is_rolled_back_and_the_cli_says_so(
    fleet: Fleet,
) -> None:
    """Killed twice while the version is on probation (a crash loop): at the
    second restart the node rolls it back before loading it, by itself."""
    bundle = fleet.bundle("2.0.0")
    new = manifest_of(bundle).content
    configured = hash_plugin(fleet.hosts["n1"].source)
    mark = fleet.count()
    args = ("--node", "n1", "--key-pub", str(fleet.pub), "--timeout", "60")
    cli = asyncio.create_task(fleet.deploy(str(bundle), *args))
    n1 = await live_then_killed(fleet, new, mark)
    again = fleet.count()
    n1.start()
    await until(lambda: "live" in fleet.states("n1", new, again), "n1 live again")
    assert n1.process is not None
    n1.process.kill()
    await asyncio.to_thread(n1.wait)
    n1.start()
    done = await cli
    assert done.code == 1, done
    assert "n1: rolled-back: on probation across 2 restarts" in done.out, done.out
    assert "cleared deliveries: wasihost/deploy/node/n1/counter" in done.out, done.out
    assert fleet.states("n1", new, again)[-1] == "rolled-back"
    assert "healthy" not in fleet.states("n1", new, mark)
    await until(lambda: fleet.running("n1")["content_hash"] == configured, "n1's versions")
    assert fleet.running("n1") == {"version": None, "content_hash": configured}
    await fleet.cycles("n1", 2)
    assert await retained(fleet.broker, node_topic("n1", "counter")) is None


@pytest.mark.parametrize("fleet", [{"nodes": ("n1",), "gate_polls": SLOW_GATE}], indirect=True)
async def test_a_rollout_whose_target_crashed_during_its_gate_does_not_exit_healthy(
    fleet: Fleet,
) -> None:
    bundle = fleet.bundle("2.0.0")
    new = manifest_of(bundle).content
    mark = fleet.count()
    args = ("--node", "n1", "--key-pub", str(fleet.pub), "--timeout", "5")
    cli = asyncio.create_task(fleet.deploy(str(bundle), *args))
    await live_then_killed(fleet, new, mark)
    done = await cli
    assert "healthy" not in fleet.states("n1", new, mark)
    # Not a success: the rollout waits for n1 to come back, then times out naming it.
    assert done.code == 5, done
    assert "offline before a final state" in done.out and "n1 (live)" in done.out, done.out


# -- the broker restarts during a rollout -------------------------------------------
@pytest.mark.parametrize("fleet", [{"nodes": ("n1", "n2"), "gate_polls": 5}], indirect=True)
async def test_a_rollout_goes_on_through_a_broker_restart(fleet: Fleet) -> None:
    """The nodes ride out a broker restart (they reconnect, their outbox keeps the
    reports); a rollout, which may run for its whole --timeout, should too."""
    bundle = fleet.bundle("2.0.0")
    new = manifest_of(bundle).content
    mark = fleet.count()
    args = ("--all", "--canary", "n1", "--key-pub", str(fleet.pub), "--timeout", "8")
    cli = asyncio.create_task(fleet.deploy(str(bundle), *args))
    await until(lambda: "live" in fleet.states("n1", new, mark), "n1 live")
    await asyncio.to_thread(fleet.broker.stop)
    await asyncio.to_thread(fleet.broker.start)
    done = await cli
    assert done.code == 0, done
    assert "summary: 2 healthy (n1, n2)" in done.out, done
