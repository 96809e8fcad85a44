"""Retrying one Snowflake call: jittered exponential backoff, or what Retry-After asked for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_random_exponential

from streamd.clock import Clock
from streamd.errors import RetryableError

T = TypeVar("T")

MAX_RETRY_AFTER_S = 60.0
"""A server asking for longer than this gets it capped; we would rather ask again."""


class _RetryAfterOrBackoff:
    """Wait what the server asked for (Retry-After), else jittered exponential backoff."""

    def __init__(self) -> None:
        self._backoff = wait_random_exponential(multiplier=0.2, max=30)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.retry_after if isinstance(exc, RetryableError) else None
        if asked is not None:
            return min(asked, MAX_RETRY_AFTER_S)
        return float(self._backoff(state))


async def retrying(
    call: Callable[[], Awaitable[T]],
    clock: Clock,
    on_retry: Callable[[RetryableError, int], None],
) -> T:
    """Run `call` until it does not raise RetryableError; other errors propagate at once."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError):
            on_retry(exc, state.attempt_number)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(RetryableError),
        wait=_RetryAfterOrBackoff(),
        sleep=clock.sleep,
        reraise=True,
        before_sleep=before_sleep,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity either returns or reraises")
