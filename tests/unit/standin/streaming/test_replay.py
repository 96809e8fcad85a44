"""Idempotent retries: an applied append's answer is replayed to its retry, and only to it."""

from __future__ import annotations

import pytest

from streamd.standin.streaming.replay import Attempt, RecentRequests

# ---- retry memory -------------------------------------------------------------------------


def test_retry_with_same_id_and_token_and_higher_count_gets_the_same_answer() -> None:
    recent = RecentRequests()
    recent.remember(Attempt("req-1", 0), "tok-0", "tok-1")
    assert recent.replay(Attempt("req-1", 1), "tok-0") == "tok-1"
    assert recent.replay(Attempt("req-1", 3), "tok-0") == "tok-1"


@pytest.mark.parametrize(
    ("attempt", "token"),
    [
        (Attempt("req-1", 0), "tok-0"),  # same retryCount: not a retry
        (Attempt("req-1", 1), "tok-9"),  # another continuation token
        (Attempt("req-2", 1), "tok-0"),  # another request
        (Attempt(None, 1), "tok-0"),  # no requestId at all (our own client's style)
    ],
)
def test_non_retries_are_not_replayed(attempt: Attempt, token: str) -> None:
    recent = RecentRequests()
    recent.remember(Attempt("req-1", 0), "tok-0", "tok-1")
    assert recent.replay(attempt, token) is None


def test_retry_memory_is_bounded_and_forgets_the_oldest() -> None:
    recent = RecentRequests(capacity=3)
    for i in range(5):
        recent.remember(Attempt(f"req-{i}", 0), f"tok-{i}", f"tok-{i + 1}")
    assert recent.replay(Attempt("req-0", 1), "tok-0") is None
    assert recent.replay(Attempt("req-1", 1), "tok-1") is None
    assert recent.replay(Attempt("req-4", 1), "tok-4") == "tok-5"


# ---- aws-chunked and the stage ------------------------------------------------------------
