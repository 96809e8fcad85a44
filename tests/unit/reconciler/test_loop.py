"""The reconciler loop: findings raised and cleared as events, metrics, /healthz, deadlines, remediation."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from streamd.cli.inspect import render
from streamd.daemon.admin import build_app
from streamd.metrics import Metrics
from streamd.reconciler.config import ReconcilerConfig
from streamd.reconciler.context import CheckContext
from streamd.reconciler.loop import CHECKS, Reconciler
from streamd.reconciler.query import SqlRunner
from streamd.reconciler.report import Finding
from streamd.snowflake.sql_api import SqlApiClient
from streamd.testing import ManualClock
from tests.helpers import eventually

from .conftest import SHOW_TASKS, FakeSnowflake, ts

SUSPENDED_TASK = [ts(-86_400), "T_FACTS", "id", "DB", "PIPE", "SYSADMIN", "", "WH", "1 MINUTE", "[]",
                  "suspended", "INSERT INTO DB.PIPE.FACTS SELECT * FROM DB.PIPE.S", None, "false",
                  None, None, None, "ROLE", None, "USER_SUSPENDED"]  # fmt: skip


def _reconciler(sql: SqlRunner, clock: ManualClock, metrics: Metrics, **config: Any) -> Reconciler:
    checks = {name: CHECKS[name] for name in ("channel", "task")}
    return Reconciler(
        ReconcilerConfig.model_validate(config),
        sql,
        clock,
        metrics,
        databases=["DB"],
        checks=checks,
    )


class _View:
    """The admin endpoint's view of a daemon that has only a reconciler."""

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler

    def status(self) -> dict[str, Any]:
        return {"reconciler": self.reconciler.status()}

    def readiness(self) -> list[str]:
        return []

    def refresh_gauges(self) -> None:
        pass

    def health_reasons(self) -> list[str]:
        return self.reconciler.health_reasons()


async def _healthz(reconciler: Reconciler, metrics: Metrics) -> httpx.Response:
    app = build_app(_View(reconciler), metrics)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://a"
    ) as http:
        return await http.get("/healthz")


