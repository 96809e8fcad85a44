"""Route each envelope from the sources to its table's lane."""

from __future__ import annotations

import zlib

from anyio import EndOfStream, WouldBlock
from anyio.streams.memory import MemoryObjectReceiveStream
from prometheus_client import Counter

from streamd.errors import SourceError
from streamd.metrics import Metrics
from streamd.pipeline.lanes import Lane
from streamd.rows import Envelope


async def route(
    envelopes: MemoryObjectReceiveStream[Envelope], lanes: dict[str, Lane], metrics: Metrics
) -> None:
    """Move envelopes into lanes until the sources' stream ends, then close every lane."""
    by_table: dict[str, list[Lane]] = {}
    for lane in lanes.values():
        by_table.setdefault(lane.table, []).append(lane)
    counters = {table: metrics.rows_produced.labels(table) for table in by_table}
    try:
        async with envelopes:
            async for envelope in envelopes:
                await _deliver(envelope, by_table, counters)
                # Move whatever else is queued without a scheduler round trip per row.
                while True:
                    try:
                        envelope = envelopes.receive_nowait()
                    except (WouldBlock, EndOfStream):
                        break
                    await _deliver(envelope, by_table, counters)
    finally:
        for lane in lanes.values():
            await lane.send.aclose()


async def _deliver(
    envelope: Envelope, by_table: dict[str, list[Lane]], counters: dict[str, Counter]
) -> None:
    shards = by_table.get(envelope.table)
    if shards is None:
        raise SourceError(
            f"a source produced a row for {envelope.table}, which no source declared; "
            "fix the source's table settings"
        )
    # crc32, not hash(): the same key must pick the same channel in every run.
    lane = (
        shards[0] if len(shards) == 1 else shards[zlib.crc32(envelope.key.encode()) % len(shards)]
    )
    try:
        lane.send.send_nowait(envelope)
    except WouldBlock:
        await lane.send.send(envelope)
    counters[envelope.table].inc()
