"""Host side of the ``i2c`` interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.capabilities.context import CapabilityContext
from wasihost.capabilities.wit import U8, U32, Bytes
from wasihost.grants import I2C_ADDRESSES

INTERFACE = "i2c"
MAX_READ_LEN = 4096
# Real transactions are a few bytes. Note the host only sees a write after
# wasmtime-py has converted it (a byte at a time), so a multi-megabyte write
# still costs the guest's own call time before it is refused here.
MAX_WRITE_LEN = 4096


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    def transfer(address: U8, data: Bytes, read_len: U32) -> bytes:
        ctx.require_grant(I2C_ADDRESSES, address)
        if read_len > MAX_READ_LEN:
            raise ctx.refuse("i2c-size", f"read of {read_len} bytes exceeds {MAX_READ_LEN}")
        if len(data) > MAX_WRITE_LEN:
            raise ctx.refuse("i2c-size", f"write of {len(data)} bytes exceeds {MAX_WRITE_LEN}")
        return ctx.board.i2c_transfer(address, bytes(data), read_len)

    return {"transfer": transfer}
