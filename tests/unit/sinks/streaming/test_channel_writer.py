"""The channel writer against a scripted Snowpipe Streaming channel, one failure mode per test.

No HTTP and no real time: the fake channel answers from a script and keeps Snowflake's contract
(an append is received, not committed; a reopen discards what is uncommitted), the commit
tracker is polled by hand, and every wait is on a manual clock. Each test checks the requests the
channel saw (appends as offset ranges, opens), where replays started, what was released, and that
every row landed exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import orjson
import pytest

from streamd.errors import ChannelFenced, DeliveryError, ReopenChannel
from streamd.metrics import Metrics
from streamd.rows import Batch, ChannelKey, format_offset, parse_offset
from streamd.sinks.streaming.channel_writer import ChannelWriter
from streamd.sinks.streaming.commit_tracker import CommitTracker
from streamd.snowflake.codes import error_for
from streamd.snowflake.streaming import ChannelStatus, OpenResult
from streamd.testing import ManualClock

KEY = ChannelKey("DB", "S", "T-STREAMING", "plant_T")
TABLE = "DB.S.T"


def _wire(status: int, code: str | None = None, retry_after: str | None = None) -> DeliveryError:
    """The exception the streaming client raises for this answer (through the codes table)."""
    body = orjson.dumps({"code": code, "message": "scripted"}) if code else b""
    headers = {"Retry-After": retry_after} if retry_after else {}
    return error_for(status, body, headers, what=f"append to {KEY}")


def _reset() -> ReopenChannel:
    """What a connection reset during an append becomes (its outcome is unknown)."""
    return ReopenChannel(f"append to {KEY} outcome unknown (ReadError); reopen and replay")


@dataclass
class _Fault:
    label: str
    error: DeliveryError
    at: int | None = None
    """Only the append of the batch starting at this offset fails, or the open with this
    number (1: the first); None: the next call."""
    applied: bool = False
    """The server took the rows before the client lost the answer."""
    commits: bool = False
    """…and committed them before the client reopened."""


class FakeChannel:
    """One channel of Snowpipe Streaming, scripted per call; logs every request it answers."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.committed: int | None = None
        self.uncommitted: list[tuple[int, int, bytes]] = []
        self.landed: list[int] = []
        """Every committed row's offset, in commit order (a duplicate would show twice)."""
        self.generation = 0
        self.opens = 0
        self.status_code = "SUCCESS"
        self._faults: dict[str, list[_Fault]] = {"open": [], "append": []}

    def fail(self, call: str, fault: _Fault) -> None:
        """A later `call` ("open" or "append") fails as `fault` says."""
        self._faults[call].append(fault)

    def _fault(self, call: str, first: int | None = None) -> _Fault | None:
        for i, fault in enumerate(self._faults[call]):
            if fault.at is None or fault.at == first:
                return self._faults[call].pop(i)
        return None

    def status(self) -> ChannelStatus:
        return ChannelStatus(
            channel_name=KEY.channel,
            status_code=self.status_code,
            last_committed_offset_token=None
            if self.committed is None
            else format_offset(self.committed),
            rows_inserted=len(self.landed),
            rows_parsed=len(self.landed),
            rows_error_count=0,
            last_error_offset_upper_bound=None,
            last_error_message=None,
            last_error_timestamp=None,
            created_on_ms=0,
            avg_processing_latency_ms=None,
        )

    def commit(self, upto: int | None = None) -> None:
        """Snowflake commits what it received, in order (up to `upto` when given)."""
        while self.uncommitted and (upto is None or self.uncommitted[0][1] <= upto):
            first, last, body = self.uncommitted.pop(0)
            assert body.count(b"\n") == last - first + 1
            self.landed.extend(range(first, last + 1))
            self.committed = last

    async def open_channel(self, key: ChannelKey) -> OpenResult:
        await anyio.lowlevel.checkpoint()
        self.opens += 1
        fault = self._fault("open", self.opens)
        if fault is not None:
            self.log.append(f"open {fault.label}")
            raise fault.error
        self.generation += 1
        self.uncommitted.clear()  # a reopen discards what is not committed
        self.status_code = "SUCCESS"
        self.log.append("open")
        return OpenResult(f"t{self.generation}", self.status())

    async def append_rows(
        self,
        key: ChannelKey,
        continuation_token: str,
        body: bytes,
        *,
        start_offset_token: str,
        end_offset_token: str,
    ) -> str:
        await anyio.lowlevel.checkpoint()
        first, last = parse_offset(start_offset_token), parse_offset(end_offset_token)
        assert first is not None
        assert last is not None
        assert continuation_token == f"t{self.generation}"  # scripted staleness only
        request = f"append {first}-{last}"
        fault = self._fault("append", first)
        if fault is not None:
            self.log.append(f"{request} {fault.label}")
            if fault.applied:
                self.uncommitted.append((first, last, body))
            if fault.commits:
                self.commit()
            raise fault.error
        self.uncommitted.append((first, last, body))
        self.log.append(request)
        return continuation_token

    async def bulk_channel_status(
        self, database: str, schema: str, pipe: str, channel_names: Sequence[str]
    ) -> dict[str, ChannelStatus]:
        await anyio.lowlevel.checkpoint()
        return {name: self.status() for name in channel_names if name == KEY.channel}


