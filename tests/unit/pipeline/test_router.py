"""The router: rows go to their table's lane; with shards, one key always to the same lane."""

from __future__ import annotations

import anyio
import pytest

from streamd.errors import SourceError
from streamd.metrics import Metrics
from streamd.pipeline.lanes import open_lanes
from streamd.pipeline.router import route
from streamd.rows import Envelope


async def test_same_key_same_shard_and_counts() -> None:
    """Every row of one producer lands in one shard; produced counts are per table."""
    lanes = open_lanes(["DB.S.A", "DB.S.B"], capacity=100, shards=3)
    metrics = Metrics()
    send, receive = anyio.create_memory_object_stream[Envelope](100)
    async with send:
        for i in range(30):
            await send.send(Envelope("DB.S.A", {"i": i}, key=f"p{i % 5}"))
        await send.send(Envelope("DB.S.B", {"i": -1}, key="x"))
    await route(receive, lanes, metrics)
    placement: dict[int, str] = {}
    for name, lane in lanes.items():
        async with lane.receive:
            async for envelope in lane.receive:
                if name.startswith("DB.S.A"):
                    assert placement.setdefault(envelope.row["i"] % 5, name) == name
    assert len(set(placement.values())) > 1
    assert metrics.value("streamd_rows_produced", table="DB.S.A") == 30
    assert metrics.value("streamd_rows_produced", table="DB.S.B") == 1


async def test_unknown_table_is_an_error() -> None:
    """A row for an undeclared table stops the pipeline with a clear error rather than vanishing."""
    lanes = open_lanes(["DB.S.A"], capacity=10)
    send, receive = anyio.create_memory_object_stream[Envelope](10)
    async with send:
        await send.send(Envelope("DB.S.NOPE", {}))
    with pytest.raises(SourceError, match=r"DB\.S\.NOPE"):
        await route(receive, lanes, Metrics())
    for lane in lanes.values():
        await lane.receive.aclose()
