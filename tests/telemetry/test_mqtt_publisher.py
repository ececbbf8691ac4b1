"""MqttPublisher without a broker: backoff, TLS settings, outbox failures."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from wasihost.config import MqttConfig
from wasihost.errors import ConfigError
from wasihost.model import Measurement, Reading
from wasihost.telemetry.mqtt import MqttPublisher
from wasihost.telemetry.outbox import Outbox


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(port: int, **extra: object) -> MqttConfig:
    return MqttConfig.model_validate({"enabled": True, "host": "127.0.0.1", "port": port, **extra})


def reading(t_ms: int) -> Reading:
    m = Measurement("dht22", "temperature", 21.5, "°C", "temperature", t_ms)
    return Reading("dht22", "dht22-plugin", t_ms, (m,), {})


async def test_reconnect_backoff_doubles_and_is_capped(tmp_path: Path) -> None:
    delays: list[float] = []
    stop = asyncio.Event()

    async def record(seconds: float) -> None:  # the injected clock: no real waiting
        delays.append(seconds)
        if len(delays) == 7:
            stop.set()

    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    publisher = MqttPublisher(
        settings(unused_port()),  # nothing listens there: every connect is refused
        "n1",
        2.0,
        outbox,
        backoff_initial_seconds=1.0,
        backoff_max_seconds=8.0,
        sleep=record,
    )
    await asyncio.wait_for(publisher.run(stop), 15)
    expected = [1, 2, 4, 8, 8, 8, 8]
    assert all(0.8 * e <= d <= 1.2 * e for d, e in zip(delays, expected, strict=True)), delays
    publisher.enqueue_cycle([reading(1)], {"dht22": {"state": "running", "polls": 1}})
    assert outbox.depth() == 2 and not publisher.connected  # still queues while down
    assert publisher.stats().reconnects == 0
    outbox.close()


def test_client_settings(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    publisher = MqttPublisher(
        settings(1883, client_id="attic-pi", base_topic="home/attic", expire_after_seconds=30),
        "attic",
        2.0,
        outbox,
    )
    assert publisher.topics.availability == "home/attic/availability"
    assert publisher.expire_after == 30
    assert MqttPublisher(settings(1883), "attic", 30.0, outbox).expire_after == 90
    assert MqttPublisher(settings(1883), "attic", 2.0, outbox).expire_after == 60
    outbox.close()


async def test_tls_with_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    missing = str(tmp_path / "missing-ca.pem")
    with pytest.raises(ConfigError, match=r"mqtt\.ca_file"):
        MqttPublisher(settings(8883, tls=True, ca_file=missing), "n1", 2.0, outbox)
    MqttPublisher(settings(8883, tls=True), "n1", 2.0, outbox).client()  # system CAs
    outbox.close()


def test_a_failing_outbox_never_raises_into_the_cycle(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", 1000)
    publisher = MqttPublisher(settings(1883), "n1", 2.0, outbox)
    outbox.close()  # every write now fails, like a dead SD card
    publisher.enqueue_cycle([reading(1)], {})
    assert publisher.stats().enqueue_errors == 1