async def test_a_suspended_task_is_raised_then_cleared(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    metrics = Metrics()
    tasks = [SUSPENDED_TASK]
    fake.answer(r"^SHOW TASKS", SHOW_TASKS, lambda: tasks)
    fake.answer(r"TASK_HISTORY", [("NAME", "text")], [])
    reconciler = _reconciler(sql, clock, metrics)
    assert (await _healthz(reconciler, metrics)).json() == {"status": "ok"}

    with capture_logs() as logs:
        report = await reconciler.run_cycle()
    assert [(f.check, f.object, f.severity) for f in report.findings] == [
        ("task", "DB.PIPE.T_FACTS", "critical")
    ]
    raised = [e for e in logs if e["event"] == "finding_raised"]
    assert len(raised) == 1
    assert raised[0]["log_level"] == "error"
    assert raised[0]["object"] == "DB.PIPE.T_FACTS"
    assert "ALTER TASK DB.PIPE.T_FACTS RESUME" in raised[0]["action"]
    health = await _healthz(reconciler, metrics)
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["reasons"] == [
        "task DB.PIPE.T_FACTS: task is suspended (USER_SUSPENDED); nothing downstream of it moves"
    ]
    labels = {"check": "task", "object": "DB.PIPE.T_FACTS", "severity": "critical"}
    assert metrics.value("streamd_reconciler_finding_active", **labels) == 1
    assert metrics.value("streamd_reconciler_findings", severity="critical") == 1

    # The next cycle sees the same problem: no new event, first_seen kept.
    clock.advance(60)
    with capture_logs() as logs:
        report = await reconciler.run_cycle()
    assert not [e for e in logs if e["event"].startswith("finding_")]
    assert report.findings[0].first_seen == clock.wall() - 60

    tasks[0] = [*SUSPENDED_TASK[:10], "started", *SUSPENDED_TASK[11:]]
    clock.advance(60)
    with capture_logs() as logs:
        report = await reconciler.run_cycle()
    assert report.findings == ()
    cleared = [e for e in logs if e["event"] == "finding_cleared"]
    assert [(e["object"], e["log_level"]) for e in cleared] == [("DB.PIPE.T_FACTS", "info")]
    assert (await _healthz(reconciler, metrics)).json() == {"status": "ok"}
    assert metrics.registry.get_sample_value("streamd_reconciler_finding_active", labels) is None
    assert metrics.value("streamd_reconciler_findings", severity="critical") == 0
    assert metrics.value("streamd_reconciler_cycles", outcome="complete") == 3


async def test_a_failing_query_is_a_warning_not_a_crash(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    metrics = Metrics()
    fake.fail(r"^SHOW TASKS", message="Insufficient privileges to operate on database 'DB'")
    report = await _reconciler(sql, clock, metrics).run_cycle()
    [finding] = report.findings
    assert (finding.check, finding.severity, finding.object) == ("task", "warning", "database DB")
    assert "Insufficient privileges" in finding.message
    assert metrics.value("streamd_reconciler_query_failures", check="task") == 1
    assert report.degraded_reasons == []


async def test_a_check_past_the_cycle_deadline_keeps_its_last_findings(
    clock: ManualClock,
) -> None:
    hang = anyio.Event()
    calls = 0

    async def slow(sql: SqlRunner, clock: Any, ctx: CheckContext) -> list[Finding]:
        nonlocal calls
        calls += 1
        if calls > 1:
            await hang.wait()  # never set: the cycle deadline must end it
        return [Finding("task", "critical", "DB.PIPE.T", "task is suspended", "resume it")]

    async def quick(sql: SqlRunner, clock: Any, ctx: CheckContext) -> list[Finding]:
        return []

    metrics = Metrics()
    config = ReconcilerConfig(cycle_timeout_s=0.2)
    reconciler = Reconciler(
        config, _NoSql(), clock, metrics, databases=[], checks={"task": slow, "channel": quick}
    )
    first = await reconciler.run_cycle()
    assert [f.key for f in first.findings] == [("task", "DB.PIPE.T")]
    with anyio.fail_after(10):
        second = await reconciler.run_cycle()
    assert {f.key for f in second.findings} == {("task", "DB.PIPE.T"), ("reconciler", "check task")}
    assert "did not finish within reconciler.cycle_timeout_s (0.2 s)" in second.findings[1].message
    assert second.findings[0].first_seen == first.findings[0].first_seen
    assert metrics.value("streamd_reconciler_cycles", outcome="timed_out") == 1


async def test_a_crashing_check_is_a_warning_and_the_others_still_report(
    clock: ManualClock,
) -> None:
    async def broken(sql: SqlRunner, clock: Any, ctx: CheckContext) -> list[Finding]:
        raise KeyError("stale_after")

    async def fine(sql: SqlRunner, clock: Any, ctx: CheckContext) -> list[Finding]:
        return [Finding("task", "warning", "DB.PIPE.T", "late", "look")]

    reconciler = Reconciler(
        ReconcilerConfig(), _NoSql(), clock, Metrics(), databases=[],
        checks={"stream": broken, "task": fine},
    )  # fmt: skip
    with capture_logs() as logs:
        report = await reconciler.run_cycle()
    assert {f.key for f in report.findings} == {
        ("reconciler", "check stream"),
        ("task", "DB.PIPE.T"),
    }
    assert any(e["event"] == "reconciler_check_crashed" for e in logs)


@pytest.mark.parametrize("enabled", [True, False])
async def test_remediation_runs_only_when_switched_on(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake, enabled: bool
) -> None:
    fake.answer(r"^SHOW TASKS", SHOW_TASKS, [SUSPENDED_TASK])
    fake.answer(r"TASK_HISTORY", [("NAME", "text")], [])
    fake.answer(r"^ALTER TASK", [("status", "text")], [["Statement executed successfully."]])
    metrics = Metrics()
    reconciler = _reconciler(sql, clock, metrics, remediation={"resume_suspended_tasks": enabled})
    await reconciler.run_cycle()
    resumed = [s for s in fake.statements if s.startswith("ALTER TASK")]
    assert resumed == (["ALTER TASK DB.PIPE.T_FACTS RESUME"] if enabled else [])
    assert metrics.value(
        "streamd_reconciler_remediations", kind="resume_task", outcome="applied"
    ) == (1 if enabled else 0)


async def test_run_repeats_every_interval_and_next_report_waits_for_a_cycle(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    fake.answer(r"^SHOW TASKS", SHOW_TASKS, [])
    reconciler = _reconciler(sql, clock, Metrics(), interval_s=30)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reconciler.run)
        with anyio.fail_after(10):
            first = await reconciler.next_report()
            assert first.cycles == 1
            # The loop's sleep registers on the ManualClock right after the cycle.
            await eventually(lambda: clock.sleepers > 0, interval=0)
            clock.advance(30)
            second = await reconciler.next_report()
        assert second.cycles == 2
        tg.cancel_scope.cancel()


def test_inspect_renders_findings_and_freshness_in_80_columns() -> None:
    reconciler_status = {
        "enabled": True,
        "cycles": 4,
        "cycle_started": 1_763_900_000.0,
        "cycle_s": 0.42,
        "counts": {"critical": 1, "warning": 1, "info": 0},
        "findings": [
            {
                "check": "task",
                "severity": "critical",
                "object": "MANUFACTURING_DEMO.PIPELINE.TASK_LOAD_SENSOR_FACTS_FROM_STREAM",
                "message": "task is suspended (USER_SUSPENDED); nothing downstream of it moves",
                "action": "fix what suspended it, then ALTER TASK "
                "MANUFACTURING_DEMO.PIPELINE.TASK_LOAD_SENSOR_FACTS_FROM_STREAM RESUME",
                "first_seen": 1_763_899_880.0,
            },
            {
                "check": "stream",
                "severity": "warning",
                "object": "MANUFACTURING_DEMO.PIPELINE.SENSOR_STREAM",
                "message": "stream goes stale in 3.0 h (STALE_AFTER) unless it is consumed",
                "action": "run the task that reads it (none found) or consume it with DML",
                "first_seen": 1_763_899_990.0,
            },
        ],
        "freshness": [
            {
                "source": "manufacturing",
                "table": "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW",
                "final": "MANUFACTURING_DEMO.ANALYTICS.FACT_SENSOR_READINGS",
                "target_s": 300,
                "lag_s": 42.5,
                "newest_visible": 1_763_899_957.5,
            }
        ],
    }
    text = render({"reconciler": reconciler_status})
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    findings = lines[lines.index(next(x for x in lines if x.startswith("FINDINGS"))) :]
    assert findings[0] == "FINDINGS  1 critical, 1 warning  (cycle 4 at 12:13:20, 0.42 s)"
    assert findings[1].startswith("CRIT task …")
    assert findings[1].endswith("TASK_LOAD_SENSOR_FACTS_FROM_STREAM since 12:11:20")
    assert findings[2] == "  task is suspended (USER_SUSPENDED); nothing downstream of it moves"
    assert findings[3].startswith("  → fix what suspended it, then ALTER TASK")
    assert "WARN stream MANUFACTURING_DEMO.PIPELINE.SENSOR_STREAM since 12:13:10" in findings
    # Too long with the database: the database is dropped rather than the table cut.
    assert findings[-1].split() == [
        "manufacturing:",
        "ANALYTICS.FACT_SENSOR_READINGS",
        "42.5",
        "300",
    ]
    assert "reconciler disabled" in render({"reconciler": {"enabled": False}})


class _NoSql:
    async def execute(self, statement: str, *, timeout_s: int = 60) -> Any:
        raise AssertionError(f"no SQL expected, got {statement}")
