"""Route each envelope from the sources to its table's lane."""

from __future__ import annotations

from anyio.abc import ObjectReceiveStream

from streamd.errors import SourceError
from streamd.metrics import Metrics
from streamd.pipeline.lanes import Lane
from streamd.rows import Envelope


async def route(
    envelopes: ObjectReceiveStream[Envelope], lanes: dict[str, Lane], metrics: Metrics
) -> None:
    """Move envelopes into lanes until the sources' stream ends, then close every lane."""
    counters = {table: metrics.rows_produced.labels(table) for table in lanes}
    try:
        async with envelopes:
            async for envelope in envelopes:
                lane = lanes.get(envelope.table)
                if lane is None:
                    raise SourceError(
                        f"a source produced a row for {envelope.table}, which no source declared; "
                        "fix the source's table settings"
                    )
                await lane.send.send(envelope.row)
                counters[envelope.table].inc()
    finally:
        for lane in lanes.values():
            await lane.send.aclose()
