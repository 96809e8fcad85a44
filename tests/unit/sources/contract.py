"""The contract every source honours, written once and run over every source kind.

A `Harness` wraps one source kind: it builds a fresh source for each run (sharing whatever
durable state a restart would find: sequences, read positions, a broker session), feeds it input,
and names its rows. The checks below take a harness; `ContractSuite` holds the tests that run
them. `test_contract.py` subclasses it over manufacturing, retail, http_push and ndjson, and
`tests/integration/sources/test_contract_mqtt.py` over mqtt against a real broker. Every check
drives the source through a small bounded stream (`CAPACITY`) the way the daemon does.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from streamd.rows import Envelope, Row
from streamd.sources.base import SourceContext
from tests.helpers import eventually

CAPACITY = 4
"""Slots of the source stream in these checks: small, so every source meets a full stream."""


class Harness(Protocol):
    """One source kind under the contract."""

    kind: str
    """The TOML `kind`, equal to the module name under `streamd.sources`."""
    redelivers: bool
    """Input not acknowledged before a stop comes again after a restart (files, a broker
    session, push clients resending); generators make new rows with new ids instead."""
    ordered: bool
    """Rows arrive in input order (one file, one topic); concurrent push requests have none."""

    def context(self, send: MemoryObjectSendStream[Envelope]) -> SourceContext:
        """The context of one run (a fresh clock if the harness drives time)."""
        ...

    async def serve(self, ctx: SourceContext, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Run a fresh source until cancelled; reports started once it takes input."""
        ...

    async def feed(self, n: int) -> None:
        """Make at least `n` more rows of input available; does not wait for the source."""
        ...

    async def while_full(self) -> None:
        """What new input meets while the stream is full (http_push: an immediate 429)."""
        ...

    async def before_stop(self) -> None:
        """Let acknowledgements reach the outside before the source is cancelled."""
        ...

    async def after_stop(self) -> None:
        """Collect what clients were told when the source stopped."""
        ...

    async def resend(self) -> None:
        """Send again what the outside was told was not stored (push clients do this)."""
        ...

    async def settle(self) -> None:
        """Wait until every client has its answer; fail if an acknowledged row was refused."""
        ...

    def row_id(self, row: Row) -> str:
        """The id a row carries (EVENT_ID for generators, `id` for fed input)."""
        ...


HarnessFactory = Callable[[Path], AbstractAsyncContextManager[Harness]]
"""Opens a harness whose durable state lives under the given directory."""


@dataclass
class Run:
    """One run of a source: its stream, the scope that stops it, and an event once it returned."""

    send: MemoryObjectSendStream[Envelope]
    receive: MemoryObjectReceiveStream[Envelope]
    tg: anyio.abc.TaskGroup
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    finished: anyio.Event = field(default_factory=anyio.Event)
    seq: int = 0

    def full_and_waiting(self) -> bool:
        """The stream is full and the source is blocked sending the next row."""
        stats = self.send.statistics()
        return stats.current_buffer_used == CAPACITY and stats.tasks_waiting_send >= 1

    async def take(self, n: int, *, ack: bool) -> list[Envelope]:
        """The next `n` envelopes (acked with the next sequence numbers when `ack`)."""
        out = []
        with anyio.fail_after(30):
            for _ in range(n):
                envelope = await self.receive.receive()
                if ack:
                    self.ack(envelope)
                out.append(envelope)
        return out

    def ack(self, envelope: Envelope) -> None:
        """Acknowledge like the spool does: with the row's sequence number."""
        self.seq += 1
        if envelope.ack is not None:
            envelope.ack(self.seq)

    async def drain_acking(self) -> None:
        """Play the router during shutdown: take and acknowledge rows until the source is gone."""
        async for envelope in self.receive:
            self.ack(envelope)


