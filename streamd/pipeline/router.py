"""Route each envelope from the sources to its table's lane."""

from __future__ import annotations

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
    counters = {table: metrics.rows_produced.labels(table) for table in lanes}
    try:
        async with envelopes:
            async for envelope in envelopes:
                await _deliver(envelope, lanes, counters)
                # Move whatever else is queued without a scheduler round trip per row.
                while True:
                    try:
                        envelope = envelopes.receive_nowait()
                    except (WouldBlock, EndOfStream):
                        break
                    await _deliver(envelope, lanes, counters)
    finally:
        for lane in lanes.values():
            await lane.send.aclose()


async def _deliver(
    envelope: Envelope, lanes: dict[str, Lane], counters: dict[str, Counter]
) -> None:
    lane = lanes.get(envelope.table)
    if lane is None:
        raise SourceError(
            f"a source produced a row for {envelope.table}, which no source declared; "
            "fix the source's table settings"
        )
    try:
        lane.send.send_nowait(envelope.row)
    except WouldBlock:
        await lane.send.send(envelope.row)
    counters[envelope.table].inc()
