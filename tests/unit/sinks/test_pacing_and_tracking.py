"""Per-channel pacing and the per-pipe commit tracker, on a manual clock."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import orjson

from streamd.metrics import Metrics
from streamd.sinks.commit_tracker import CommitTracker
from streamd.snowflake.pacing import ChannelPacer, TokenBucket
from streamd.snowflake.streaming import ChannelStatus, StreamingClient
from streamd.testing import ManualClock


async def test_token_bucket_waits_for_the_deficit() -> None:
    """After the burst, each take waits exactly the time the rate needs."""
    clock = ManualClock()
    bucket = TokenBucket(clock, rate=10, burst=10)
    for _ in range(10):
        assert await bucket.take(1) == 0.0
    waited: list[float] = []
    async with anyio.create_task_group() as tg:

        async def take() -> None:
            waited.append(await bucket.take(1))

        tg.start_soon(take)
        await anyio.wait_all_tasks_blocked()
        assert waited == []
        clock.advance(0.1)
    assert waited == [0.1]


async def test_pacer_limits_bytes_too() -> None:
    """A 30 MB append at 20 MB/s must wait for the byte budget, not only the request budget."""
    clock = ManualClock()
    pacer = ChannelPacer(clock)
    result: list[float] = []
    async with anyio.create_task_group() as tg:

        async def append() -> None:
            result.append(await pacer.before_append(30_000_000))

        tg.start_soon(append)
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.5)
    assert result == [0.5]


class _Channel:
    def __init__(self, name: str) -> None:
        self.table = "DB.S.T"
        self.channel_name = name
        self.has_inflight = True
        self.seen: list[ChannelStatus | None] = []
        self.progress = True

    def on_status(self, status: ChannelStatus | None) -> bool:
        self.seen.append(status)
        return self.progress


class _Auth:
    async def ingest_url(self) -> str:
        return "http://ingest"

    async def scoped_token(self) -> str:
        return "tok"

    def invalidate_scoped_token(self, stale: str | None = None) -> None:
        return None

    def reset(self) -> None:
        return None


def _client(requests: list[dict[str, Any]]) -> StreamingClient:
    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        requests.append(body)
        statuses = {
            name: {
                "channel_status_code": "SUCCESS",
                "last_committed_offset_token": "00000000000000000001",
                "database_name": "DB",
                "schema_name": "S",
                "pipe_name": "T-STREAMING",
                "channel_name": name,
                "rows_inserted": 2,
                "rows_parsed": 2,
                "rows_error_count": 0,
                "created_on_ms": 0,
            }
            for name in body["channel_names"]
            if name != "gone"
        }
        return httpx.Response(200, json={"channel_statuses": statuses})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return StreamingClient(http, _Auth(), user_agent="t")  # type: ignore[arg-type]


async def test_one_status_call_covers_every_channel_of_the_pipe() -> None:
    """Three channels, one Bulk Channel Status request; a missing channel is reported as None."""
    requests: list[dict[str, Any]] = []
    tracker = CommitTracker(
        _client(requests),
        "DB",
        "S",
        "T-STREAMING",
        clock=ManualClock(),
        metrics=Metrics(),
        min_interval_s=0.1,
    )
    channels = [_Channel("a"), _Channel("b"), _Channel("gone")]
    for channel in channels:
        tracker.register(channel)
    assert await tracker.poll_once() is True
    assert requests == [{"channel_names": ["a", "b", "gone"]}]
    assert channels[0].seen[0] is not None
    assert channels[0].seen[0].last_committed_offset_token == "00000000000000000001"
    assert channels[2].seen == [None]


async def test_interval_backs_off_while_commits_stall_and_resets_on_progress() -> None:
    """No progress with rows in flight: 0.1 → 0.15 → 0.225 … capped; progress resets it."""
    tracker = CommitTracker(
        _client([]),
        "DB",
        "S",
        "T-STREAMING",
        clock=ManualClock(),
        metrics=Metrics(),
        min_interval_s=0.1,
        max_interval_s=0.3,
    )
    channel = _Channel("a")
    channel.progress = False
    tracker.register(channel)
    intervals = []
    for _ in range(4):
        await tracker.poll_once()
        intervals.append(round(tracker.interval_s, 4))
    assert intervals == [0.15, 0.225, 0.3, 0.3]
    channel.progress = True
    await tracker.poll_once()
    assert tracker.interval_s == 0.1
