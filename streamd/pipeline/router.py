"""Route each envelope from the sources to its table's lane, after the table's row rules."""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable

from anyio import EndOfStream, WouldBlock
from anyio.streams.memory import MemoryObjectReceiveStream

from streamd.errors import SourceError
from streamd.metrics import Metrics
from streamd.pipeline.lanes import Lane
from streamd.pipeline.validation import TableRules, violation
from streamd.rows import Envelope, Row

Reject = Callable[..., Awaitable[None]]
"""`DeadLetters.put(table, row, *, rule, detail, position)`."""


class Router:
    """Envelopes → lanes; a row breaking its table's rules is dead-lettered instead."""

    def __init__(
        self,
        lanes: dict[str, Lane],
        metrics: Metrics,
        rules: dict[str, TableRules] | None = None,
        reject: Reject | None = None,
    ) -> None:
        self._lanes = lanes
        self._by_table: dict[str, list[Lane]] = {}
        for lane in lanes.values():
            self._by_table.setdefault(lane.table, []).append(lane)
        self._produced = {t: metrics.rows_produced.labels(t) for t in self._by_table}
        self._rules = {t: r for t, r in (rules or {}).items() if r.columns}
        self._reject = reject

    async def run(self, envelopes: MemoryObjectReceiveStream[Envelope]) -> None:
        """Move envelopes into lanes until the sources' stream ends, then close every lane."""
        try:
            async with envelopes:
                async for envelope in envelopes:
                    await self._deliver(envelope)
                    # Move whatever else is queued without a scheduler round trip per row.
                    while True:
                        try:
                            envelope = envelopes.receive_nowait()
                        except (WouldBlock, EndOfStream):
                            break
                        await self._deliver(envelope)
        finally:
            for lane in self._lanes.values():
                await lane.send.aclose()

    async def _deliver(self, envelope: Envelope) -> None:
        shards = self._by_table.get(envelope.table)
        if shards is None:
            raise SourceError(
                f"a source produced a row for {envelope.table}, which no source declared; "
                "fix the source's table settings"
            )
        self._produced[envelope.table].inc()
        rules = self._rules.get(envelope.table)
        if rules is not None and await self._rejected(envelope, envelope.row, rules):
            return
        # crc32, not hash(): the same key must pick the same channel in every run.
        lane = (
            shards[0]
            if len(shards) == 1
            else shards[zlib.crc32(envelope.key.encode()) % len(shards)]
        )
        try:
            lane.send.send_nowait(envelope)
        except WouldBlock:
            await lane.send.send(envelope)

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


async def route(
    envelopes: MemoryObjectReceiveStream[Envelope], lanes: dict[str, Lane], metrics: Metrics
) -> None:
    """Route without row rules (what tests of the bare pipeline use)."""
    await Router(lanes, metrics).run(envelopes)
