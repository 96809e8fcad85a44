"""What the running daemon reports: /status, readiness, gauges before a scrape, the run summary.

Read-only views over the daemon's parts (`Running`); nothing here changes the pipeline. Counts
come from the pipeline's own `PipelineStats`, never from the Prometheus registry.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from streamd import __version__
from streamd.clock import Clock
from streamd.config.model import Config
from streamd.metrics import Metrics
from streamd.pipeline.lanes import Lane
from streamd.pipeline.stats import PipelineStats
from streamd.reconciler.loop import Reconciler
from streamd.sinks.base import Sink
from streamd.sources.base import Source
from streamd.spool import LaneSpool


@dataclass
class TableSummary:
    """Per-table counts for this run, and what is still waiting."""

    produced: int
    """Rows sources produced in this run."""
    committed: int
    """Rows committed in this run (including rows an earlier run had spooled)."""
    rejected: int
    """Rows dead-lettered in this run."""
    uncommitted: int = 0
    """Rows produced (this run or before) and not committed yet: in lanes or in the spool."""


@dataclass
class RunSummary:
    """What a run did, per table."""

    tables: dict[str, TableSummary] = field(default_factory=dict)
    retries: int = 0
    reopens: int = 0

    @property
    def uncommitted(self) -> int:
        """Rows not committed yet, over every table."""
        return sum(t.uncommitted for t in self.tables.values())


class Running(Protocol):
    """The parts of a running daemon these views read."""

    @property
    def config(self) -> Config: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def stats(self) -> PipelineStats: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def sources(self) -> Sequence[Source]: ...
    @property
    def tables(self) -> Sequence[str]: ...
    @property
    def lanes(self) -> Mapping[str, Lane]: ...
    @property
    def spools(self) -> Mapping[str, LaneSpool]: ...
    @property
    def sinks(self) -> Mapping[str, Sink]: ...
    @property
    def reconciler(self) -> Reconciler | None: ...
    @property
    def started_at(self) -> float: ...
    @property
    def stopping(self) -> bool: ...
    @property
    def target_url(self) -> str: ...
    @property
    def ready(self) -> anyio.Event: ...


def summary(d: Running) -> RunSummary:
    """Produced / committed / rejected per table, and what still waits."""
    stats = d.stats
    out = RunSummary(retries=stats.total_retries(), reopens=stats.total_reopens())
    for table in d.tables:
        counts = stats.table(table)
        out.tables[table] = TableSummary(
            produced=counts.produced,
            committed=counts.committed,
            rejected=counts.rejected,
            uncommitted=sum(
                _waiting(d, name) for name, lane in d.lanes.items() if lane.table == table
            ),
        )
    return out


def progress(d: Running) -> tuple[int, int]:
    """(rows finished: committed + dead-lettered, rows waiting) for the systemd watchdog."""
    run = summary(d)
    return sum(t.committed + t.rejected for t in run.tables.values()), run.uncommitted


def status(d: Running) -> dict[str, Any]:
    """Live state for /status and `streamd inspect`."""
    return {
        "version": __version__,
        "pid": os.getpid(),
        "uptime_s": round(d.clock.wall() - d.started_at, 1),
        "stopping": d.stopping,
        "target": {"kind": d.config.target.kind, "url": d.target_url},
        "sources": [
            {"name": s.name, "kind": getattr(s, "kind", type(s).__name__)} for s in d.sources
        ],
        "lanes": [
            {
                "table": lane.table,
                "lane": name,
                "depth": lane.depth,
                "capacity": lane.capacity,
                "producers_waiting": lane.producers_waiting,
                "spool": d.spools[name].stats() if name in d.spools else None,
            }
            for name, lane in d.lanes.items()
        ],
        "channels": [s.snapshot() for s in d.sinks.values()],
        "tables": {t: vars(s) for t, s in summary(d).tables.items()},
        "rejected": [
            {"table": table, "rule": rule, "rows": n}
            for (table, rule), n in d.stats.rejected.items()
        ],
        "reconciler": d.reconciler.status() if d.reconciler else {"enabled": False},
    }


def readiness(d: Running) -> list[str]:
    """Why the daemon is not ready: empty once channels are open and no spool is full."""
    reasons = [f"{s.name} is not open" for s in d.sinks.values() if not s.is_open]
    if not d.ready.is_set():
        reasons.insert(0, "starting: channels not open yet")
    reasons += [
        f"spool of {name} is full (spool.max_bytes); sources are waiting"
        for name, spool in d.spools.items()
        if spool.writer_blocked
    ]
    if d.stopping:
        reasons.append("stopping: draining")
    return reasons


def health_reasons(d: Running) -> list[str]:
    """Why /healthz says degraded: the reconciler's critical findings (empty when healthy)."""
    return d.reconciler.health_reasons() if d.reconciler else []


def refresh_gauges(d: Running) -> None:
    """Set the gauges from live state (called before each /metrics scrape)."""
    m = d.metrics
    for name, lane in d.lanes.items():
        m.lane_depth.labels(name).set(lane.depth)
        spool = d.spools.get(name)
        if spool is not None:
            stats = spool.stats()
            m.spool_bytes.labels(name).set(stats["bytes"])
            m.spool_waiting.labels(name).set(stats["rows_waiting"])
            m.rows_dropped.labels(name).set(stats["rows_dropped"])
        sink = d.sinks.get(name)
        if sink is not None:
            m.commit_lag.labels(name).set(sink.commit_lag_s())


def _waiting(d: Running, lane: str) -> int:
    """Rows of one lane not known committed: still in the lane, or spooled but uncommitted."""
    waiting = d.lanes[lane].depth
    spool = d.spools.get(lane)
    if spool is not None:
        sink = d.sinks.get(lane)
        committed = max(spool.committed, sink.committed_offset if sink else 0)
        waiting += max(0, spool.next_seq - 1 - committed)
    return waiting
