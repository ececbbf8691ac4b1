"""Rollout figures (issue 19): how long ``wasihost deploy BUNDLE --all`` takes to
reach every node of a 20-node fleet on this machine.

``NODES`` real nodes, each a ``wasihost run`` process (tests/deploy_fleet.py's
``HostProcess``: the counter source plugin in the shared runtime, MQTT and
``[deploy]`` on, polling every ``INTERVAL`` s) on one real ``mosquitto``
(the MQTT bench's). Each run signs a new version of the counter and runs the
real CLI as a process, ``wasihost deploy BUNDLE --all`` (then the same with
``--canary n00``), to its end (exit 0 required). A client on the broker
records when each delivery arrives (about when the CLI published it) and
each node's reports, timed by the node's own stamp (``timestamp_ms``, this
machine's clock; their arrival can lag by an outbox drain); measured:

- publish to all healthy: from the first delivery the broker hands out (the
  canary's, with a canary) to the last node's ``healthy``;
- the CLI's wall time: from its start to its exit (Python start-up, reading
  the retained messages, the rollout, the summary);
- first node live: from the first delivery to the first ``live``;
- per node, ``received`` to ``live`` (verify done, unpack, move, prepare the
  new version off the loop, swap it in between two polls), the same for the
  canary alone (no other node busy), and each node's stage's delivery to its
  ``live`` (what 20 nodes sharing this machine's cores add).

The health gate dominates a real rollout: a node is ``healthy`` after
``gate_polls`` good polls, 10 polls of 2 s by default, 20 s per stage. Here
the gate is short (``GATE_POLLS`` polls of ``INTERVAL`` s) so the figures show
the rest; each figure's note says which gate it ran with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from bench.common import Figure, figure, progress
from bench.mqtt_bench import MOSQUITTO, Broker
from tests.deploy_fleet import PYTHON_RUNTIME, HostProcess, counter, stop_all, wasihost
from wasihost.bundle import archive
from wasihost.bundle.create import create_bundle
from wasihost.bundle.keys import SigningKey, write_key_pair
from wasihost.bundle.manifest import parse_manifest

NODES = 20
INTERVAL = 0.5  # seconds between polls on each node
GATE_POLLS = 3  # [deploy] gate_polls: healthy after 3 good polls, about 1.5 s
HANG = 180.0  # a wait longer than this is a failure, not a slow machine


@dataclass
class Recorder:
    """Every delivery, report and availability on the broker, with its arrival
    time (wall clock: the nodes stamp their reports with it, on this machine)."""

    port: int
    events: list[tuple[float, str, bytes]] = field(default_factory=list)

    async def run(self, ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier="deploy-bench") as client:
            for topic in ("wasihost/deploy/#", "wasihost/+/rollout/+", "wasihost/+/availability"):
                await client.subscribe(topic, qos=1)
            ready.set()
            async for m in client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                self.events.append((time.time(), m.topic.value, payload))

    def online(self) -> set[str]:
        said: dict[str, bytes] = {}
        for _, topic, payload in self.events:
            parts = topic.split("/")
            if len(parts) == 3 and parts[2] == "availability":
                said[parts[1]] = payload
        return {node for node, payload in said.items() if payload == b"online"}

    def since(self, mark: int) -> list[tuple[float, str, bytes]]:
        return self.events[mark:]


@dataclass
class Run:
    canary: bool
    cli_seconds: float
    to_all_healthy: float
    to_first_live: float
    canary_stage: float | None  # first delivery to the canary's healthy
    canary_install_ms: float | None  # the canary's received to live: one node alone
    install_ms: list[float]  # per node: received to live
    delivery_to_live: list[float]  # per node: its stage's delivery to its live


def _measure(events: list[tuple[float, str, bytes]], content: str, canary: bool) -> Run:
    deliveries = [t for t, topic, payload in events if topic.startswith("wasihost/deploy/") and
                  payload and "/sync/" not in topic]  # fmt: skip
    if not deliveries:
        raise RuntimeError("no delivery seen on the broker")
    first = deliveries[0]
    seen: dict[str, dict[str, float]] = {}  # node -> state -> first arrival
    for _, topic, payload in events:
        parts = topic.split("/")
        if len(parts) != 4 or parts[2] != "rollout" or not payload:
            continue
        report = json.loads(payload)
        if report.get("content_hash") == content:
            # When the node reported it (its clock is this machine's), not when
            # its outbox got the message to us.
            at = report["timestamp_ms"] / 1000
            seen.setdefault(parts[1], {}).setdefault(report["state"], at)
    healthy = [states["healthy"] for states in seen.values() if "healthy" in states]
    if len(healthy) != NODES:
        raise RuntimeError(f"{len(healthy)} of {NODES} nodes reported healthy")
    lives = {node: states["live"] for node, states in seen.items()}
    stage = {node: (first if canary and node == "n00" else deliveries[-1]) for node in seen}
    return Run(
        canary=canary,
        cli_seconds=0.0,
        to_all_healthy=max(healthy) - first,
        to_first_live=min(lives.values()) - first,
        canary_stage=seen["n00"]["healthy"] - first if canary else None,
        canary_install_ms=(seen["n00"]["live"] - seen["n00"]["received"]) * 1000
        if canary
        else None,
        install_ms=[(s["live"] - s["received"]) * 1000 for s in seen.values()],
        delivery_to_live=[lives[node] - stage[node] for node in seen],
    )


class Fleet:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.key: SigningKey = write_key_pair(folder / "signing.key")
        self.pub = folder / "signing.key.pub"
        self.hosts = [
            HostProcess(
                folder / f"n{i:02d}",
                f"n{i:02d}",
                port,
                self.key.public.text,
                interval_seconds=INTERVAL,
                gate_polls=GATE_POLLS,
            )
            for i in range(NODES)
        ]

    def bundle(self, version: str) -> tuple[Path, str]:
        source = counter(self.folder / "bundles" / version / "counter", version)
        data = create_bundle(source, self.key, version=version)
        path = self.folder / f"counter-{version}.bundle"
        path.write_bytes(data)
        return path, parse_manifest(archive.unpack(data).manifest).content

    async def deploy(self, bundle: Path, canary: bool) -> tuple[int, str, float]:
        args = ["deploy", str(bundle), "--all", "--key-pub", str(self.pub)]
        args += ["--canary", "n00"] if canary else []
        args += ["--broker", f"127.0.0.1:{self.port}", "--timeout", str(HANG)]
        start = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            wasihost(),
            *args,
            cwd=self.folder,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), HANG + 30)
        assert process.returncode is not None
        return process.returncode, out.decode(), time.monotonic() - start


async def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + HANG
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _bench(folder: Path, runs: int) -> list[Run]:
    broker = Broker(folder)
    broker.start()
    fleet = Fleet(folder, broker.port)
    recorder = Recorder(broker.port)
    ready = asyncio.Event()
    listening = asyncio.create_task(recorder.run(ready))
    results: list[Run] = []
    try:
        await asyncio.wait_for(ready.wait(), 15)
        progress(f"deploy: starting {NODES} nodes (wasihost run, one source plugin each)")
        started = time.monotonic()
        for host in fleet.hosts:
            host.start()
        shown = 0

        def all_online() -> bool:
            nonlocal shown
            count = len(recorder.online())
            if count >= shown + 5 and count < NODES:
                shown = count
                progress(f"deploy: {count}/{NODES} nodes online")
            return count == NODES

        await _until(all_online, f"{NODES} nodes online")
        progress(f"deploy: {NODES} nodes online after {time.monotonic() - started:.1f} s")
        await asyncio.sleep(2 * INTERVAL)  # every node past its first cycles
        version = 1
        for i in range(runs):
            for canary in (False, True):
                version += 1
                bundle, content = fleet.bundle(f"{version}.0.0")
                mark = len(recorder.events)
                code, out, wall = await fleet.deploy(bundle, canary)
                if code != 0:
                    raise RuntimeError(f"wasihost deploy exited {code}:\n{out}")
                await asyncio.sleep(0.2)  # the last report may reach us after the CLI's copy
                run = _measure(recorder.since(mark), content, canary)
                run.cli_seconds = wall
                results.append(run)
                how = "--all --canary n00" if canary else "--all"
                stage = f", canary healthy {run.canary_stage:.1f} s" if canary else ""
                progress(
                    f"deploy run {i + 1}/{runs} ({how}): {NODES}/{NODES} healthy "
                    f"{run.to_all_healthy:.1f} s after the first delivery{stage}, first live "
                    f"{run.to_first_live:.2f} s; CLI {wall:.1f} s"
                )
    except BaseException:
        for host in fleet.hosts:
            if not host.running:
                progress(host.log_tail(10))
        raise
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await listening
        await asyncio.to_thread(stop_all, fleet.hosts)
        broker.stop()
    return results


def run(quick: bool = False) -> list[Figure]:
    if not Path(MOSQUITTO).exists():
        progress("deploy: skipped, no mosquitto (apt-get install mosquitto)")
        return []
    if not PYTHON_RUNTIME.exists():
        progress(f"deploy: skipped, no {PYTHON_RUNTIME} (make build)")
        return []
    runs = 1 if quick else 5
    with tempfile.TemporaryDirectory(prefix="wasihost-deploy-bench-") as tmp:
        results = asyncio.run(_bench(Path(tmp), runs))
        shutil.rmtree(tmp, ignore_errors=True)
    gate = f"gate {GATE_POLLS} polls x {INTERVAL:g} s (default 10 x 2 s = 20 s a stage)"
    plain = [r for r in results if not r.canary]
    canary = [r for r in results if r.canary]
    installs = [ms for r in results for ms in r.install_ms]
    to_live = [s for r in results for s in r.delivery_to_live]
    cuts = statistics.quantiles(installs, n=10) if len(installs) > 1 else installs
    group = "deploy"
    n = NODES
    return [
        figure(group, f"--all to {n} nodes: publish to all healthy", "s",
               [r.to_all_healthy for r in plain], gate),
        figure(group, f"--all --canary to {n} nodes: publish to all healthy", "s",
               [r.to_all_healthy for r in canary], gate),
        figure(group, "--all --canary: canary stage (publish to canary healthy)", "s",
               [r.canary_stage or 0.0 for r in canary], gate),
        figure(group, f"--all to {n} nodes: wasihost deploy wall time", "s",
               [r.cli_seconds for r in plain], "CLI start to exit"),
        figure(group, f"--all --canary to {n} nodes: wasihost deploy wall time", "s",
               [r.cli_seconds for r in canary], "CLI start to exit"),
        figure(group, "--all: publish to first node live", "s",
               [r.to_first_live for r in plain]),
        figure(group, "per node: received to live", "ms", installs,
               f"{len(installs)} installs; p90 {cuts[-1]:.0f} ms"),
        figure(group, "the canary alone: received to live", "ms",
               [r.canary_install_ms or 0.0 for r in canary], "no other node installing"),
        figure(group, "per node: its stage's delivery to live", "s", to_live,
               f"{len(to_live)} installs, {n} nodes on this machine's cores"),
    ]  # fmt: skip
