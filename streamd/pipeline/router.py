"""Route each envelope from the sources to its table's lane, after the table's row rules.

Routing runs inline in the source's own task (`Router.sender()`, the sources' `Send`), not in a
task of its own: a hop through one more stream would cost a scheduler turn per row, the largest
single cost the delivery path could have (bench/throughput.py). Whoever runs the sources closes
the lanes (`close_lanes`) once every source has returned.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable

from anyio import BrokenResourceError
from anyio.lowlevel import checkpoint

from streamd.config.tables import TableRules
from streamd.errors import SourceError
from streamd.pipeline.lanes import Lane
from streamd.pipeline.stats import PipelineStats
from streamd.pipeline.validation import violation
from streamd.rows import Envelope, Row

Reject = Callable[..., Awaitable[None]]
"""`DeadLetters.put(table, row, *, rule, detail, position)`."""

YIELD_EVERY = 64
"""A sender that never finds its lane full still yields to the event loop every this many rows, so
a tight producer cannot starve the batchers and cancellation reaches it promptly."""


class Router:
    """Envelopes → lanes; a row breaking its table's rules is dead-lettered instead."""

    def __init__(
        self,
        lanes: dict[str, Lane],
        stats: PipelineStats,
        rules: dict[str, TableRules] | None = None,
        reject: Reject | None = None,
    ) -> None:
        self._lanes = lanes
        self._by_table: dict[str, list[Lane]] = {}
        for lane in lanes.values():
            self._by_table.setdefault(lane.table, []).append(lane)
        self._produced = stats.produced
        for table in self._by_table:
            self._produced.setdefault(table, 0)
        self._rules = {t: r for t, r in (rules or {}).items() if r.columns}
        self._reject = reject
        self.closed = False
        """True once `close_lanes` ran: no row is taken any more."""

    def sender(self) -> RouterSend:
        """One source's `Send`: routes in the caller's task; one per source."""
        return RouterSend(self)

    async def deliver(self, envelope: Envelope) -> None:
        """Put one envelope into its lane, waiting while the lane is full (backpressure)."""
        shards = self._by_table.get(envelope.table)
        if shards is None:
            raise SourceError(
                f"a source produced a row for {envelope.table}, which no source declared; "
                "fix the source's table settings"
            )
        self._produced[envelope.table] += 1
        rules = self._rules.get(envelope.table)
        if rules is not None and await self._rejected(envelope, envelope.row, rules):
            return
        # crc32, not hash(): the same key must pick the same channel in every run.
        lane = (
            shards[0]
            if len(shards) == 1
            else shards[zlib.crc32(envelope.key.encode()) % len(shards)]
        )
        if not lane.offer(envelope):
            await lane.put(envelope)

    def close_lanes(self) -> None:
        """Tell every lane no more rows come; senders then raise BrokenResourceError (idempotent)."""
        if not self.closed:
            self.closed = True
            for lane in self._lanes.values():
                lane.close_writers()

    async def _rejected(self, envelope: Envelope, row: Row, rules: TableRules) -> bool:
        broken = violation(row, rules)
        if broken is None:
            return False
        if self._reject is None:
            raise SourceError(f"{envelope.table}: {broken[1]} and no dead-letter path is set")
        await self._reject(
            envelope.table, row, rule=broken[0], detail=broken[1], position=envelope.key or None
        )
        if envelope.ack is not None:
            envelope.ack(None)
        return True


class RouterSend:
    """A source's end of the router (`streamd.sources.base.Send`): each row goes to its lane at once."""

    __slots__ = ("_router", "_since_yield")

    def __init__(self, router: Router) -> None:
        self._router = router
        self._since_yield = 0

    async def send(self, item: Envelope) -> None:
        """Route `item`; waits while its lane is full, and yields every `YIELD_EVERY` rows."""
        router = self._router
        if router.closed:
            raise BrokenResourceError
        self._since_yield += 1
        if self._since_yield >= YIELD_EVERY:
            self._since_yield = 0
            await checkpoint()
        await router.deliver(item)
