"""The hostile-client suite (issue 14, class 6): the HTTP edge under attack.

A plugin is not the only untrusted party: anyone who can reach the port can
send bytes no client library would send, hold connections open, trickle
headers or bodies, or (through a plugin's readings or a tampered database)
put values into the history that strict JSON cannot carry. Socket-level
attacks go to a real server on a free loopback port, started by
``server.start`` exactly as the host starts it; the file-descriptor attack
runs the host in a subprocess with a low ``RLIMIT_NOFILE`` so this test
process stays safe. Every test asserts what the host answered or did, never
how fast: waits are bounded only so that a broken host fails the test
instead of hanging it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host
from wasihost.web import edge, server

TOKEN = "operator-token-0123456789"
GIVE_UP_S = 60.0  # a bound on waits, so a broken host fails instead of hanging


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body, parse_constant=refuse_constant)


def refuse_constant(name: str) -> object:
    """``json.loads`` hook: NaN and Infinity are not JSON, whatever Python accepts."""
    raise ValueError(f"non-standard JSON constant {name}")


async def exchange(port: int, raw: bytes) -> Answer:
    """Send ``raw`` bytes as they are and read the answer up to the server's close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), GIVE_UP_S)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), f"no HTTP answer: {data[:200]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(lines[0].split()[1]), headers, body)


def get(target: bytes, *headers: bytes) -> bytes:
    return (
        b"GET "
        + target
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"\r\n"
    )


def post(target: bytes, *headers: bytes, body: bytes = b"{}") -> bytes:
    length = b"Content-Length: %d" % len(body)
    return (
        b"POST "
        + target
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + b"".join(h + b"\r\n" for h in (*headers, length))
        + b"\r\n"
        + body
    )


@pytest.fixture
async def host(
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
) -> AsyncIterator[Host]:
    config = make_config({"dht22": {"led": 1}}, web={"enabled": False, "token": TOKEN})
    host = make_host(config)
    board.set_dht22(21.0, 45.0)
    await host.after_cycle(await host.cycle.run_once())
    yield host


@pytest.fixture
async def port(host: Host) -> AsyncIterator[int]:
    listening = await server.start(host, "127.0.0.1", 0)
    try:
        yield listening.port
    finally:
        host.stream.close()
        await listening.close()


# -- malformed requests ---------------------------------------------------------

MALFORMED_TO_THE_APP = {
    "non-UTF-8 bearer token": post(b"/api/test/fan", b"Authorization: Bearer \xff\xfe\xfd"),
    "non-UTF-8 authorization scheme": post(b"/api/test/fan", b"Authorization: \xc3\x28 abc"),
    "non-ASCII bearer token": post(b"/api/test/fan", "Authorization: Bearer é€".encode()),
    "bearer with no token": post(b"/api/test/fan", b"Authorization: Bearer"),
    "non-UTF-8 body": post(
        b"/api/test/fan",
        b"Authorization: Bearer " + TOKEN.encode(),
        b"Content-Type: application/json",
        body=b'{"on": "\xff"}',
    ),
    "percent-encoded non-UTF-8 plugin name": post(
        b"/api/plugins/%ff%fe/reset", b"Authorization: Bearer " + TOKEN.encode()
    ),
    "percent-encoded NUL in the path": get(b"/api/%00"),
    "percent-encoded NUL plugin name": post(
        b"/api/plugins/a%00b/reload", b"Authorization: Bearer " + TOKEN.encode()
    ),
    "bad percent-encoding in the query": get(b"/api/history?plugin=%zz&field=%"),
    "percent-encoded non-UTF-8 query": get(b"/api/history?plugin=%ff%fe&field=%c3%28"),
    "NUL in the query": get(b"/api/history?plugin=dht22%00&field=temperature%00"),
    "since is not a number": get(b"/api/history?plugin=dht22&field=temperature&since=abc"),
    "since of 5000 digits": get(
        b"/api/history?plugin=dht22&field=temperature&since=" + b"9" * 5000
    ),
    "until of 1e309": get(b"/api/history?plugin=dht22&field=temperature&until=1e309"),
    "since is NaN": get(b"/api/history?plugin=dht22&field=temperature&since=nan"),
    "points is negative": get(b"/api/history?plugin=dht22&field=temperature&points=-5"),
    "points in Arabic-Indic digits": get(
        b"/api/history?plugin=dht22&field=temperature&points=%D9%A3"
    ),
    "since repeated": get(b"/api/history?plugin=dht22&field=temperature&since=1&since=abc"),
}


@pytest.mark.parametrize("raw", MALFORMED_TO_THE_APP.values(), ids=MALFORMED_TO_THE_APP)
async def test_malformed_request_gets_a_4xx_with_a_json_reason(port: int, raw: bytes) -> None:
    answer = await exchange(port, raw)
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.headers.get("content-type", "").startswith("application/json"), answer
    reason = answer.json()
    assert isinstance(reason, dict) and reason.get("error"), reason


