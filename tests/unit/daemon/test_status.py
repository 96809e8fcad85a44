"""Daemon status: the run summary, watchdog progress, readiness, /status and gauges from live parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from streamd.config.model import Config
from streamd.daemon import status
from streamd.metrics import Metrics
from streamd.pipeline.lanes import Lane, open_lanes
from streamd.pipeline.stats import PipelineStats
from streamd.rows import Envelope
from streamd.testing import ManualClock

A, B = "DB.S.A", "DB.S.B"


@dataclass
class _Sink:
    name: str
    is_open: bool = True
    committed_offset: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {"channel": self.name, "open": self.is_open}

    def commit_lag_s(self) -> float:
        return 1.5


@dataclass
class _Running:
    """The parts of a daemon the views read, without a pipeline behind them."""

    stats: PipelineStats = field(default_factory=PipelineStats)
    config: Config = field(default_factory=Config)
    clock: ManualClock = field(default_factory=ManualClock)
    sources: list[Any] = field(default_factory=list)
    tables: list[str] = field(default_factory=lambda: [A, B])
    lanes: dict[str, Lane] = field(default_factory=lambda: open_lanes([A, B], capacity=10))
    spools: dict[str, Any] = field(default_factory=dict)
    sinks: dict[str, Any] = field(default_factory=dict)
    reconciler: Any = None
    started_at: float = 0.0
    stopping: bool = False
    target_url: str = "http://standin"
    ready: anyio.Event = field(default_factory=anyio.Event)
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(self.stats)


async def test_summary_counts_from_stats_and_waiting_rows_from_lanes() -> None:
    d = _Running()
    d.stats.produced.update({A: 5, B: 1})
    d.stats.commit(A, 2)
    d.stats.reject(A, "not_null")
    d.stats.retry(B, "429", 3)
    d.stats.reopen(A, "STALE")
    for i in range(2):
        assert d.lanes[A].offer(Envelope(A, {"i": i}))
    summary = status.summary(d)
    assert vars(summary.tables[A]) == {
        "produced": 5,
        "committed": 2,
        "rejected": 1,
        "uncommitted": 2,
    }
    assert vars(summary.tables[B]) == {
        "produced": 1,
        "committed": 0,
        "rejected": 0,
        "uncommitted": 0,
    }
    assert (summary.retries, summary.reopens, summary.uncommitted) == (3, 1, 2)
    assert status.progress(d) == (3, 2)


async def test_readiness_names_every_reason() -> None:
    d = _Running()
    d.sinks = {A: _Sink("channel DB.S.A-STREAMING/c", is_open=False)}
    assert status.readiness(d) == [
        "starting: channels not open yet",
        "channel DB.S.A-STREAMING/c is not open",
    ]
    d.ready.set()
    d.sinks[A].is_open = True
    assert status.readiness(d) == []
    d.stopping = True
    assert status.readiness(d) == ["stopping: draining"]


async def test_status_reports_lanes_channels_tables_and_rejections() -> None:
    d = _Running()
    d.started_at = d.clock.wall()
    d.clock.advance(12.34)
    d.sinks = {A: _Sink("a")}
    d.stats.reject(B, "row_too_large", 2)
    body = status.status(d)
    assert body["uptime_s"] == 12.3
    assert body["target"] == {"kind": d.config.target.kind, "url": "http://standin"}
    assert [lane["lane"] for lane in body["lanes"]] == [A, B]
    assert body["channels"] == [{"channel": "a", "open": True}]
    assert body["tables"][B]["rejected"] == 2
    assert body["rejected"] == [{"table": B, "rule": "row_too_large", "rows": 2}]
    assert body["reconciler"] == {"enabled": False}
    assert status.health_reasons(d) == []


async def test_gauges_follow_lanes_and_writers() -> None:
    d = _Running()
    d.sinks = {A: _Sink("a")}
    assert d.lanes[B].offer(Envelope(B, {}))
    status.refresh_gauges(d)
    assert d.metrics.value("streamd_lane_depth_rows", lane=B) == 1
    assert d.metrics.value("streamd_commit_lag_seconds", lane=A) == 1.5