class FakeBatches:
    """A lane's batches; records where replays started, rereads and releases."""

    may_drop_unreleased = False

    def __init__(self, ranges: Sequence[tuple[int, int]]) -> None:
        self._all = [
            Batch(TABLE, b"".join(b'{"i":%d}\n' % i for i in range(a, b + 1)), b - a + 1, a, b)
            for a, b in ranges
        ]
        self._next = 0
        self.committed = 0
        self.replays: list[int] = []
        self.rereads: list[tuple[int, int]] = []
        self.released: list[int] = []

    def stats(self) -> dict[str, int]:
        return {"committed": self.committed}

    def replay_from(self, offset: int) -> None:
        self.replays.append(offset)
        self._next = next(
            (i for i, b in enumerate(self._all) if b.last_offset >= offset), len(self._all)
        )

    async def next_batch(self) -> Batch | None:
        await anyio.lowlevel.checkpoint()
        if self._next == len(self._all):
            return None
        self._next += 1
        return self._all[self._next - 1]

    async def reread(self, first: int, last: int) -> list[Batch]:
        self.rereads.append((first, last))
        return [b for b in self._all if b.first_offset == first and b.last_offset == last]

    async def release(self, upto: int) -> None:
        if upto > self.committed:
            self.committed = upto
            self.released.append(upto)


