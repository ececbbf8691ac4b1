"""Crash-loop policy for one plugin: backoff between restarts, then quarantine.

After a trap the plugin waits before its next instance runs, doubling on
each consecutive trap up to the policy's maximum; a successful call resets
the doubling. A crash loop is ``quarantine_after`` traps within ``window_s``
while the plugin trapped more often than it succeeded since the first of
them: it is quarantined, not polled until its file changes (a successful
reload) or an operator resets it. The success count is what tells a crash
loop from an occasional fault: a sensor whose driver trips once every ten
polls keeps running (backing off after each trap), however long it runs.
Time is monotonic and injectable. The plugin turns what this decides into
lifecycle steps (runtime/lifecycle.py): ``trap`` or ``crash-loop`` after
``on_trap``, ``backoff-elapsed`` once ``backing_off`` is over, and ``reset``
or ``new-version`` with ``reset``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SupervisionPolicy:
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    quarantine_after: int = 5
    window_s: float = 600.0


class Supervisor:
    def __init__(
        self, policy: SupervisionPolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.consecutive = 0
        self.retry_at: float | None = None
        self.quarantined = False
        self.quarantines = 0
        # Traps within the window, each with the successes that followed it.
        self._traps: deque[list[float]] = deque()

    def on_trap(self) -> None:
        now = self.clock()
        self._traps.append([now, 0])
        while self._traps and now - self._traps[0][0] > self.policy.window_s:
            self._traps.popleft()
        self.consecutive += 1
        delay = self.policy.backoff_initial_s * 2 ** (self.consecutive - 1)
        self.retry_at = now + min(self.policy.backoff_max_s, delay)
        successes = sum(trap[1] for trap in self._traps)
        crash_loop = len(self._traps) >= self.policy.quarantine_after and successes < len(
            self._traps
        )
        if crash_loop and not self.quarantined:
            self.quarantined = True
            self.quarantines += 1

    def on_success(self) -> None:
        self.consecutive = 0
        self.retry_at = None
        if self._traps:
            self._traps[-1][1] += 1

    # retry_at is read once: another thread may clear it between two reads.
    def backing_off(self) -> bool:
        retry_at = self.retry_at
        return retry_at is not None and self.clock() < retry_at

    def retry_in_s(self) -> float | None:
        retry_at = self.retry_at
        return None if retry_at is None else max(0.0, retry_at - self.clock())

    def reset(self) -> None:
        """Forget the failures (operator reset, or a new version went live)."""
        self._traps.clear()
        self.consecutive = 0
        self.retry_at = None
        self.quarantined = False
