"""Idempotent append retries: what a channel answered to its last few requests, by requestId.

The SDK resends an append whose response it lost (timeout, connection reset) with the same body,
the same continuation token and the same `requestId`, and a higher `retryCount` (official-sdk-wire
§5, §7). Snowflake does not document what the server does then (§2.6), but the SDK needs the
request applied once and answered as the first time, or it invalidates the channel. So each live
channel remembers the tokens it handed out for its most recent requests; a retry that matches one
gets the same `next_continuation_token` without being applied again. The memory is bounded per
channel (the SDK has one request in flight per channel) and dies with the opener: a reopen starts
a fresh channel state, so a retry from a fenced opener still fails as stale.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

REMEMBERED_PER_CHANNEL = 16


@dataclass(frozen=True, slots=True)
class Attempt:
    """The retry identity of one request: `requestId` and `retryCount` from its query string."""

    request_id: str | None = None
    retry_count: int = 0


FIRST_ATTEMPT = Attempt()
"""A request that carries no retry identity (our own client sends none)."""


@dataclass(slots=True)
class _Answer:
    token_in: str
    token_out: str
    retry_count: int


class RecentRequests:
    """The answers to a channel's most recent appends, oldest evicted first."""

    def __init__(self, capacity: int = REMEMBERED_PER_CHANNEL) -> None:
        self._capacity = capacity
        self._answers: OrderedDict[str, _Answer] = OrderedDict()

    def remember(self, attempt: Attempt, token_in: str, token_out: str) -> None:
        """Record that `attempt`, sent with `token_in`, was applied and answered `token_out`."""
        if attempt.request_id is None:
            return
        self._answers[attempt.request_id] = _Answer(token_in, token_out, attempt.retry_count)
        self._answers.move_to_end(attempt.request_id)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)

    def replay(self, attempt: Attempt, token_in: str) -> str | None:
        """The earlier answer if `attempt` is a retry (same id and token, higher retryCount)."""
        if attempt.request_id is None:
            return None
        answer = self._answers.get(attempt.request_id)
        if answer is None or answer.token_in != token_in:
            return None
        if attempt.retry_count <= answer.retry_count:
            return None
        answer.retry_count = attempt.retry_count
        return answer.token_out
