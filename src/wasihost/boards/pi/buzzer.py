"""The buzzer: a relay played in a pattern on a background thread.

``beep`` returns at once (a plugin's poll must not sleep through a pattern
that can last seconds); a newer pattern replaces one still playing. The
player drives the relay off in a ``finally``, so neither an error nor an
interruption leaves the buzzer sounding, and ``close`` stops the pattern
before the relay is released. The thread is a daemon so a long pattern
never delays interpreter exit; the relay's atexit hook turns it off first.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from wasihost.boards.base import BoardProblem
from wasihost.boards.pi.relay import Relay
from wasihost.errors import BoardError

log = logging.getLogger("wasihost.boards.pi")

JOIN_TIMEOUT_S = 1.0


class Buzzer:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self._lock = threading.Lock()
        self._player: tuple[threading.Thread, threading.Event] | None = None

    def problem(self) -> BoardProblem | None:
        return self.relay.problem()

    def beep(self, count: int, duration_ms: int, interval_ms: int) -> None:
        """Start ``count`` beeps of ``duration_ms`` spaced by ``interval_ms``."""
        problem = self.relay.problem()
        if problem is not None:
            raise problem.error()
        with self._lock:
            self._stop_player()
            stop = threading.Event()
            thread = threading.Thread(
                target=self._play,
                args=(count, duration_ms / 1000.0, interval_ms / 1000.0, stop),
                name="wasihost-buzzer",
                daemon=True,
            )
            self._player = (thread, stop)
            thread.start()

    def is_on(self) -> bool:
        """Read back from the line."""
        return self.relay.get()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until the current pattern ends; True if none is playing."""
        with self._lock:
            player = self._player
        if player is not None:
            player[0].join(timeout)
            return not player[0].is_alive()
        return True

    def _play(self, count: int, on_s: float, off_s: float, stop: threading.Event) -> None:
        try:
            for i in range(count):
                self.relay.set(True)
                if stop.wait(on_s):
                    return
                self.relay.set(False)
                if i + 1 < count and stop.wait(off_s):
                    return
        except BoardError as exc:
            log.error("buzzer pattern stopped: %s", exc)
        finally:
            with contextlib.suppress(BoardError):  # already released: release drove it off
                self.relay.set(False)

    def _stop_player(self) -> None:
        player, self._player = self._player, None
        if player is not None:
            thread, stop = player
            stop.set()
            thread.join(JOIN_TIMEOUT_S)

    def close(self) -> None:
        with self._lock:
            self._stop_player()
        self.relay.close()
