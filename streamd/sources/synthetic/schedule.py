"""Synthetic producers on precise schedules: one task per producer, durable ids, seeded RNGs.

Shared by every synthetic source (manufacturing, retail): a source describes its producers as a
`Plan`, and `run_plan` runs them until cancelled.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Generic, NamedTuple, Protocol, TypeVar

import anyio

from streamd.rows import Envelope, Row
from streamd.sources.base import SequenceAllocator, SourceContext
from streamd.sources.synthetic.rng import SmallRng


class RowModel(Protocol):
    """Builds one producer's rows."""

    def row(self, event_id: str, at: datetime, sequence: int) -> Row:
        """The row with this id, event time (an aware UTC datetime) and sequence number."""
        ...


class Producer(NamedTuple):
    """One producer of a plan: its name (keys ids and the RNG), table, interval, model and RNG."""

    name: str
    table: str
    interval_s: float
    model: RowModel
    rng: SmallRng


def producer_rng(seed: int, producer: str) -> SmallRng:
    """The RNG of one producer; sha256 rather than hash(), which is salted per process."""
    digest = hashlib.sha256(f"{seed}:{producer}".encode()).digest()
    return SmallRng(int.from_bytes(digest[:8], "big"))


class ProducerSequences:
    """One producer's sequence numbers; reserves a new durable block when one runs out."""

    __slots__ = ("_allocator", "_block", "_producer")

    def __init__(self, allocator: SequenceAllocator, producer: str) -> None:
        self._allocator = allocator
        self._producer = producer
        self._block = iter(range(0))

    async def take(self) -> int:
        """The next unused sequence number."""
        sequence = next(self._block, None)
        if sequence is None:
            self._block = iter(await self._allocator.reserve(self._producer))
            sequence = next(self._block, None)
            if sequence is None:
                raise RuntimeError(f"sequence allocator gave an empty block to {self._producer}")
        return sequence


class SyntheticConfig(Protocol):
    """What every synthetic source's config carries."""

    @property
    def name(self) -> str:
        """The source's name."""
        ...

    @property
    def jitter(self) -> float:
        """Random spread of each interval, as a fraction of it."""
        ...


C = TypeVar("C", bound=SyntheticConfig)


class SyntheticSource(ABC, Generic[C]):
    """A synthetic `Source`: a plan of producers, each run on its own schedule.

    `run` never finishes on its own: it is an infinite source and returns only when cancelled (or,
    as a clean stop, when the receiving end of `ctx.send` has been closed and nobody can take rows).
    """

    def __init__(self, config: C) -> None:
        self.config = config
        self.name = config.name

    @abstractmethod
    def plan(self) -> list[Producer]:
        """Every producer of this source (deterministic for a given config)."""

    def producers(self) -> list[str]:
        """Names of all producers (they key the sequences)."""
        return [producer.name for producer in self.plan()]

    async def run(self, ctx: SourceContext) -> None:
        """Produce forever; returns only by cancellation (or when the receiving end is closed)."""
        await run_plan(ctx, self.plan(), self.config.jitter, self.name)


async def run_plan(ctx: SourceContext, plan: list[Producer], jitter: float, source: str) -> None:
    """Run every producer until cancelled (or until the receiving end of `ctx.send` is closed).

    Calls `ctx.started()` once every producer's task exists: they live as long as the source.
    """
    async with anyio.create_task_group() as tg:
        for producer in plan:
            tg.start_soon(
                _produce, ctx, tg.cancel_scope, producer, jitter, name=f"{source}/{producer.name}"
            )
        ctx.started()
        # The host task just waits: producers never return, so this only ends by cancellation.
        await anyio.sleep_forever()


async def _produce(
    ctx: SourceContext, scope: anyio.CancelScope, producer: Producer, jitter: float
) -> None:
    """One producer: absolute deadlines, catch-up when late, one row in hand at most."""
    clock, interval, rng = ctx.clock, producer.interval_s, producer.rng
    sequences = ProducerSequences(ctx.sequences, producer.name)
    # A random phase within the first interval keeps producers with equal intervals from
    # firing in lockstep (bursty batches downstream).
    due = clock.monotonic() + rng.uniform(0.0, interval)
    try:
        while True:
            delay = due - clock.monotonic()
            if delay > 0:
                await clock.sleep(delay)
            # When late (slow wake-up, or blocked on send), every row that has come due is
            # emitted back to back, stamped with its scheduled time: the rate never drifts.
            sequence = await sequences.take()
            late = max(0.0, clock.monotonic() - due)
            at = datetime.fromtimestamp(clock.wall() - late, UTC)
            row = producer.model.row(f"{producer.name}:{sequence}", at, sequence)
            # Backpressure lands here: a full stream makes this producer wait.
            await ctx.send.send(Envelope(producer.table, row, producer.name))
            # Not held through the sleep: an idle producer would keep its last row alive after
            # the pipeline is done with it (~1.7 KB each, 17 MB at 10,000 producers).
            del row, at
            # Deadlines are absolute (due += …, not now + …) so sleep overshoot never adds up.
            due += interval * (1.0 + rng.uniform(-jitter, jitter))
    except anyio.BrokenResourceError:
        # Nobody will ever receive again: stop the whole source rather than fail every task.
        scope.cancel()