@asynccontextmanager
async def one_run(h: Harness) -> AsyncIterator[Run]:
    """Run a fresh source of `h` into a `CAPACITY` stream; cancel it when the block ends."""
    send, receive = anyio.create_memory_object_stream[Envelope](CAPACITY)
    ctx = h.context(send)
    with send, receive:
        async with anyio.create_task_group() as tg:
            run = Run(send, receive, tg)

            async def serve(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                try:
                    with run.scope:
                        await h.serve(ctx, task_status=task_status)
                finally:
                    run.finished.set()

            await tg.start(serve)
            yield run
            run.scope.cancel()
            with anyio.fail_after(30):
                await run.finished.wait()


# ---- the checks --------------------------------------------------------------------------------


async def check_backpressure(h: Harness) -> None:
    """A full stream makes the source wait in `send`; once drained, every fed row arrives once."""
    n = 5 * CAPACITY
    async with one_run(h) as run:
        await h.feed(n)
        await eventually(run.full_and_waiting)
        await h.while_full()
        # Still exactly full, one sender parked: nothing went around the stream meanwhile.
        assert run.full_and_waiting()
        envelopes = await run.take(n, ack=True)
        ids = [h.row_id(e.row) for e in envelopes]
        assert len(set(ids)) == n, f"a row arrived twice: {ids}"
        await h.settle()


async def check_stops_on_cancellation(h: Harness, *, blocked: bool) -> None:
    """Cancelled while idle or while blocked on a full stream, the source returns promptly."""
    async with one_run(h) as run:
        if blocked:
            await h.feed(5 * CAPACITY)
            await eventually(run.full_and_waiting)
        run.scope.cancel()
        # The daemon's router keeps taking (and spooling) rows until every source is gone.
        run.tg.start_soon(run.drain_acking)
        with anyio.fail_after(10):
            await run.finished.wait()
        run.tg.cancel_scope.cancel()
    await h.after_stop()


async def check_resumes(h: Harness) -> None:
    """A restart repeats no acknowledged row; redelivering kinds skip none either."""
    async with one_run(h) as first:
        await h.feed(2 * CAPACITY)
        acked = await first.take(CAPACITY, ack=True)
        held = await first.take(CAPACITY, ack=False) if h.redelivers else []
        await h.before_stop()
    await h.after_stop()
    async with one_run(h) as second:
        await h.resend()
        await h.feed(CAPACITY)
        again = await second.take(len(held) + CAPACITY, ack=True)
        await h.settle()
    before = [h.row_id(e.row) for e in acked]
    after = [h.row_id(e.row) for e in again]
    assert not set(before) & set(after), f"acknowledged rows came again: {set(before) & set(after)}"
    if h.redelivers:
        # The held (never acknowledged) rows come again (first, where input has an order).
        held_ids = [h.row_id(e.row) for e in held]
        assert len(set(after)) == len(after), f"a row came twice after the restart: {after}"
        assert set(held_ids) <= set(after), f"rows never acknowledged were lost: {held_ids}"
        if h.ordered:
            assert after[: len(held)] == held_ids
    else:
        # New ids continue above the old ones (durable sequence blocks), per producer.
        def seqs(envs: list[Envelope]) -> dict[str, list[int]]:
            out: dict[str, list[int]] = {}
            for e in envs:
                producer, _, number = h.row_id(e.row).rpartition(":")
                out.setdefault(producer, []).append(int(number))
            return out

        old, new = seqs(acked), seqs(again)
        for producer, numbers in new.items():
            assert min(numbers) > max(old.get(producer, [-1])), (producer, old, new)


class ContractSuite:
    """The contract's tests, once: a test module subclasses this as `Test...` and provides a
    `harness` fixture (a `HarnessFactory`, parametrised over kinds or not)."""

    async def test_pushes_into_the_bounded_stream_and_waits_when_full(
        self, harness: HarnessFactory, tmp_path: Path
    ) -> None:
        async with harness(tmp_path) as h:
            await check_backpressure(h)

    @pytest.mark.parametrize("blocked", [False, True], ids=["idle", "blocked"])
    async def test_stops_promptly_on_cancellation(
        self, harness: HarnessFactory, tmp_path: Path, blocked: bool
    ) -> None:
        async with harness(tmp_path) as h:
            await check_stops_on_cancellation(h, blocked=blocked)

    async def test_resumes_without_repeating_acknowledged_rows(
        self, harness: HarnessFactory, tmp_path: Path
    ) -> None:
        async with harness(tmp_path) as h:
            await check_resumes(h)


def imported_modules(module: str) -> set[str]:
    """streamd modules a fresh interpreter holds after importing `module`."""
    code = (
        f"import sys, {module}\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('streamd')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def check_imports_no_delivery_code(module: str) -> None:
    """Importing a source module pulls in neither Snowflake wire code nor the sinks."""
    loaded = imported_modules(module)
    assert module in loaded
    leaked = sorted(
        m for m in loaded if m.startswith(("streamd.snowflake", "streamd.sinks", "streamd.standin"))
    )
    assert leaked == [], f"{module} imports {leaked}"
