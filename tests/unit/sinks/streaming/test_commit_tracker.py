"""The per-pipe commit tracker on a manual clock: one status call per pipe, polls that follow the appends."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import orjson
import pytest

from streamd.metrics import Metrics
from streamd.rows import format_offset, parse_offset
from streamd.sinks.streaming.commit_tracker import CommitTracker
from streamd.snowflake.streaming import ChannelStatus, StreamingClient
from streamd.testing import ManualClock


class _Channel:
    """A writer as the tracker sees it: offsets in flight, the committed mark from statuses."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.committed: int | None = None
        self.inflight: list[int] = []
        self.seen: list[ChannelStatus | None] = []

    @property
    def has_inflight(self) -> bool:
        return bool(self.inflight)

    def on_status(self, status: ChannelStatus | None) -> int | None:
        self.seen.append(status)
        mark = None if status is None else parse_offset(status.last_committed_offset_token)
        if mark is not None and (self.committed is None or mark > self.committed):
            self.committed = mark
            self.inflight = [o for o in self.inflight if o > mark]
        return self.committed

    def follow(self, tracker: CommitTracker) -> None:
        """Subscribe to `tracker`'s reports, as a channel writer does when it runs."""
        tracker.follow(self.name, "DB.S.T", self.on_status)


class _Auth:
    async def ingest_url(self) -> str:
        return "http://ingest"

    async def scoped_token(self) -> str:
        return "tok"

    def invalidate_scoped_token(self, stale: str | None = None) -> None:
        return None

    def reset(self) -> None:
        return None


class _Server:
    """What the fake status endpoint reports: a committed offset and an average latency."""

    def __init__(self, committed: int | None = 1, latency_ms: int | None = None) -> None:
        self.committed = committed
        self.latency_ms = latency_ms
        self.requests: list[dict[str, Any]] = []
        self.at: list[float] = []


