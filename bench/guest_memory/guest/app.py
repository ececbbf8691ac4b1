"""The guest of the reproduction. Payloads are made once and cached, so the
only allocations a call makes are the ones the generated bindings make."""

from collections.abc import Callable
from functools import cache
from typing import Any

from wit_world import exports
from wit_world.imports import sink

HELD: list[bytes] = []  # what "hold" keeps


@cache
def payload_bytes(length: int) -> bytes:
    return bytes(i & 0x7F for i in range(length))


@cache
def payload_u16s(length: int) -> list[int]:
    return [i & 0x7F for i in range(length)]


@cache
def payload_string(length: int) -> str:
    return "x" * length


class Source(exports.Source):
    def get_bytes(self, length: int) -> bytes:
        return payload_bytes(length)

    def get_u16s(self, length: int) -> list[int]:
        return payload_u16s(length)

    def get_string(self, length: int) -> str:
        return payload_string(length)


class Driver(exports.Driver):
    def run(self, name: str, length: int, count: int) -> None:
        call: Callable[[Any], object]
        if name == "hold":  # fills the free heap with objects the guest keeps: no leak involved
            HELD.extend(bytes(length) for _ in range(count))
            return
        if name == "take-bytes":
            call, argument = sink.take_bytes, payload_bytes(length)
        elif name == "take-u16s":
            call, argument = sink.take_u16s, payload_u16s(length)
        elif name == "take-maybe-u16s":
            call, argument = sink.take_maybe_u16s, payload_u16s(length) if length else None
        elif name == "take-string":
            call, argument = sink.take_string, payload_string(length)
        elif name == "give-bytes":
            call, argument = sink.give_bytes, length
        elif name == "give-u16s":
            call, argument = sink.give_u16s, length
        else:
            raise ValueError(f"unknown import {name!r}")
        for _ in range(count):
            call(argument)
