"""Client-side pacing so one channel stays under Snowflake's per-channel soft limits (§2.13).

10 requests/s and 20 MB/s (uncompressed) per channel; going over earns 429s that cost more than
waiting. A token bucket per limit; waits go through the injected clock.
"""

from __future__ import annotations

from streamd.clock import Clock

REQUESTS_PER_S = 10.0
BYTES_PER_S = 20_000_000.0


class TokenBucket:
    """`rate` tokens per second, holding at most `burst`."""

    def __init__(self, clock: Clock, rate: float, burst: float) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = clock.monotonic()

    def __repr__(self) -> str:
        return f"<TokenBucket {self._tokens:.1f}/{self.burst:g} at {self.rate:g}/s>"

    async def take(self, amount: float) -> float:
        """Take `amount` tokens, waiting until they are there; returns the seconds waited.

        An amount above the burst is allowed (one big request) and simply waits longer.
        """
        now = self._clock.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= amount
        if self._tokens >= 0:
            return 0.0
        wait = -self._tokens / self.rate
        await self._clock.sleep(wait)
        return wait


class ChannelPacer:
    """Both per-channel limits together."""

    def __init__(
        self, clock: Clock, requests_per_s: float = REQUESTS_PER_S, bytes_per_s: float = BYTES_PER_S
    ) -> None:
        # A burst of one second's worth: a replay after a reopen may use it, then runs at the rate.
        self.requests = TokenBucket(clock, requests_per_s, requests_per_s)
        self.bytes = TokenBucket(clock, bytes_per_s, bytes_per_s)

    async def before_append(self, nbytes: int) -> float:
        """Wait until an append of `nbytes` uncompressed bytes fits under both limits."""
        return await self.requests.take(1) + await self.bytes.take(nbytes)
