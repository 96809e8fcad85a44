"""Every metric streamd exports, declared once, in a registry per daemon.

Counters are incremented per batch, never per row. The counts the pipeline itself reads (rows
produced, committed and rejected; retries; reopens) live in `PipelineStats`, where the components
count them; this registry only exports them (`StatsCollector`), and nothing reads Prometheus back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from streamd.pipeline.stats import PipelineStats


class StatsCollector(Collector):
    """Exports a `PipelineStats` as Prometheus counters, read at each scrape."""

    def __init__(self, stats: PipelineStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        """One counter family per count, a sample per label set."""
        s = self._stats
        yield _family(
            "streamd_rows_produced",
            "Rows sources handed to the pipeline",
            ["table"],
            (((table,), n) for table, n in s.produced.items()),
        )
        yield _family(
            "streamd_rows_committed",
            "Rows Snowflake reports committed",
            ["table"],
            (((table,), n) for table, n in s.committed.items()),
        )
        yield _family(
            "streamd_rows_rejected",
            "Rows dead-lettered instead of delivered",
            ["table", "rule"],
            s.rejected.items(),
        )
        yield _family(
            "streamd_retries",
            "Requests retried after a transient error",
            ["table", "reason"],
            s.retries.items(),
        )
        yield _family(
            "streamd_channel_reopens",
            "Channels reopened and replayed",
            ["table", "reason"],
            s.reopens.items(),
        )


def _family(
    name: str, documentation: str, labels: list[str], counts: Iterable[tuple[tuple[str, ...], int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, n in counts:
        family.add_metric(list(values), n)
    return family


class StatsCount:
    """`labels(...).inc(n)`, the shape of a prometheus-client counter, counting into `PipelineStats`."""

    def __init__(self, add: Callable[..., None]) -> None:
        self._add = add

    def labels(self, *values: str) -> _Labelled:
        """The count of one label set."""
        return _Labelled(self._add, values)


class _Labelled:
    __slots__ = ("_add", "_values")

    def __init__(self, add: Callable[..., None], values: tuple[str, ...]) -> None:
        self._add = add
        self._values = values

    def inc(self, amount: float = 1) -> None:
        self._add(*self._values, int(amount))


class Metrics:
    """The daemon's metrics, over the pipeline's own counts (`stats`)."""

    def __init__(self, stats: PipelineStats | None = None) -> None:
        self.stats = stats if stats is not None else PipelineStats()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        r.register(StatsCollector(self.stats))
        self.rows_appended = Counter(
            "streamd_rows_appended",
            "Rows acknowledged by an append (not yet committed)",
            ["table"],
            registry=r,
        )
        self.rows_committed = StatsCount(self.stats.commit)
        """Counts into `stats.committed` (the sinks report commits here)."""
        self.retries = StatsCount(self.stats.retry)
        """Counts into `stats.retries`."""
        self.reopens = StatsCount(self.stats.reopen)
        """Counts into `stats.reopens`."""
        self.rows_errored = Counter(
            "streamd_rows_errored", "Rows Snowflake counted as erroneous", ["table"], registry=r
        )
        self.bytes_appended = Counter(
            "streamd_bytes_appended", "Uncompressed NDJSON bytes appended", ["table"], registry=r
        )
        self.fenced = Counter(
            "streamd_channels_fenced",
            "Channels taken over by another opener",
            ["table"],
            registry=r,
        )
        self.files = Counter(
            "streamd_files",
            "Files-mode files by outcome: loaded, load_failed, partially_loaded, resubmitted",
            ["table", "outcome"],
            registry=r,
        )
        self.lane_depth = Gauge(
            "streamd_lane_depth_rows", "Rows waiting in a lane", ["lane"], registry=r
        )
        self.spool_bytes = Gauge(
            "streamd_spool_bytes", "Bytes in a lane's spool segments", ["lane"], registry=r
        )
        self.spool_waiting = Gauge(
            "streamd_spool_rows_waiting", "Spooled rows not yet committed", ["lane"], registry=r
        )
        self.rows_dropped = Gauge(
            "streamd_rows_dropped",
            "Rows a full spool dropped (spool.when_full) since start",
            ["lane"],
            registry=r,
        )
        self.commit_lag = Gauge(
            "streamd_commit_lag_seconds", "Age of the oldest uncommitted row", ["lane"], registry=r
        )
        self.request_seconds = Histogram(
            "streamd_request_seconds",
            "Snowflake request latency",
            ["call"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

        # The reconciler (streamd/reconciler/): findings, cycles, freshness and remediation.
        self.findings = Gauge(
            "streamd_reconciler_findings",
            "Active reconciler findings per severity",
            ["severity"],
            registry=r,
        )
        self.finding_active = Gauge(
            "streamd_reconciler_finding_active",
            "1 while a finding about an object is active (removed when it clears)",
            ["check", "object", "severity"],
            registry=r,
        )
        self.reconciler_cycles = Counter(
            "streamd_reconciler_cycles",
            "Reconciler cycles, by whether they finished within reconciler.cycle_timeout_s",
            ["outcome"],
            registry=r,
        )
        self.reconciler_cycle_seconds = Gauge(
            "streamd_reconciler_cycle_seconds",
            "Duration of the latest reconciler cycle",
            registry=r,
        )
        self.reconciler_query_failures = Counter(
            "streamd_reconciler_query_failures",
            "Failed reconciler queries, once per cycle and failing statement (each is a warning finding)",
            ["check"],
            registry=r,
        )
        self.freshness = Gauge(
            "streamd_freshness_seconds",
            "End-to-end freshness: newest event produced to newest row visible in the final object",
            ["source", "final"],
            registry=r,
        )
        self.remediations = Counter(
            "streamd_reconciler_remediations",
            "Fixes the reconciler applied (reconciler.remediation)",
            ["kind", "outcome"],
            registry=r,
        )

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (a counter's name without `_total`, or a gauge's); 0 when unset.

        For tests and debugging: the pipeline reads its counts from `stats`, never from here.
        """
        sample = self.registry.get_sample_value(f"{name}_total", labels)
        if sample is None:
            sample = self.registry.get_sample_value(name, labels)
        return sample or 0.0

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)
