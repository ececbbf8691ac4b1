"""``wasihost deploy`` against a real Mosquitto, with FAKE nodes: small asyncio
clients that publish their availability, subscribe to the delivery topics
(protocol v1, docs/MQTT.md) and answer each delivery with scripted reports.
The real node side is tested on its own; end-to-end rollouts with real hosts
are a separate suite."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path

import aiomqtt
import pytest

from tests.mosquitto import MOSQUITTO, Broker
from tests.telemetry.test_mqtt import until
from wasihost.bundle import archive
from wasihost.bundle.create import create_bundle
from wasihost.bundle.keys import write_key_pair
from wasihost.bundle.manifest import parse_manifest
from wasihost.cli import main
from wasihost.deploy.protocol import (
    all_topic,
    label_topic,
    node_topic,
    report_topic,
    subscriptions,
    versions_payload,
    versions_topic,
)

pytestmark = pytest.mark.skipif(
    not Path(MOSQUITTO).exists(), reason="needs mosquitto (apt-get install mosquitto)"
)
ROOT = Path(__file__).resolve().parents[2]


class FakeNode:
    """Answers every delivery with ``script`` (states, in order), as a node would."""

    def __init__(
        self, port: int, node: str, script: tuple[str, ...], labels: tuple[str, ...] = ()
    ) -> None:
        self.port, self.node, self.script, self.labels = port, node, script, labels
        self.deliveries: list[tuple[str, int]] = []  # topic, payload length (0: cleared)
        self.client = aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=f"fake-{node}",
            will=aiomqtt.Will(f"wasihost/{node}/availability", "offline", qos=1, retain=True),
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakeNode:
        await self.client.__aenter__()
        await self.client.publish(f"wasihost/{self.node}/availability", "online", 1, retain=True)
        versions = versions_payload(
            self.labels, {"sht31": {"version": "1.0.0", "content_hash": "sha256:" + "00" * 32}}
        )
        await self.client.publish(versions_topic(self.node), versions, 1, retain=True)
        for topic in subscriptions(self.node, self.labels):
            await self.client.subscribe(topic, qos=1)
        self._task = asyncio.create_task(self._serve())
        return self

    async def _serve(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for m in self.client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                self.deliveries.append((m.topic.value, len(payload)))
                if payload:
                    await self._answer(m.topic.value, payload)

    async def _answer(self, topic: str, payload: bytes) -> None:
        manifest = parse_manifest(archive.unpack(payload).manifest)
        source = topic.split("/")[2]
        for state in self.script:
            report = {
                "plugin": manifest.name,
                "version": manifest.version,
                "content_hash": manifest.content,
                "state": state,
                "reason": "trapped 3 times in poll" if state == "rolled-back" else "",
                "previous": {"version": "1.0.0", "content_hash": "sha256:" + "00" * 32},
                "polls_ok": 3 if state == "healthy" else 0,
                "since_ms": 1,
                "timestamp_ms": 2,
                "source": source,
            }
            await self.client.publish(
                report_topic(self.node, manifest.name), json.dumps(report), 1, retain=True
            )
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.publish(
                f"wasihost/{self.node}/availability", "offline", 1, retain=True
            )
            await self.client.__aexit__(None, None, None)


GOOD = ("received", "staging", "live", "healthy")
BAD = ("received", "staging", "live", "rolled-back")


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    """A signed bundle of sht31 and the signer's public key file."""
    key = write_key_pair(tmp_path / "signing.key")
    folder = tmp_path / "sht31"
    shutil.copytree(
        ROOT / "plugins" / "sht31", folder, ignore=shutil.ignore_patterns("__pycache__")
    )
    bundle = tmp_path / "sht31-1.1.0.bundle"
    bundle.write_bytes(create_bundle(folder, key, version="1.1.0"))
    return bundle, tmp_path / "signing.key.pub"


async def deploy(broker: Broker, *args: str) -> int:
    return await asyncio.to_thread(main, ["deploy", *args, "--broker", f"127.0.0.1:{broker.port}"])


