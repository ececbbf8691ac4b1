"""Server-sent events: the app state pushed to every open dashboard each cycle.

The state is serialised once per cycle and the same bytes go to every
client. Each client has a one-slot mailbox: a slow client skips to the
newest state instead of queueing old ones, so a hundred open dashboards
cost the poll cycle one ``json.dumps`` and never block it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

KEEPALIVE_SECONDS = 15.0
_CLOSED = b""  # the mailbox sentinel that ends a client's stream


class StateStream:
    def __init__(self) -> None:
        self._clients: set[asyncio.Queue[bytes]] = set()
        self.latest: bytes | None = None
        self.closed = False

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, state_json: str) -> None:
        """Offer the newest state to every client (event loop thread only)."""
        self.latest = f"event: state\ndata: {state_json}\n\n".encode()
        self._offer(self.latest)

    def close(self) -> None:
        """End every client's stream (at shutdown, so the server can stop)."""
        self.closed = True
        self._offer(_CLOSED)

    def _offer(self, event: bytes) -> None:
        for mailbox in self._clients:
            if mailbox.full():
                mailbox.get_nowait()  # drop the stale state the client has not taken yet
            mailbox.put_nowait(event)

    async def events(self) -> AsyncIterator[bytes]:
        """Events for one client: the current state first, then one per cycle;
        a comment line as keep-alive so proxies do not close an idle stream."""
        mailbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        self._clients.add(mailbox)
        try:
            if self.latest is not None:
                yield self.latest
            while not self.closed:
                try:
                    event = await asyncio.wait_for(mailbox.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    event = b": keep-alive\n\n"
                if event is _CLOSED:
                    return
                yield event
        finally:
            self._clients.discard(mailbox)
