"""The deploy protocol, v1: topics and report states, one definition for both ends.

Deliveries are retained so a node that is offline gets its bundle when it
connects; reports are retained so a deployer that starts later sees where
every node is. The topic layout puts the audience in the topic (one node, a
label, everyone), so a broker's ACL can say who may publish what, and a node
subscribes to exactly what concerns it.
"""

from __future__ import annotations

from typing import Literal

PREFIX = "wasihost/deploy"

Source = Literal["node", "label", "all"]
# Most specific first: a node's own delivery beats its labels', which beat "all".
PRECEDENCE: tuple[Source, ...] = ("node", "label", "all")

State = Literal[
    "received", "refused", "needs-grants", "staging", "live", "healthy", "rolled-back", "failed"
]
STATES: tuple[State, ...] = (
    "received",
    "refused",
    "needs-grants",
    "staging",
    "live",
    "healthy",
    "rolled-back",
    "failed",
)


def node_topic(node_id: str, plugin: str) -> str:
    return f"{PREFIX}/node/{node_id}/{plugin}"


def label_topic(label: str, plugin: str) -> str:
    return f"{PREFIX}/label/{label}/{plugin}"


def all_topic(plugin: str) -> str:
    return f"{PREFIX}/all/{plugin}"


def subscriptions(node_id: str, labels: tuple[str, ...] | list[str]) -> list[str]:
    """What a node subscribes to: its own topic, each of its labels', and all."""
    return [
        f"{PREFIX}/node/{node_id}/+",
        *(f"{PREFIX}/label/{label}/+" for label in labels),
        f"{PREFIX}/all/+",
    ]


def parse_delivery(topic: str) -> tuple[Source, str, str] | None:
    """(source, audience, plugin) of a delivery topic; None for anything else.
    The audience is the node id, the label, or "" for all."""
    parts = topic.split("/")
    if parts[:2] != PREFIX.split("/"):
        return None
    rest = parts[2:]
    if len(rest) == 3 and rest[0] == "node":
        return "node", rest[1], rest[2]
    if len(rest) == 3 and rest[0] == "label":
        return "label", rest[1], rest[2]
    if len(rest) == 2 and rest[0] == "all":
        return "all", "", rest[1]
    return None


def report_topic(node_id: str, plugin: str) -> str:
    return f"wasihost/{node_id}/rollout/{plugin}"


def versions_topic(node_id: str) -> str:
    return f"wasihost/{node_id}/versions"
