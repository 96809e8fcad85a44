"""Pipeline stats: each count kept where it is made, read per table, exported to Prometheus as is."""

from __future__ import annotations

from pathlib import Path

from streamd.metrics import Metrics
from streamd.pipeline.dead_letters import DeadLetters
from streamd.pipeline.lanes import open_lanes
from streamd.pipeline.router import Router
from streamd.pipeline.stats import PipelineStats, TableCounts
from streamd.rows import Envelope


def test_counts_per_table() -> None:
    stats = PipelineStats()
    stats.produced["DB.S.A"] = 5
    stats.commit("DB.S.A", 3)
    stats.commit("DB.S.A", 1)
    stats.reject("DB.S.A", "not_null")
    stats.reject("DB.S.A", "row_too_large", 2)
    stats.reject("DB.S.B", "not_null")
    stats.retry("DB.S.A", "429")
    stats.retry("DB.S.B", "503", 2)
    stats.reopen("DB.S.A", "STALE")
    assert stats.table("DB.S.A") == TableCounts(produced=5, committed=4, rejected=3)
    assert stats.table("DB.S.B") == TableCounts(produced=0, committed=0, rejected=1)
    assert stats.table("DB.S.NONE") == TableCounts(0, 0, 0)
    assert (stats.total_retries(), stats.total_reopens()) == (3, 1)


async def test_the_router_and_dead_letters_count_into_stats(tmp_path: Path) -> None:
    stats = PipelineStats()
    lanes = open_lanes(["DB.S.A"], capacity=10)
    router = Router(lanes, stats)
    send = router.sender()
    for i in range(3):
        await send.send(Envelope("DB.S.A", {"i": i}))
    router.close_lanes()
    dead = DeadLetters(tmp_path / "dl", stats)
    await dead.put("DB.S.A", {"i": 9}, rule="not_null", detail="I is null")
    assert stats.table("DB.S.A") == TableCounts(produced=3, committed=0, rejected=1)
    await lanes["DB.S.A"].receive.aclose()


def test_prometheus_exports_the_stats_under_the_metric_names() -> None:
    """The registry reads the stats at each scrape; the sinks' counters land in the stats."""
    metrics = Metrics()
    metrics.stats.produced["DB.S.A"] = 7
    metrics.rows_committed.labels("DB.S.A").inc(5)
    metrics.stats.reject("DB.S.A", "not_null")
    metrics.retries.labels("DB.S.A", "429").inc()
    metrics.reopens.labels("DB.S.A", "STALE").inc()
    assert metrics.stats.committed == {"DB.S.A": 5}
    assert metrics.stats.retries == {("DB.S.A", "429"): 1}
    text = metrics.render().decode()
    for line in (
        'streamd_rows_produced_total{table="DB.S.A"} 7.0',
        'streamd_rows_committed_total{table="DB.S.A"} 5.0',
        'streamd_rows_rejected_total{rule="not_null",table="DB.S.A"} 1.0',
        'streamd_retries_total{reason="429",table="DB.S.A"} 1.0',
        'streamd_channel_reopens_total{reason="STALE",table="DB.S.A"} 1.0',
    ):
        assert line in text
    metrics.stats.produced["DB.S.A"] += 1
    assert metrics.value("streamd_rows_produced", table="DB.S.A") == 8
