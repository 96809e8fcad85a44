"""Per-channel rate limits: accepted requests and bytes are counted against the documented limits."""

from __future__ import annotations

import pytest

from streamd.standin.streaming.limits import ChannelRateLimiter, RateLimited


def test_rate_limiter_counts_accepted_requests_and_bytes() -> None:
    limiter = ChannelRateLimiter(max_requests=3, max_bytes=100)
    for _ in range(3):
        limiter.check_request("c")
        limiter.accept("c", 10)
    with pytest.raises(RateLimited) as info:
        limiter.check_request("c")
    assert info.value.retry_after_s == 1
    limiter.check_request("other")
    limiter.accept("big", 500)  # one oversized append into an empty window is let through
    with pytest.raises(RateLimited, match="uncompressed bytes"):
        limiter.accept("big", 1)
    assert limiter.refused == 2