class Harness:
    """A writer over `FakeBatches` and a `FakeChannel`, its tracker polled by hand."""

    def __init__(self, ranges: Sequence[tuple[int, int]], window: int = 4) -> None:
        self.clock = ManualClock()
        self.channel = FakeChannel()
        self.batches = FakeBatches(ranges)
        self.metrics = Metrics()
        self.tracker = CommitTracker(
            self.channel,
            "DB",
            "S",
            KEY.pipe,
            clock=self.clock,
            metrics=self.metrics,
            min_interval_s=0.025,
        )
        self.window = window
        self.writer = self.new_writer()
        self.done = False

    def new_writer(self) -> ChannelWriter:
        """A writer as a restarted daemon would make it."""
        return ChannelWriter(
            self.channel,
            KEY,
            TABLE,
            self.batches,
            clock=self.clock,
            metrics=self.metrics,
            tracker=self.tracker,
            max_inflight_batches=self.window,
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[anyio.CancelScope]:
        """Open the writer and run it; cancelling the scope stops it as a timed-out drain does.

        A writer still running when the block ends is cancelled, so a test fails on `done`
        instead of hanging.
        """
        self.done = False
        await self.writer.open()
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                await self.writer.run()
                self.done = True

            tg.start_soon(run)
            await settle()
            yield tg.cancel_scope
            await settle()
            tg.cancel_scope.cancel()

    async def commit_and_poll(self, upto: int | None = None) -> None:
        """Snowflake commits (up to `upto`); the tracker's next poll reports it."""
        self.channel.commit(upto)
        await self.tracker.poll_once()
        await settle()

    async def advance(self, seconds: float) -> None:
        """Move the manual clock and let whatever woke run."""
        self.clock.advance(seconds)
        await settle()


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


async def settle() -> None:
    """Let every task run until all of them wait (on the channel, the clock or each other)."""
    for _ in range(3):
        await anyio.wait_all_tasks_blocked()


async def test_appends_in_order_and_releases_exactly_what_each_commit_covers() -> None:
    """Batches go out in offset order within the window; a commit releases up to its offset."""
    h = Harness([(1, 3), (4, 6), (7, 9)], window=2)
    async with h.running():
        assert h.channel.log == ["open", "append 1-3", "append 4-6"]  # the window is full
        assert h.batches.replays == [1]
        await h.commit_and_poll(upto=3)
        assert h.batches.released == [3]
        assert h.channel.log[-1] == "append 7-9"
        assert h.writer.snapshot()["inflight_rows"] == 6
        assert not h.done
        await h.commit_and_poll()
    assert h.done
    assert h.batches.released == [3, 9]
    assert h.channel.landed == list(range(1, 10))
    assert h.batches.rereads == []


async def test_429_waits_what_retry_after_asks_then_sends_the_same_range() -> None:
    """A 429 with Retry-After: 2 waits two seconds on the clock, then the same batch, no reopen."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", _Fault("429", _wire(429, retry_after="2"), at=1))
    async with h.running():
        assert h.channel.log == ["open", "append 1-3 429"]
        await h.advance(1.5)
        assert h.channel.log == ["open", "append 1-3 429"]
        await h.advance(0.5)
        assert h.channel.log == ["open", "append 1-3 429", "append 1-3", "append 4-6"]
        await h.commit_and_poll()
    assert h.done
    assert h.batches.replays == [1]
    assert h.batches.released == [6]
    assert h.channel.landed == list(range(1, 7))
    assert "429" in (h.writer.last_error or "")


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_backs_off_and_sends_the_same_range(status: int) -> None:
    """A 5xx is retried after a backoff with the same token and offsets; nothing is reopened."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", _Fault(str(status), _wire(status), at=4))
    async with h.running():
        assert h.channel.log == ["open", "append 1-3", f"append 4-6 {status}"]
        await h.advance(30)  # the backoff is jittered, never above 30 s
        assert h.channel.log == ["open", "append 1-3", f"append 4-6 {status}", "append 4-6"]
        await h.commit_and_poll()
    assert h.done
    assert h.batches.released == [6]
    assert h.channel.landed == list(range(1, 7))


async def test_reset_before_the_server_applied_it_reopens_and_replays_from_committed() -> None:
    """The outcome is unknown, so the token is never reused: reopen, then replay every batch
    past the committed offset, rereading the bodies the writer let go."""
    h = Harness([(1, 3), (4, 6), (7, 9)], window=2)
    h.channel.fail("append", _Fault("reset", _reset(), at=7))
    async with h.running():
        await h.commit_and_poll(upto=3)
        assert h.channel.log == [
            "open",
            "append 1-3",
            "append 4-6",
            "append 7-9 reset",
            "open",
            "append 4-6",
            "append 7-9",
        ]
        assert h.batches.rereads == [(4, 6)]  # 7-9 still had its body
        await h.commit_and_poll()
    assert h.done
    assert h.batches.released == [3, 9]
    assert h.channel.landed == list(range(1, 10))


async def test_reset_after_the_server_applied_it_replays_what_the_reopen_discarded() -> None:
    """The server took 4-6 but the answer was lost: the reopen discards it (uncommitted), the
    replay sends it again, and it lands once."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", _Fault("reset", _reset(), at=4, applied=True))
    async with h.running():
        assert h.channel.log == [
            "open",
            "append 1-3",
            "append 4-6 reset",
            "open",
            "append 1-3",
            "append 4-6",
        ]
        assert h.batches.rereads == [(1, 3)]
        await h.commit_and_poll()
    assert h.done
    assert h.batches.released == [6]
    assert h.channel.landed == list(range(1, 7))


async def test_reset_after_the_server_committed_it_replays_nothing() -> None:
    """The rows were committed before the reopen: its status covers them, so none is resent."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", _Fault("reset", _reset(), at=4, applied=True, commits=True))
    async with h.running():
        pass
    assert h.done
    assert h.channel.log == ["open", "append 1-3", "append 4-6 reset", "open"]
    assert h.batches.rereads == []
    assert h.batches.released == [6]
    assert h.channel.landed == list(range(1, 7))


MUST_REOPEN = {
    "409": _wire(409),
    "409 ERR_CHANNEL_MUST_BE_REOPENED": _wire(409, "ERR_CHANNEL_MUST_BE_REOPENED"),
    "410 failover": _wire(410),
    "400 row sequencer": _wire(400, "ERR_CHANNEL_HAS_INVALID_ROW_SEQUENCER"),
    "400 STALE_PIPE_CACHE": _wire(400, "STALE_PIPE_CACHE"),
}