def _client(server: _Server, clock: ManualClock | None = None) -> StreamingClient:
    def handler(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        server.requests.append(body)
        if clock is not None:
            server.at.append(clock.monotonic())
        statuses = {
            name: {
                "channel_status_code": "SUCCESS",
                "last_committed_offset_token": None
                if server.committed is None
                else format_offset(server.committed),
                "database_name": "DB",
                "schema_name": "S",
                "pipe_name": "T-STREAMING",
                "channel_name": name,
                "rows_inserted": 2,
                "rows_parsed": 2,
                "rows_error_count": 0,
                "created_on_ms": 0,
                "snowflake_avg_processing_latency_ms": server.latency_ms,
            }
            for name in body["channel_names"]
            if name != "gone"
        }
        return httpx.Response(200, json={"channel_statuses": statuses})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return StreamingClient(http, _Auth(), user_agent="t")  # type: ignore[arg-type]


def _tracker(
    server: _Server, clock: ManualClock, min_interval_s: float = 0.025, max_interval_s: float = 2.0
) -> CommitTracker:
    return CommitTracker(
        _client(server, clock),
        "DB",
        "S",
        "T-STREAMING",
        clock=clock,
        metrics=Metrics(),
        min_interval_s=min_interval_s,
        max_interval_s=max_interval_s,
    )


async def test_one_status_call_covers_every_channel_of_the_pipe() -> None:
    """Three channels, one Bulk Channel Status request; a missing channel is reported as None."""
    server = _Server()
    tracker = _tracker(server, ManualClock())
    channels = [_Channel("a"), _Channel("b"), _Channel("gone")]
    for channel in channels:
        channel.follow(tracker)
    assert await tracker.poll_once() is True
    assert server.requests == [{"channel_names": ["a", "b", "gone"]}]
    assert channels[0].seen[0] is not None
    assert channels[0].seen[0].last_committed_offset_token == format_offset(1)
    assert channels[2].seen == [None]


async def test_first_look_early_then_every_resolution_then_a_fifth_of_the_delay() -> None:
    """Looked for at 3/4 of Snowflake's latency after the ack (187.5 ms of 250), then every 25 ms
    (a tenth of it) while it is up to eight latencies late, then after a fifth of the delay beyond
    that, capped; the commit empties the schedule."""
    clock = ManualClock()
    server = _Server(committed=None, latency_ms=250)
    tracker = _tracker(server, clock, min_interval_s=0.01, max_interval_s=0.125)
    channel = _Channel("a")
    channel.follow(tracker)
    await tracker.poll_once()  # learns the latency
    clock.advance(1.0)
    channel.inflight.append(10)
    tracker.appended(channel.name, 10)
    assert tracker.next_poll_at() == pytest.approx(1.125)  # capped by max_interval_s
    clock.advance(0.125)
    await tracker.poll_once()
    assert tracker.next_poll_at() == pytest.approx(1.1875)  # not due yet: look when it is
    waits = []
    for _ in range(110):
        clock.advance(tracker.next_poll_at() - clock.monotonic())  # type: ignore[operator]
        since = clock.monotonic() - 1.1875
        await tracker.poll_once()
        waits.append(tracker.next_poll_at() - clock.monotonic())  # type: ignore[operator]
        assert waits[-1] == pytest.approx(min(0.125, max(0.025, 0.2 * (since - 2.0))))
    assert waits[:86] == pytest.approx([0.025] * 86)
    assert waits[86] > 0.026
    assert waits[-1] == pytest.approx(0.125)
    server.committed = 10
    await tracker.poll_once()
    assert tracker.next_poll_at() is None
    assert not channel.has_inflight


async def test_the_lowest_recent_latency_is_aimed_at() -> None:
    """Slow reports do not push the first look out; the low one is forgotten after ten seconds."""
    clock = ManualClock()
    server = _Server(committed=None, latency_ms=200)
    tracker = _tracker(server, clock)
    channel = _Channel("a")
    channel.follow(tracker)
    await tracker.poll_once()
    server.latency_ms = 2000
    for _ in range(50):
        clock.advance(0.1)
        await tracker.poll_once()  # 50 polls in 5 s: still within the window
    channel.inflight.append(3)
    tracker.appended(channel.name, 3)
    assert tracker.next_poll_at() == pytest.approx(5.0 + 0.15)
    clock.advance(5.1)
    await tracker.poll_once()  # the 200 ms report is now 10.1 s old
    tracker.appended(channel.name, 3)
    assert tracker.next_poll_at() == pytest.approx(10.1 + 1.5)


async def test_polls_never_closer_than_the_resolution() -> None:
    """Two channels expected 5 ms apart share one poll 25 ms after the last."""
    clock = ManualClock()
    server = _Server(committed=None)
    tracker = _tracker(server, clock)
    a, b = _Channel("a"), _Channel("b")
    a.follow(tracker)
    b.follow(tracker)
    await tracker.poll_once()
    for channel, offset in ((a, 1), (b, 2)):
        channel.inflight.append(offset)
        tracker.appended(channel.name, offset)  # no latency reported: expected at once
        clock.advance(0.005)
    assert tracker.next_poll_at() == pytest.approx(0.025)


async def test_a_replayed_batch_is_expected_anew() -> None:
    """After a reopen the same offsets are appended again: their wait starts over."""
    clock = ManualClock()
    server = _Server(committed=None, latency_ms=200)
    tracker = _tracker(server, clock)
    channel = _Channel("a")
    channel.follow(tracker)
    await tracker.poll_once()
    channel.inflight.append(5)
    tracker.appended(channel.name, 5)
    clock.advance(1.0)
    tracker.appended(channel.name, 5)
    assert tracker.next_poll_at() == pytest.approx(1.15)
    assert "waiting=1" in repr(tracker)


async def test_run_polls_at_the_expected_commit_and_sleeps_when_idle() -> None:
    """The loop sleeps until a batch is due (150 ms: 3/4 of 200), polls once it is, and idles once
    all is committed."""
    clock = ManualClock()
    server = _Server(committed=None, latency_ms=200)
    tracker = _tracker(server, clock)
    channel = _Channel("a")
    channel.follow(tracker)
    await tracker.poll_once()
    async with anyio.create_task_group() as tg:
        tg.start_soon(tracker.run)
        await anyio.wait_all_tasks_blocked()
        channel.inflight.append(7)
        tracker.appended(channel.name, 7)
        server.committed = 7
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.1)
        await anyio.wait_all_tasks_blocked()
        assert len(server.requests) == 1  # not due yet
        clock.advance(0.05)
        for _ in range(5):
            await anyio.wait_all_tasks_blocked()
        assert server.at[1:] == [pytest.approx(0.15)]
        assert channel.committed == 7
        assert tracker.next_poll_at() is None
        tg.cancel_scope.cancel()
