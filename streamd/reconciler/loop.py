"""The reconciler loop: runs every check on a schedule inside the daemon and publishes the result.

Each cycle's findings become log events when they change (`finding_raised`, `finding_changed`,
`finding_cleared`), Prometheus series, the `/healthz` answer (degraded while any finding is
critical), the `reconciler` part of `/status` (and so `streamd inspect`), and, when switched on,
remediation statements.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import anyio
import anyio.abc

from streamd.clock import Clock
from streamd.errors import StreamdError
from streamd.logs import get_logger
from streamd.metrics import Metrics
from streamd.reconciler.checks import check_channels, check_streams, check_tasks
from streamd.reconciler.checks_tables import (
    check_dynamic_tables,
    check_exports,
    check_iceberg,
    check_pipes,
)
from streamd.reconciler.config import ReconcilerConfig
from streamd.reconciler.context import CheckContext
from streamd.reconciler.freshness import measure_freshness
from streamd.reconciler.query import SqlRunner
from streamd.reconciler.report import SEVERITIES, Change, Finding, Freshness, HealthReport, merge
from streamd.snowflake.sql_api import ResultSet, SqlApiClient

Check = Callable[[SqlRunner, Clock, CheckContext], Awaitable[list[Finding]]]

CHECKS: dict[str, Check] = {
    "channel": check_channels,
    "stream": check_streams,
    "task": check_tasks,
    "dynamic_table": check_dynamic_tables,
    "iceberg": check_iceberg,
    "export": check_exports,
    "pipe": check_pipes,
}
"""Every concern by name; `freshness` runs beside them (it also yields measurements)."""

_LOG_LEVELS = {"critical": "error", "warning": "warning", "info": "info"}
"""Log level of `finding_raised` / `finding_changed` per severity."""


class BoundSql:
    """A `SqlRunner` over `SqlApiClient` with the role and warehouse every reconciler query uses."""

    def __init__(self, client: SqlApiClient, *, role: str | None, warehouse: str | None) -> None:
        self._client = client
        self._role = role
        self._warehouse = warehouse

    async def execute(self, statement: str, *, timeout_s: int = 60) -> ResultSet:
        """Run one statement with the configured role and warehouse."""
        return await self._client.execute(
            statement, role=self._role, warehouse=self._warehouse, timeout_s=timeout_s
        )


class Reconciler:
    """Runs the checks every `interval_s` and keeps the latest `HealthReport`."""

    def __init__(
        self,
        config: ReconcilerConfig,
        sql: SqlRunner,
        clock: Clock,
        metrics: Metrics,
        *,
        databases: list[str],
        channels: Callable[[], list[dict[str, Any]]] = list,
        checks: dict[str, Check] | None = None,
        produced: Mapping[str, int] | None = None,
    ) -> None:
        """`produced`: rows produced so far per landing table (the pipeline's live counts)."""
        self.config = config
        self._sql = sql
        self._clock = clock
        self._metrics = metrics
        self._checks = dict(CHECKS if checks is None else checks)
        self._produced_counts: Mapping[str, int] = {} if produced is None else produced
        self._produced: dict[str, tuple[float, float, float]] = {}
        """Landing table → (produced count, wall time it first grew, wall time it last grew)."""
        self.context = CheckContext(
            config, databases, channels=channels, produced_at=self._produced_at
        )
        self.report = HealthReport()
        self._by_check: dict[str, list[Finding]] = {}
        self._cycle_done = anyio.Event()
        self._log = get_logger(component="reconciler")

    async def run(self) -> None:
        """Run a cycle every `interval_s` (start to start) until cancelled."""
        self._log.info(
            "reconciler_started",
            interval_s=self.config.interval_s,
            databases=self.context.databases,
            checks=[*self._checks, "freshness"],
        )
        while True:
            started = self._clock.monotonic()
            await self.run_cycle()
            elapsed = self._clock.monotonic() - started
            await self._clock.sleep(max(0.0, self.config.interval_s - elapsed))

    async def next_report(self) -> HealthReport:
        """Wait for the next cycle to finish and return its report."""
        await self._cycle_done.wait()
        return self.report

    def health_reasons(self) -> list[str]:
        """Why `/healthz` says degraded: one line per critical finding (empty when healthy)."""
        return self.report.degraded_reasons

    def status(self) -> dict[str, Any]:
        """The `reconciler` part of `/status`."""
        return {
            "enabled": True,
            "interval_s": self.config.interval_s,
            "databases": self.context.databases,
            "remediation": self.config.remediation.model_dump(),
            **self.report.as_json(),
        }

    async def run_cycle(self) -> HealthReport:
        """One cycle: every check under the cycle deadline, then publish what changed."""
        wall = self._clock.wall()
        started = self._clock.monotonic()
        self._sample_produced(wall)
        results: dict[str, list[Finding]] = {}
        measured: list[list[Freshness]] = []
        with anyio.move_on_after(self.config.cycle_timeout_s) as deadline:
            async with anyio.create_task_group() as tg:
                for name, check in self._checks.items():
                    tg.start_soon(self._run_check, name, check, results)
                tg.start_soon(self._run_freshness, results, measured)
        found: list[Finding] = []
        for name in [*self._checks, "freshness"]:
            if name in results:
                self._by_check[name] = results[name]
            else:
                # Cut short: keep what it last found rather than clearing findings nobody re-checked.
                found.append(
                    Finding(
                        "reconciler",
                        "warning",
                        f"check {name}",
                        f"did not finish within reconciler.cycle_timeout_s "
                        f"({self.config.cycle_timeout_s:g} s)",
                        "raise reconciler.cycle_timeout_s, or check the warehouse and the SQL API",
                    )
                )
            found += self._by_check.get(name, [])
        freshness = tuple(measured[0]) if measured else self.report.freshness
        findings, changes = merge(self.report, found, wall)
        self.report = HealthReport(
            findings=tuple(findings),
            freshness=freshness,
            cycle_started=wall,
            cycle_s=self._clock.monotonic() - started,
            cycles=self.report.cycles + 1,
        )
        self._publish(changes, "timed_out" if deadline.cancelled_caught else "complete")
        with anyio.move_on_after(self.config.cycle_timeout_s):
            await self._remediate(findings)
        done, self._cycle_done = self._cycle_done, anyio.Event()
        done.set()
        return self.report

    async def _run_check(self, name: str, check: Check, results: dict[str, list[Finding]]) -> None:
        try:
            results[name] = await check(self._sql, self._clock, self.context)
        except StreamdError as exc:
            results[name] = [_check_failed(name, str(exc))]
        except Exception as exc:
            # A bug in one check (or an answer shaped unlike the docs) must never stop delivery:
            # it becomes a warning finding and a logged traceback.
            self._log.exception("reconciler_check_crashed", check=name)
            results[name] = [_check_failed(name, f"{type(exc).__name__}: {exc}")]

    async def _run_freshness(
        self, results: dict[str, list[Finding]], measured: list[list[Freshness]]
    ) -> None:
        async def check(sql: SqlRunner, clock: Clock, ctx: CheckContext) -> list[Finding]:
            samples, findings = await measure_freshness(sql, clock, ctx)
            measured.append(samples)
            return findings

        await self._run_check("freshness", check, results)

    def _sample_produced(self, now: float) -> None:
        """Note when each freshness target's landing table last produced (to one cycle's precision)."""
        for target in self.config.freshness:
            count = self._produced_counts.get(target.table, 0)
            before = self._produced.get(target.table)
            if before is None:
                if count > 0:
                    self._produced[target.table] = (count, now, now)
            elif count > before[0]:
                self._produced[target.table] = (count, before[1], now)

    def _produced_at(self, table: str) -> tuple[float, float] | None:
        entry = self._produced.get(table)
        return None if entry is None else (entry[1], entry[2])

    def _publish(self, changes: list[Change], outcome: str) -> None:
        m = self._metrics
        for change in changes:
            f = change.finding
            fields = {"check": f.check, "object": f.object, "severity": f.severity}
            if change.kind == "cleared":
                self._log.info("finding_cleared", **fields, message=f.message)
                _forget(m, f)
                continue
            if change.previous is not None:
                _forget(m, change.previous)
                fields["previous"] = change.previous.severity
            event = "finding_raised" if change.kind == "raised" else "finding_changed"
            log = getattr(self._log, _LOG_LEVELS[f.severity])
            log(event, **fields, message=f.message, action=f.action)
        for f in self.report.findings:
            m.finding_active.labels(f.check, f.object, f.severity).set(1)
            if f.failed_query:
                m.reconciler_query_failures.labels(f.check).inc()
        for severity in SEVERITIES:
            m.findings.labels(severity).set(self.report.count(severity))
        for sample in self.report.freshness:
            if sample.lag_s is not None:
                m.freshness.labels(sample.source, sample.final).set(sample.lag_s)
        m.reconciler_cycles.labels(outcome).inc()
        m.reconciler_cycle_seconds.set(self.report.cycle_s)

    async def _remediate(self, findings: list[Finding]) -> None:
        switches = self.config.remediation
        allowed = {
            "resume_task": switches.resume_suspended_tasks,
            "execute_task": switches.execute_tasks_near_staleness,
        }
        for finding in findings:
            for remedy in finding.remedies:
                if not allowed[remedy.kind]:
                    continue
                try:
                    await self._sql.execute(remedy.statement, timeout_s=self.config.query_timeout_s)
                except StreamdError as exc:
                    self._metrics.remediations.labels(remedy.kind, "failed").inc()
                    self._log.warning(
                        "remediation_failed",
                        object=finding.object,
                        statement=remedy.statement,
                        error=str(exc),
                    )
                    continue
                self._metrics.remediations.labels(remedy.kind, "applied").inc()
                self._log.info(
                    "remediation_applied",
                    object=finding.object,
                    statement=remedy.statement,
                    reason=finding.message,
                )


def _check_failed(name: str, why: str) -> Finding:
    return Finding(
        "reconciler",
        "warning",
        f"check {name}",
        f"check failed: {why}",
        "see the reconciler_check_crashed log event; the other checks still run",
        failed_query=True,
    )


def _forget(metrics: Metrics, finding: Finding) -> None:
    # KeyError: never exported (it cleared in the cycle that raised it).
    with contextlib.suppress(KeyError):
        metrics.finding_active.remove(finding.check, finding.object, finding.severity)


def watched_databases(config: ReconcilerConfig, tables: list[str]) -> list[str]:
    """`reconciler.databases`, or (unset) the databases of the tables streamd writes."""
    if config.databases is not None:
        return list(config.databases)
    return sorted({table.split(".")[0] for table in tables})


class ChannelSource(Protocol):
    """The daemon, as far as the reconciler's channel check reads it."""

    @property
    def writers(self) -> Mapping[str, Any]:
        """Lane name → channel writer (its `snapshot()` is the channel's state)."""
        ...


def for_daemon(
    config: ReconcilerConfig,
    client: SqlApiClient,
    *,
    role: str | None,
    clock: Clock,
    metrics: Metrics,
    tables: list[str],
    daemon: ChannelSource,
    produced: Mapping[str, int],
) -> Reconciler:
    """The daemon's reconciler: queries with the target's `role`, channels from its writers."""
    return Reconciler(
        config,
        BoundSql(client, role=role, warehouse=config.warehouse),
        clock,
        metrics,
        databases=watched_databases(config, tables),
        channels=lambda: [w.snapshot() for w in daemon.writers.values()],
        produced=produced,
    )
