"""MQTT figures (issue 18): how fast a backlog drains, how soon a node reconnects.

A real ``mosquitto`` on a loopback port (two-line config, like the tests).

- drain: an outbox holding ``BACKLOG`` messages (the seed plugins' state and
  health JSON, on disk as an outage leaves them) is drained by one
  ``MqttPublisher``: messages per second from the first connect until the
  outbox is empty, every message acknowledged (QoS 1) and deleted.
- reconnect: a connected publisher loses its broker for ``OUTAGE`` seconds
  (long enough for the backoff to reach its cap); measured from the moment
  the broker accepts connections again until the publisher is connected.
  With the defaults of before (1 s doubling to 60 s) the same outage would
  wait up to 72 s; ``--quick`` skips that comparison.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import Figure, figure, free_port, progress
from wasihost.config import MqttConfig
from wasihost.telemetry.mqtt import MqttPublisher
from wasihost.telemetry.outbox import Outbox, OutboxMessage

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BACKLOG = 20_000
OUTAGE = 30.0


class Broker:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start; returns the monotonic time it first accepted a connection."""
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return time.monotonic()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
            self.process = None


def _messages(count: int) -> list[OutboxMessage]:
    """Alternating dht22 state and health documents, as a cycle queues them."""
    messages = []
    for i in range(count):
        t = 1_732_400_000_000 + i * 1000
        if i % 2 == 0:
            doc: dict[str, object] = {
                "timestamp_ms": t, "temperature": 21.5, "humidity": 45.4, "dew_point": 9.2,
                "heat_index": 21.1, "units": {"temperature": "°C", "humidity": "%",
                "dew_point": "°C", "heat_index": "°C"},
                "status": {"stale": False, "alarm": "none", "poll_count": i},
            }  # fmt: skip
            topic = "wasihost/bench/dht22/state"
        else:
            doc = {"timestamp_ms": t, "state": "running", "polls": i, "errors": 0, "traps": 0,
                   "restarts": 0, "reloads": 0, "quarantines": 0, "health": "ok",
                   "health_reason": None, "last_error": None, "last_poll_ms": 3.2}  # fmt: skip
            topic = "wasihost/bench/dht22/health"
        messages.append(OutboxMessage(topic, json.dumps(doc).encode(), 1))
    return messages


def _settings(port: int) -> MqttConfig:
    return MqttConfig(
        enabled=True, host="127.0.0.1", port=port, keepalive_seconds=30, discovery=False
    )


async def _until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.002)


async def _drain_once(folder: Path, count: int) -> float:
    broker = Broker(folder)
    broker.start()
    outbox = Outbox(folder / f"drain-{time.monotonic_ns()}.sqlite3", count + 1)
    try:
        outbox.put_many(_messages(count))
        publisher = MqttPublisher(_settings(broker.port), "bench", 2.0, outbox)
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        await _until(lambda: publisher.connected, 15)
        start = time.perf_counter()
        await _until(lambda: outbox.depth() == 0, 300)
        elapsed = time.perf_counter() - start
        stop.set()
        await task
        return count / elapsed
    finally:
        outbox.close()
        broker.stop()


async def _reconnect_once(folder: Path, outage: float, **backoff: float) -> float:
    broker = Broker(folder)
    broker.start()
    outbox = Outbox(folder / f"reconnect-{time.monotonic_ns()}.sqlite3", 1000)
    try:
        publisher = MqttPublisher(_settings(broker.port), "bench", 2.0, outbox, **backoff)
        stop = asyncio.Event()
        task = asyncio.create_task(publisher.run(stop))
        await _until(lambda: publisher.connected, 15)
        broker.stop()
        await _until(lambda: not publisher.connected, 15)
        await asyncio.sleep(outage)
        back = await asyncio.to_thread(broker.start)
        await _until(lambda: publisher.connected, 120)
        seconds = time.monotonic() - back
        stop.set()
        await task
        return seconds
    finally:
        outbox.close()
        broker.stop()


def run(quick: bool = False) -> list[Figure]:
    if not Path(MOSQUITTO).exists():
        progress("mqtt: skipped, no mosquitto (apt-get install mosquitto)")
        return []
    count = 5_000 if quick else BACKLOG
    runs = 1 if quick else 3
    figures = []
    with tempfile.TemporaryDirectory(prefix="wasihost-mqtt-bench-") as tmp:
        folder = Path(tmp)
        progress(f"mqtt drain: {count} messages x {runs}")
        rates = [asyncio.run(_drain_once(folder, count)) for _ in range(runs)]
        figures.append(
            figure("mqtt", f"backlog drain ({count} msgs, QoS 1, loopback)", "msg/s", rates)
        )
        outage = 20.0 if quick else OUTAGE
        progress(f"mqtt reconnect after a {outage:.0f} s outage x {runs}")
        waits = [asyncio.run(_reconnect_once(folder, outage)) for _ in range(runs)]
        figures.append(
            figure("mqtt", f"reconnect after a {outage:.0f} s outage (defaults)", "s", waits)
        )
        if not quick:
            progress("mqtt reconnect with the old backoff (1 s doubling to 60 s), 70 s outage")
            old = asyncio.run(
                _reconnect_once(folder, 70.0, backoff_initial_seconds=1.0, backoff_max_seconds=60.0)
            )
            figures.append(
                figure("mqtt", "reconnect after a 70 s outage (old 1-60 s backoff)", "s", [old])
            )
    return figures