MALFORMED_HTTP = {
    "non-UTF-8 in the path": get(b"/api/plugins/\xff\xfe/x"),
    "non-UTF-8 plugin name": post(b"/api/plugins/\xff/reset"),
    "non-UTF-8 query": get(b"/api/history?plugin=\xff&field=\xfe"),
    "a 100 KB query": get(b"/api/history?plugin=" + b"a" * 100_000 + b"&field=x"),
    "header line without a colon": get(b"/api/readings", b"Authorization Bearer x"),
    "NUL in a header value": get(b"/api/readings", b"Authorization: Bearer a\x00b"),
    "control character in a header name": get(b"/api/readings", b"Auth\x01: x"),
    "NUL in the path": get(b"/api/\x00readings"),
    "space in the path": get(b"/api/ readings"),
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
    "a 100 KB header": get(b"/api/readings", b"X-Big: " + b"a" * 100_000),
    "500 headers": get(b"/api/readings", *(b"X-%d: y" % i for i in range(500))),
    "negative content length": b"POST /api/test/fan HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    "two content lengths": (
        b"POST /api/test/fan HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"
    ),
}


@pytest.mark.parametrize("raw", MALFORMED_HTTP.values(), ids=MALFORMED_HTTP)
async def test_unparseable_http_gets_a_4xx_naming_the_problem(port: int, raw: bytes) -> None:
    """Requests the HTTP parser refuses before any handler runs: a 4xx with the reason."""
    answer = await exchange(port, raw)
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.body.strip(), "the answer does not say what was wrong"


async def test_malformed_requests_do_not_flood_the_log(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(10):
        for raw in (*MALFORMED_HTTP.values(), *MALFORMED_TO_THE_APP.values()):
            await exchange(port, raw)
    noisy = [r for r in caplog.records if r.levelno >= logging.INFO]
    shown = [f"{r.name}: {r.getMessage()[:80]}" for r in noisy[:5]]
    assert len(noisy) <= 2 * len(MALFORMED_HTTP), (len(noisy), shown)
    assert not [r for r in noisy if r.exc_info], shown  # no tracebacks either


async def test_the_api_still_answers_after_the_attacks(port: int) -> None:
    for raw in (*MALFORMED_HTTP.values(), *MALFORMED_TO_THE_APP.values()):
        await exchange(port, raw)
    answer = await exchange(port, get(b"/api/readings"))
    assert answer.status == 200
    assert "dht22" in answer.json()["readings"]  # type: ignore[index]


# -- non-finite numbers in the history ------------------------------------------


def tamper(path: Path, rows: list[tuple[int, object]]) -> None:
    """Write rows into the dht22 temperature series of the real SQLite file, bypassing
    the host (a tampered or corrupted database, or a future writer with a bug)."""
    with sqlite3.connect(path) as db:
        (series_id,) = db.execute(
            "SELECT id FROM series WHERE plugin = 'dht22' AND field = 'temperature'"
        ).fetchone()
        db.executemany(
            "INSERT OR REPLACE INTO timeline (id, series_id, value) VALUES ((? << 12) | ?, ?, ?)",
            [(ts, series_id, series_id, value) for ts, value in rows],
        )


@pytest.mark.parametrize("points", ["500", "2"], ids=["raw", "downsampled"])
async def test_history_never_emits_non_finite_numbers(host: Host, port: int, points: str) -> None:
    assert host.history is not None
    (newest,) = host.history.query("dht22", "temperature", 0, 2**53).points
    base = newest[0]
    tamper(
        host.history.path,
        [
            (base - 5000, math.inf),
            (base - 4000, -math.inf),
            (base - 8000, 1e308),
            (base - 7990, 1e308),  # their average (one bucket when downsampled) overflows
            (base - 2000, "not a number"),
            (base - 1000, b"\x00\xff"),
        ],
    )
    target = b"/api/history?plugin=dht22&field=temperature&since=%d&until=%d&points=%s" % (
        base - 10_000,
        base,
        points.encode(),
    )
    answer = await exchange(port, get(target))
    assert answer.status == 200, answer.body[:300]
    series = answer.json()
    assert isinstance(series, dict)
    # [t, value], or [t, mean, min, max] downsampled: every number finite.
    numbers = [n for point in series["points"] for n in point[1:]]
    assert numbers and all(isinstance(n, float) and math.isfinite(n) for n in numbers), numbers
    values = [point[1] for point in series["points"]]
    if points == "500":  # the finite rows survive, in order
        assert values == [1e308, 1e308, newest[1]]
    else:
        assert values == [newest[1]]


# -- idle and slow connections --------------------------------------------------


async def closed_by_server(port: int, chunks: list[bytes], pause_s: float) -> bytes:
    """Open a connection, send ``chunks`` one per ``pause_s`` (stopping once the server
    closed), and return whatever the server sent before closing it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            if reader.at_eof():
                break
            try:
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(pause_s)
            except ConnectionError:
                break
        try:
            return await asyncio.wait_for(reader.read(), GIVE_UP_S)
        except ConnectionError:  # closed while we were still writing: closed all the same
            return b""
    finally:
        writer.close()


@pytest.fixture
def quick_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The deployed timeouts, shortened so that the tests do not wait for them."""
    monkeypatch.setattr(edge, "IDLE_TIMEOUT_S", 1.0)
    monkeypatch.setattr(edge, "BODY_TIMEOUT_S", 1.0)


SLOW = {
    "idle, nothing sent": ([b""], 0.0),
    "half a request line": ([b"GET /api/rea"], 0.0),
    "header trickle (slowloris)": (
        [b"GET /api/readings HTTP/1.1\r\n", *[b"X-Slow: y\r\n"] * 1000],
        0.2,
    ),
    "body trickle, no token": (
        [b"POST /api/test/fan HTTP/1.1\r\nContent-Length: 1000\r\n\r\n", *[b" "] * 1000],
        0.2,
    ),
    "body trickle with the token": (
        [
            b"POST /api/test/fan HTTP/1.1\r\nContent-Length: 1000\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n",
            *[b" "] * 1000,
        ],
        0.2,
    ),
    "idle after one request": ([get(b"/api/readings").replace(b"close", b"keep-alive")], 0.0),
}


@pytest.mark.parametrize(("chunks", "pause_s"), SLOW.values(), ids=SLOW)
async def test_slow_and_idle_connections_are_closed_by_the_server(
    quick_timeouts: None, port: int, chunks: list[bytes], pause_s: float
) -> None:
    answer = await closed_by_server(port, chunks, pause_s)
    if answer:  # whatever it answered before closing is an answer, not half of one
        assert answer.startswith(b"HTTP/1.1 "), answer[:200]


async def test_streams_beyond_the_cap_are_refused_and_the_api_answers(port: int) -> None:
    cap = server.MAX_STREAMS
    streams = []
    try:
        for _ in range(cap):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(get(b"/api/stream").replace(b"close", b"keep-alive"))
            streams.append(writer)
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        refused = await exchange(port, get(b"/api/stream"))
        assert refused.status == 503
        assert "streams" in refused.json()["error"]  # type: ignore[index]
        assert (await exchange(port, get(b"/api/readings"))).status == 200
    finally:
        for writer in streams:
            writer.close()


async def test_connections_over_the_cap_get_a_503_and_are_closed(port: int) -> None:
    """Idle connections hold descriptors until the idle timeout; past the cap the
    host answers at once and hangs up, so the rest of the host keeps its descriptors."""
    cap = edge.MAX_CONNECTIONS
    held = []
    try:
        for _ in range(cap):
            held.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.2)  # let the host accept them all before the next one
        over = await asyncio.wait_for(exchange(port, get(b"/api/readings")), 10)
        assert over.status == 503, over
        assert "connections" in over.json()["error"]  # type: ignore[index]
    finally:
        for _, writer in held:
            writer.close()
    # Once they are gone (the host sees each close), the API answers again.
    for _ in range(int(GIVE_UP_S * 10)):
        if (await exchange(port, get(b"/api/readings"))).status == 200:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the host kept refusing after the connections closed")


