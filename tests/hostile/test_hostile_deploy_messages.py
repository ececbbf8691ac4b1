"""Hostile messages on the deploy topics: whoever the broker lets publish
``wasihost/<node>/versions`` or ``wasihost/<node>/rollout/<plugin>`` (a
compromised node, under the documented ACL) must not crash ``wasihost deploy``
or the hub, nor make either keep unbounded data."""

from __future__ import annotations

import json

import pytest

from wasihost.deploy import protocol
from wasihost.deploy.deployer import parse_report
from wasihost.deploy.protocol import MAX_LABELS, MAX_NAME, MAX_PLUGINS, load_json, parse_versions

DEEP = b"[" * 100_000 + b"]" * 100_000  # valid JSON, nested past the parser's recursion limit
NESTED = b'{"labels": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"  # 40 KB, valid, too deep


@pytest.mark.parametrize("payload", [DEEP, NESTED, b"\xff\xfe", b"null", b"[]", b"7"])
def test_unparseable_or_too_deep_versions_and_reports_are_ignored(payload: bytes) -> None:
    assert parse_versions(payload) is None
    assert parse_report("n1", payload) is None


def test_a_versions_message_is_bounded_whatever_it_lists() -> None:
    payload = json.dumps(
        {
            "labels": [f"l{i}" for i in range(10_000)] + ["x" * 10_000, 7, None],
            "plugins": {
                **{f"p{i}": {"version": "1", "content_hash": None} for i in range(10_000)},
                "p0": {"version": "v" * 10_000, "content_hash": "sha256:nothex"},
            },
        }
    ).encode()
    versions = parse_versions(payload)
    assert versions is not None and versions.labels is not None
    assert len(versions.labels) == MAX_LABELS
    assert all(isinstance(label, str) and len(label) <= MAX_NAME for label in versions.labels)
    assert len(versions.plugins) == MAX_PLUGINS
    assert versions.plugins["p0"] == (None, None)  # a version too long, a hash not one


def test_plugin_names_that_are_not_names_are_dropped() -> None:
    long = "q" * (MAX_NAME + 1)
    payload = json.dumps({"labels": [], "plugins": {long: {}, "ok": {}}}).encode()
    versions = parse_versions(payload)
    assert versions is not None and list(versions.plugins) == ["ok"]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_message_with_a_number_json_cannot_carry_is_not_read(number: bytes) -> None:
    """Python's json reads NaN and Infinity, and 1e400 as inf: taken, they crash
    int() in the deployer and make the hub's own JSON invalid for every dashboard."""
    assert load_json(b'{"x": ' + number + b"}") is None
    assert parse_report("n1", report_with(number)) is None


def test_a_report_s_counters_beyond_any_real_value_read_as_unknown() -> None:
    parsed = parse_report("n1", report_with(b"9" * 400))
    assert parsed is not None and parsed.polls_ok == 0 and parsed.since_ms == 0


def test_the_deployer_reads_a_report_within_the_hubs_bounds() -> None:
    """The deployer had a parser of its own, without the hub's limits: a reason
    of any length reached its terminal, and any string passed as a version, a
    content hash, a source or a plugin name. Both now read reports alike."""
    good = {"plugin": "p", "state": "refused", "content_hash": "sha256:" + "a" * 64}
    parsed = parse_report(
        "n1",
        json.dumps(
            {
                **good,
                "version": "v" * 10_000,
                "reason": "r" * 100_000,
                "source": "s" * 10_000,
                "previous": {"version": ["1"], "content_hash": "sha256:zz", "x": "x" * 10_000},
            }
        ).encode(),
    )
    assert parsed is not None and parsed.state == "refused"
    assert len(parsed.reason) == protocol.MAX_REASON and parsed.reason.endswith("…")
    assert parsed.version == "" and parsed.source == ""
    assert parsed.previous == {"version": None, "content_hash": None}
    for bad in ({"content_hash": "<script>" * 100}, {"plugin": "p" * (MAX_NAME + 1)}):
        assert parse_report("n1", json.dumps({**good, **bad}).encode()) is None


def report_with(number: bytes) -> bytes:
    head = b'{"plugin": "p", "state": "live", "content_hash": "sha256:' + b"a" * 64
    return head + b'", "polls_ok": ' + number + b', "since_ms": ' + number + b"}"
