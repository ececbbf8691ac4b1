"""Host side of the ``i2c`` interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.capabilities.context import CapabilityContext

INTERFACE = "i2c"
MAX_READ_LEN = 4096
# Real transactions are a few bytes. Note the host only sees a write after
# wasmtime-py has converted it (a byte at a time), so a multi-megabyte write
# still costs the guest's own call time before it is refused here.
MAX_WRITE_LEN = 4096


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    def transfer(address: int, data: bytes, read_len: int) -> bytes:
        ctx.require(
            "transfer",
            address=(address, "u8"),
            data=(data, "list<u8>"),
            read_len=(read_len, "u32"),
        )
        if address not in ctx.grants.i2c_addresses:
            raise ctx.refuse("i2c", f"I2C address 0x{address:02x} is not granted to {ctx.plugin}")
        if read_len > MAX_READ_LEN:
            raise ctx.refuse("i2c-size", f"read of {read_len} bytes exceeds {MAX_READ_LEN}")
        if len(data) > MAX_WRITE_LEN:
            raise ctx.refuse("i2c-size", f"write of {len(data)} bytes exceeds {MAX_WRITE_LEN}")
        return ctx.board.i2c_transfer(address, bytes(data), read_len)

    return {"transfer": transfer}
