"""Client-side pacing so one channel stays under Snowflake's per-channel soft limits (§2.13).

10 requests/s and 20 MB/s (uncompressed) per channel; going over earns 429s whose Retry-After
costs far more than waiting. "Per second" is read as any one-second window, which is how the
stand-in enforces it, counted when appends are acknowledged: the server can only have accepted an
append before the client sees its answer, and a channel's appends are serial, so nothing is in
flight that the window does not know about. A sliding window rather than a token bucket: a bucket
with a second's burst lets up to twice the limit into one window.
"""

from __future__ import annotations

from collections import deque

from streamd.clock import Clock

REQUESTS_PER_S = 10.0
BYTES_PER_S = 20_000_000.0
WINDOW_S = 1.0


class SlidingWindow:
    """At most `limit` units in any `window_s` seconds; one entry always fits an empty window
    (a single body beyond the byte limit still goes, as the stand-in lets it)."""

    def __init__(self, clock: Clock, limit: float, window_s: float = WINDOW_S) -> None:
        self._clock = clock
        self.limit = limit
        self.window_s = window_s
        self._entries: deque[tuple[float, float]] = deque()
        self._total = 0.0

    def __repr__(self) -> str:
        return f"<SlidingWindow {self._total:g}/{self.limit:g} per {self.window_s:g}s>"

    def wait_s(self, amount: float) -> float:
        """Seconds until `amount` more fits (0: now)."""
        now = self._clock.monotonic()
        while self._entries and self._entries[0][0] <= now - self.window_s:
            self._total -= self._entries.popleft()[1]
        total = self._total
        if not self._entries or total + amount <= self.limit:
            return 0.0
        last = len(self._entries) - 1
        for i, (at, counted) in enumerate(self._entries):
            total -= counted
            # Once this entry leaves the window, what is left makes room (or nothing is left).
            if i == last or total + amount <= self.limit:
                return max(0.0, at + self.window_s - now)
        raise AssertionError("unreachable: the last entry always returns")

    def add(self, amount: float) -> None:
        """Count `amount` now."""
        self._entries.append((self._clock.monotonic(), amount))
        self._total += amount


class ChannelPacer:
    """Both per-channel limits together, over acknowledged appends."""

    def __init__(
        self, clock: Clock, requests_per_s: float = REQUESTS_PER_S, bytes_per_s: float = BYTES_PER_S
    ) -> None:
        self._clock = clock
        self.requests = SlidingWindow(clock, requests_per_s)
        self.bytes = SlidingWindow(clock, bytes_per_s)

    async def before_append(self, nbytes: int) -> float:
        """Wait until an append of `nbytes` uncompressed bytes fits under both limits; returns the
        seconds waited."""
        waited = 0.0
        while (wait := max(self.requests.wait_s(1), self.bytes.wait_s(nbytes))) > 0:
            await self._clock.sleep(wait)
            waited += wait
        return waited

    def appended(self, nbytes: int) -> None:
        """The append of `nbytes` was acknowledged: it counts from now."""
        self.requests.add(1)
        self.bytes.add(nbytes)