@pytest.mark.parametrize("error", MUST_REOPEN.values(), ids=MUST_REOPEN.keys())
async def test_a_must_reopen_answer_reopens_and_replays_from_committed(
    error: DeliveryError,
) -> None:
    """Every must-reopen answer: one reopen, then everything past the committed offset again."""
    assert type(error) is ReopenChannel
    h = Harness([(1, 3), (4, 6), (7, 9)], window=2)
    h.channel.fail("append", _Fault("refused", error, at=7))
    async with h.running():
        await h.commit_and_poll(upto=3)
        await h.commit_and_poll()
    assert h.done
    assert h.channel.log == [
        "open",
        "append 1-3",
        "append 4-6",
        "append 7-9 refused",
        "open",
        "append 4-6",
        "append 7-9",
    ]
    assert h.batches.released == [3, 9]
    assert h.channel.landed == list(range(1, 10))


async def test_a_reopen_refused_is_tried_again_until_it_sticks() -> None:
    """A 409 on the reopen itself (the server still settles): open again, then replay."""
    h = Harness([(1, 3)])
    h.channel.fail("append", _Fault("reset", _reset(), at=1))
    h.channel.fail("open", _Fault("409", _wire(409), at=2))
    async with h.running():
        await h.commit_and_poll()
    assert h.done
    assert h.channel.log == ["open", "append 1-3 reset", "open 409", "open", "append 1-3"]
    assert h.channel.landed == [1, 2, 3]


async def test_an_invalid_channel_in_a_status_read_is_reopened_and_replayed() -> None:
    """A status poll that finds the channel invalid makes the writer reopen and replay."""
    h = Harness([(1, 3), (4, 6)])
    async with h.running():
        h.channel.status_code = "ERR_CHANNEL_INVALID"
        await h.tracker.poll_once()
        await settle()
        assert h.channel.log == [
            "open",
            "append 1-3",
            "append 4-6",
            "open",
            "append 1-3",
            "append 4-6",
        ]
        assert h.batches.rereads == [(1, 3), (4, 6)]
        await h.commit_and_poll()
    assert h.done
    assert h.channel.landed == list(range(1, 7))


@pytest.mark.parametrize(
    "code", ["STALE_CONTINUATION_TOKEN_SEQUENCER", "ERR_CHANNEL_HAS_INVALID_CLIENT_SEQUENCER"]
)
async def test_a_stale_continuation_token_means_fenced_and_the_writer_stops(code: str) -> None:
    """Our appends never race our reopens, so a moved sequencer is another opener: no reopen,
    no replay, nothing released, and the error names the fix."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", _Fault("stale", _wire(400, code), at=4))
    with pytest.RaisesGroup(ChannelFenced, flatten_subgroups=True) as raised:
        async with h.running():
            pass
    [fenced] = _leaves(raised.value)
    assert "channel_prefix" in str(fenced)
    assert h.channel.log == ["open", "append 1-3", "append 4-6 stale"]
    assert h.batches.released == []
    assert not h.writer.is_open


async def test_a_commit_that_never_comes_holds_everything_until_the_drain_times_out() -> None:
    """Without a commit nothing is released however long it waits; after the timed-out drain a
    restarted writer replays from the committed offset, and every row lands once."""
    h = Harness([(1, 3), (4, 6), (7, 9)])
    async with h.running() as drain:
        for _ in range(20):
            await h.advance(3)
            await h.tracker.poll_once()
            await settle()
        assert not h.done
        assert h.batches.released == []
        assert h.writer.snapshot()["inflight_batches"] == 3
        assert h.writer.commit_lag_s() == 60.0
        drain.cancel()
    assert not h.done
    assert h.channel.log == ["open", "append 1-3", "append 4-6", "append 7-9"]

    h.writer = h.new_writer()
    async with h.running():
        await h.commit_and_poll()
    assert h.done
    assert h.batches.replays == [1, 1]
    assert h.channel.log[4:] == ["open", "append 1-3", "append 4-6", "append 7-9"]
    assert h.batches.released == [9]
    assert h.channel.landed == list(range(1, 10))
