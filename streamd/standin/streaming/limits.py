"""Per-channel rate limits as documented (§2.13): 10 append requests/s and 20 MB/s uncompressed.

Both are "soft" limits in the docs, which only say a 429 "can be returned". The stand-in enforces
them over a sliding one-second window of *accepted* appends (a refused append does not count), and
answers 429 with code `ERR_TOO_MANY_REQUESTS` (the code is undocumented: the stand-in's choice)
and a `Retry-After` in whole seconds (not documented either; clients are told to back off with
jitter, §2.10). One append is always allowed into an empty window, so a single body that
decompresses beyond 20 MB is not refused forever.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

MAX_APPENDS_PER_S = 10
MAX_BYTES_PER_S = 20 * 1024 * 1024
WINDOW_S = 1.0
RATE_LIMIT_CODE = "ERR_TOO_MANY_REQUESTS"


class RateLimited(Exception):
    """The append would exceed a channel limit; retry after `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class _Window:
    accepted: deque[tuple[float, int]] = field(default_factory=deque)
    bytes: int = 0

    def prune(self, now: float) -> None:
        while self.accepted and self.accepted[0][0] <= now - WINDOW_S:
            self.bytes -= self.accepted.popleft()[1]

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.accepted[0][0] + WINDOW_S - now))


class ChannelRateLimiter:
    """Sliding-window request and byte limits per channel key."""

    def __init__(
        self,
        *,
        max_requests: int = MAX_APPENDS_PER_S,
        max_bytes: int = MAX_BYTES_PER_S,
    ) -> None:
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.refused = 0
        """Appends refused with 429 so far."""
        self._windows: dict[Hashable, _Window] = {}

    def check_request(self, key: Hashable) -> None:
        """Raise RateLimited if the channel already had `max_requests` appends this second."""
        now = time.monotonic()
        window = self._windows.get(key)
        if window is None:
            return
        window.prune(now)
        if len(window.accepted) >= self.max_requests:
            self.refused += 1
            raise RateLimited(
                f"more than {self.max_requests} append requests per second on this channel",
                window.retry_after(now),
            )

    def accept(self, key: Hashable, nbytes: int) -> None:
        """Count an append of `nbytes` uncompressed bytes, or raise RateLimited."""
        now = time.monotonic()
        window = self._windows.setdefault(key, _Window())
        window.prune(now)
        if window.accepted and window.bytes + nbytes > self.max_bytes:
            self.refused += 1
            raise RateLimited(
                f"more than {self.max_bytes} uncompressed bytes per second on this channel",
                window.retry_after(now),
            )
        window.accepted.append((now, nbytes))
        window.bytes += nbytes

    def forget(self, key: Hashable) -> None:
        """Drop a channel's window (dropped channels)."""
        self._windows.pop(key, None)