# -- running out of file descriptors ------------------------------------------

NOFILE = 64  # the host process's descriptor limit in this test
ATTACKERS = 150  # idle connections, well over what the host can accept with NOFILE

HOST_UNDER_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}))
from wasihost.web import edge
edge.IDLE_TIMEOUT_S = {idle}
from wasihost.cli import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_get(port: int, path: str) -> int | None:
    """The status of ``GET path``, or None when the host does not answer within a few seconds."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def until(check: Callable[[], bool]) -> bool:
    """Whether ``check`` becomes true before GIVE_UP_S (polled, not a timed assertion)."""
    give_up = time.monotonic() + GIVE_UP_S
    while time.monotonic() < give_up:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_out_of_descriptors_the_api_comes_back_while_the_attacker_holds_on(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "host.toml"
    config.write_text(
        f'[web]\nport = {port}\n[history]\npath = "{tmp_path / "h.sqlite3"}"\n'
        f'[state]\ndir = "{tmp_path / "state"}"\n[board]\nkind = "sim"\n',
        encoding="utf-8",
    )
    script = HOST_UNDER_LIMIT.format(nofile=NOFILE, idle=2.0)
    log = tmp_path / "host.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", script, str(config)],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    attackers: list[socket.socket] = []
    try:
        assert until(lambda: http_get(port, "/healthz") is not None), log.read_text()
        for _ in range(ATTACKERS):  # connect and send nothing, never close
            attacker = socket.create_connection(("127.0.0.1", port), timeout=5)
            attackers.append(attacker)
        # The host ran out of descriptors (the kernel's backlog still took the
        # connections): it must close the idle ones itself and answer again.
        assert until(lambda: http_get(port, "/api/readings") == 200), log.read_text()[-3000:]
        assert process.poll() is None
    finally:
        for attacker in attackers:
            attacker.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    text = log.read_text(encoding="utf-8", errors="replace")
    assert text.count("Traceback") == 0, text[-3000:]
    assert text.count("\n") < 40, text[-3000:]  # reported, not flooded
