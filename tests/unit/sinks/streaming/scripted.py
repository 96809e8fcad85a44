"""A scripted Snowpipe Streaming channel and batch source, for the channel writer's unit tests.

The channel keeps Snowflake's contract (an append is received, not committed; a reopen discards
what is uncommitted) and answers each call from a script; the batch source records replays,
rereads and releases; `Harness` runs a writer over both with its tracker polled by hand and every
wait on a manual clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import orjson

from streamd.errors import DeliveryError, ReopenChannel
from streamd.metrics import Metrics
from streamd.rows import Batch, ChannelKey, format_offset, parse_offset
from streamd.sinks.streaming.channel_writer import ChannelWriter
from streamd.sinks.streaming.commit_tracker import CommitTracker
from streamd.snowflake.codes import error_for
from streamd.snowflake.streaming import ChannelStatus, OpenResult
from streamd.testing import ManualClock

KEY = ChannelKey("DB", "S", "T-STREAMING", "plant_T")
TABLE = "DB.S.T"


def wire_error(
    status: int, code: str | None = None, retry_after: str | None = None
) -> DeliveryError:
    """The exception the streaming client raises for this answer (through the codes table)."""
    body = orjson.dumps({"code": code, "message": "scripted"}) if code else b""
    headers = {"Retry-After": retry_after} if retry_after else {}
    return error_for(status, body, headers, what=f"append to {KEY}")


def reset_error() -> ReopenChannel:
    """What a connection reset during an append becomes (its outcome is unknown)."""
    return ReopenChannel(f"append to {KEY} outcome unknown (ReadError); reopen and replay")


@dataclass
class Fault:
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
        self._faults: dict[str, list[Fault]] = {"open": [], "append": []}

    def fail(self, call: str, fault: Fault) -> None:
        """A later `call` ("open" or "append") fails as `fault` says."""
        self._faults[call].append(fault)

    def _fault(self, call: str, first: int | None = None) -> Fault | None:
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


def leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def settle() -> None:
    """Let every task run until all of them wait (on the channel, the clock or each other)."""
    for _ in range(3):
        await anyio.wait_all_tasks_blocked()
