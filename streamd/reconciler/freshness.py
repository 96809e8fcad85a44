"""End-to-end freshness per source: newest event produced → newest row visible at the end of its pipeline.

"Newest event produced" comes from the daemon (when a landing table's produced counter last grew);
"newest visible" is `MAX(<event-time column>)` of the final object. While a source produces, the
difference is how far the end of the pipeline trails real time.
"""

# ruff: noqa: S608 - names go through qualified()/ident(); they come from the validated config.

from __future__ import annotations

from streamd.clock import Clock
from streamd.errors import StreamdError
from streamd.reconciler.config import FreshnessTarget
from streamd.reconciler.context import CheckContext
from streamd.reconciler.query import (
    SqlRunner,
    age_text,
    epoch,
    graded,
    ident,
    qualified,
    query_failed,
    rows,
)
from streamd.reconciler.report import Finding, Freshness


async def measure_freshness(
    sql: SqlRunner, clock: Clock, ctx: CheckContext
) -> tuple[list[Freshness], list[Finding]]:
    """Every configured freshness, and the findings they (or failing queries) give."""
    samples: list[Freshness] = []
    findings: list[Finding] = []
    for target in ctx.config.freshness:
        statement = f"SELECT MAX({ident(target.column)}) AS NEWEST FROM {qualified(target.final)}"
        try:
            answer = await rows(sql, statement, ctx.config.query_timeout_s)
        except StreamdError as exc:
            findings.append(query_failed("freshness", _object(target), statement, exc))
            samples.append(
                Freshness(target.source, target.table, target.final, target.target_s, None, None)
            )
            continue
        visible = epoch(answer[0].get("newest")) if answer else None
        sample, finding = _judge(target, visible, ctx.produced_at(target.table), clock.wall(), ctx)
        samples.append(sample)
        if finding is not None:
            findings.append(finding)
    return samples, findings


async def check_freshness(sql: SqlRunner, clock: Clock, ctx: CheckContext) -> list[Finding]:
    """End-to-end freshness findings (the loop also publishes the measured values)."""
    return (await measure_freshness(sql, clock, ctx))[1]


def _judge(
    target: FreshnessTarget,
    visible: float | None,
    produced: tuple[float, float] | None,
    now: float,
    ctx: CheckContext,
) -> tuple[Freshness, Finding | None]:
    if produced is None:
        # Nothing produced in this run: nothing is owed to the end of the pipeline yet.
        return Freshness(
            target.source, target.table, target.final, target.target_s, None, visible
        ), None
    first, newest = produced
    if visible is None:
        waited = now - first
        lag = None
        grade = graded(waited, target.target_s, ctx.config.thresholds.critical_factor)
        message = f"no rows in {target.final} yet, {age_text(waited)} after the first event"
    else:
        lag = max(0.0, newest - visible)
        grade = graded(lag, target.target_s, ctx.config.thresholds.critical_factor)
        message = (
            f"{target.final} trails the newest event of {target.table} by {age_text(lag)} "
            f"(target {age_text(target.target_s)})"
        )
    sample = Freshness(target.source, target.table, target.final, target.target_s, lag, visible)
    if grade is None:
        return sample, None
    return sample, Finding(
        "freshness",
        grade,
        _object(target),
        message,
        "follow the pipeline from the landing table: look at the stream, task and dynamic-table "
        "findings for the objects between them",
    )


def _object(target: FreshnessTarget) -> str:
    return f"{target.source}: {target.final}"