async def retained(broker: Broker, topic: str) -> bytes | None:
    """The retained payload on ``topic`` now, None if there is none."""
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="probe") as client:
        await client.subscribe(topic, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async for m in client.messages:
                    return m.payload if isinstance(m.payload, bytes) else b""
    return None


async def test_canary_healthy_then_promoted_to_all(
    broker: Broker, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, pub = signed
    async with (
        FakeNode(broker.port, "pi1", GOOD) as pi1,
        FakeNode(broker.port, "pi2", GOOD) as pi2,
    ):
        code = await deploy(broker, str(bundle), "--all", "--canary", "pi1", "--key-pub", str(pub))
        out = capsys.readouterr().out
        assert code == 0, out
        assert "canaries healthy: promoting to all nodes" in out
        assert "  pi1: healthy (3 polls)" in out and "  pi2: healthy (3 polls)" in out
        assert "summary: 2 healthy (pi1, pi2)" in out
        # pi1 got it as the canary, then the all delivery, then the canary topic cleared.
        cleared = (node_topic("pi1", "sht31"), 0)
        await until(lambda: cleared in pi1.deliveries, "the canary's delivery cleared")
        assert any(t == all_topic("sht31") and n > 0 for t, n in pi2.deliveries)
    assert await retained(broker, node_topic("pi1", "sht31")) is None
    assert await retained(broker, all_topic("sht31")) == bundle.read_bytes()

    assert await deploy(broker, "--status") == 0
    table = capsys.readouterr().out
    assert "NODE" in table and "pi1" in table and "healthy 1.1.0" in table


async def test_rolled_back_canary_stops_and_clears(
    broker: Broker, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, pub = signed
    async with (
        FakeNode(broker.port, "pi1", BAD) as pi1,
        FakeNode(broker.port, "pi2", GOOD) as pi2,
    ):
        code = await deploy(broker, str(bundle), "--all", "--canary", "pi1", "--key-pub", str(pub))
        out = capsys.readouterr().out
        assert code == 1, out
        assert "stopped: canary pi1 rolled-back: trapped 3 times in poll" in out
        assert "1 rolled back (pi1)" in out
        cleared = (node_topic("pi1", "sht31"), 0)
        await until(lambda: cleared in pi1.deliveries, "the canary's delivery cleared")
        assert pi2.deliveries == []  # never promoted
    assert await retained(broker, node_topic("pi1", "sht31")) is None
    assert await retained(broker, all_topic("sht31")) is None


async def test_label_rollout_without_canaries(
    broker: Broker, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, pub = signed
    async with (
        FakeNode(broker.port, "pi1", GOOD, labels=("kitchen",)),
        FakeNode(broker.port, "pi2", GOOD) as pi2,
        FakeNode(broker.port, "pi3", GOOD, labels=("attic", "kitchen")),
    ):
        # No --settle: every node said which labels it carries, so nothing is guessed.
        args = ["--label", "kitchen", "--key-pub", str(pub)]
        code = await deploy(broker, str(bundle), *args)
        out = capsys.readouterr().out
        assert code == 0, out
        assert "targets: pi1, pi3" in out
        assert "summary: 2 healthy (pi1, pi3)" in out and pi2.deliveries == []
    assert await retained(broker, label_topic("kitchen", "sht31")) == bundle.read_bytes()

    assert await deploy(broker, "--status") == 0
    table = capsys.readouterr().out
    assert "LABELS" in table and "attic,kitchen" in table


async def test_a_label_no_node_carries_is_refused_before_anything_is_published(
    broker: Broker, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, pub = signed
    async with FakeNode(broker.port, "pi1", GOOD, labels=("kitchen",)):
        code = await deploy(broker, str(bundle), "--label", "kichten", "--key-pub", str(pub))
    assert code == 2
    assert "label kichten: no node on this broker carries it (labels nodes publish: kitchen)" in (
        capsys.readouterr().err
    )
    assert await retained(broker, label_topic("kichten", "sht31")) is None


async def test_a_silent_target_times_out_and_an_offline_one_is_counted(
    broker: Broker, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, pub = signed
    async with FakeNode(broker.port, "gone", GOOD):
        pass  # leaves "offline" retained
    async with FakeNode(broker.port, "mute", ()):
        args = ["--node", "mute", "gone", "--timeout", "1", "--key-pub", str(pub)]
        code = await deploy(broker, str(bundle), *args)
    out = capsys.readouterr().out
    assert code == 5, out
    assert "gone: offline; it gets the bundle when it comes back" in out
    assert "summary: 1 offline (gone); 1 not reporting (mute)" in out


async def test_bad_input_is_refused_before_anything_is_published(
    broker: Broker, signed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, pub = signed
    other = write_key_pair(tmp_path / "other.key")
    assert other.public.key_id not in pub.read_text()
    assert (
        await deploy(broker, str(bundle), "--all", "--key-pub", str(tmp_path / "other.key.pub"))
        == 2
    )
    assert "which is not trusted" in capsys.readouterr().err
    tampered = bytearray(bundle.read_bytes())
    tampered[tampered.index(b"class ")] = ord("C")
    bad = tmp_path / "tampered.bundle"
    bad.write_bytes(bytes(tampered))
    assert await deploy(broker, str(bad), "--all", "--key-pub", str(pub)) == 2
    assert "refused: tampered: plugin/app.py" in capsys.readouterr().err
    assert await deploy(broker, str(bundle), "--all", "--node", "pi1", "--key-pub", str(pub)) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert (
        await deploy(broker, str(bundle), "--all", "--canary", "ghost", "--key-pub", str(pub)) == 2
    )
    assert "canary ghost: never seen" in capsys.readouterr().err
    assert await deploy(broker, str(bundle), "--all") == 2  # no key at all
    assert "no trusted key" in capsys.readouterr().err
    assert await retained(broker, all_topic("sht31")) is None


def test_the_bundle_is_read_once_and_its_checked_bytes_are_what_is_sent(
    signed: tuple[Path, Path],
) -> None:
    from wasihost.deploy.deployer_mqtt import read_bundle, trusted_keys

    bundle, pub = signed
    manifest, data = read_bundle(bundle, trusted_keys([(pub.read_text(), "--key-pub")]))
    assert data == bundle.read_bytes() and manifest.name == "sht31"


async def test_deliveries_are_published_again_after_the_broker_lost_them(
    broker: Broker, signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A broker restarted without persistence forgets retained messages: pi3,
    offline during the rollout, would never get the all delivery the summary
    says waits for it."""
    bundle, pub = signed
    async with (
        FakeNode(broker.port, "pi1", GOOD),
        FakeNode(broker.port, "pi2", ("received", "live")) as pi2,  # never final
    ):
        args = ("--all", "--canary", "pi1", "--key-pub", str(pub), "--timeout", "8")
        run = asyncio.create_task(deploy(broker, str(bundle), *args))
        await until(
            lambda: any(t == all_topic("sht31") and n > 0 for t, n in pi2.deliveries),
            "the promotion",
        )
        # pi2 live: the rollout waits for it through the restart (a target gone
        # before it reported anything would not hold it up, and it would end first).
        while b'"live"' not in (await retained(broker, report_topic("pi2", "sht31")) or b""):
            await asyncio.sleep(0.02)
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
        code = await run
    out = capsys.readouterr().out
    assert "reconnected to the broker" in out, out
    assert code == 5, out  # pi2 never reported a final state
    assert await retained(broker, all_topic("sht31")) == bundle.read_bytes()
    assert await retained(broker, node_topic("pi1", "sht31")) is None


@pytest.mark.parametrize(
    "option", [("--node", "n+"), ("--node", "a/b"), ("--label", "#"), ("--canary", "Pi1")]
)
def test_a_target_that_cannot_be_a_topic_level_is_bad_input(
    option: tuple[str, str], signed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing is published to a wildcard or a level that is no node's (exit 2, named)."""
    bundle, pub = signed
    flag, value = option
    targets = [flag, value] if flag != "--canary" else ["--all", flag, value]
    args = ["deploy", str(bundle), *targets, "--key-pub", str(pub), "--broker", "127.0.0.1:9"]
    assert main(args) == 2
    assert f"{flag} {value}:" in capsys.readouterr().err
