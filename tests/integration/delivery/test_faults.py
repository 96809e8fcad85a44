"""One fault class at a time, injected by the stand-in: 0 rows lost, 0 rows duplicated."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from streamd.daemon.run import Daemon
from streamd.daemon.status import RunSummary
from streamd.errors import AuthError
from streamd.standin.faults import parse_fault_spec
from streamd.testing import standin_query

from .conftest import TABLES, RunAgainst, count_ids, daemon_config

FAULTS = {
    "429 with Retry-After": "append:429:p=0.05:retry_after=1",
    "429 without Retry-After": "append:429:p=0.1",
    "500 on append": "append:500:p=0.1",
    "503 on append": "append:503:p=0.1",
    "500 on status": "status:500:p=0.2",
    "409 on append": "append:409:p=0.05",
    "409 on open": "open:409:count=2",
    "410 failover": "append:410:p=0.03",
    "403 cured by a fresh token": "append:403:every=20",
    "reset before applied": "append:reset_before:p=0.05",
    "reset after applied": "append:reset_after:p=0.05",
    "slow responses": "*:slow=0.3:p=0.05",
    "channel invalidated": "append:invalidate:p=0.03",
    "commit delay with jitter": "commit_delay=0.2,commit_jitter=0.6",
}


@pytest.mark.parametrize("spec", FAULTS.values(), ids=FAULTS.keys())
async def test_exactly_once_under_fault(spec: str, make_standin, run_against: RunAgainst) -> None:  # type: ignore[no-untyped-def]
    """Three seconds of production under the fault, then a drain: table == distinct == produced."""
    standin = make_standin(faults=parse_fault_spec(spec))
    await run_against(standin, 3)
    if "commit_delay" not in spec:
        assert sum(standin.faults.counts().values()) > 0, "the fault never fired"


async def test_frozen_commits_then_release(make_standin, run_against: RunAgainst) -> None:  # type: ignore[no-untyped-def]
    """Nothing commits while frozen (the window fills, producers wait); after release all commit."""
    standin = make_standin()

    async def freeze_for_a_while() -> None:
        standin.faults.freeze_commits()
        await anyio.sleep(2)
        standin.faults.release_commits()

    async with anyio.create_task_group() as tg:
        tg.start_soon(freeze_for_a_while)
        summary = await run_against(standin, 3, max_inflight_batches=4)
    assert summary.uncommitted == 0


async def test_inflight_batches_hold_offsets_not_bodies(make_standin, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """While commits are frozen the window keeps offsets only (a replay reads the spool); all commit once."""
    standin = make_standin()
    standin.faults.freeze_commits()
    daemon = Daemon(daemon_config(standin, tmp_path / "state", max_inflight_batches=4))
    summaries: list[RunSummary] = []

    async def run() -> None:
        summaries.append(await daemon.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await daemon.ready.wait()
        await anyio.sleep(3)  # three seconds of production with nothing committing
        snapshots = [w.snapshot() for w in daemon.writers.values()]
        assert sum(s["inflight_batches"] for s in snapshots) >= 3, snapshots
        assert all(s["inflight_bytes"] == 0 for s in snapshots), snapshots
        standin.faults.release_commits()
        daemon.stop()
    [summary] = summaries
    assert summary.uncommitted == 0
    for table in TABLES:
        produced = summary.tables[table].produced
        assert count_ids(standin, table) == (produced, produced)


async def test_several_channels_per_table(make_standin, run_against: RunAgainst) -> None:  # type: ignore[no-untyped-def]
    """channels_per_table = 3 spreads producers over three channels, still exactly once."""
    standin = make_standin(faults=parse_fault_spec("append:reset_after:p=0.05"))
    await run_against(standin, 3, channels_per_table=3)
    channels = await anyio.to_thread.run_sync(
        channel_names, standin, "MANUFACTURING_DEMO._STANDIN.CHANNELS"
    )
    assert {c for c in channels if "SENSOR" in c} == {
        f"STREAMD_SENSOR_DATA_RAW_{i}" for i in range(3)
    }


def channel_names(standin, table: str) -> set[str | None]:  # type: ignore[no-untyped-def]
    return {row[0] for row in standin_query(standin.url, f"select CHANNEL_NAME from {table}")}


async def test_a_403_that_persists_stops_the_daemon_naming_the_grant(
    make_standin, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Every append refused even with a fresh token: fatal, with the grant to check, after a
    `daemon_stopped` line that says what was delivered and why it stopped."""
    standin = make_standin(faults=parse_fault_spec("append:403"))
    daemon = Daemon(daemon_config(standin, tmp_path / "state"))
    with capture_logs() as logs, pytest.raises(BaseExceptionGroup) as raised:
        await daemon.run(duration=5)
    auth = raised.value.subgroup(AuthError)
    assert auth is not None
    leaf: BaseException = auth
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    assert "INSERT grant" in str(leaf)
    [stopped] = [e for e in logs if e["event"] == "daemon_stopped"]
    assert stopped["error"].startswith("AuthError: ")
    assert set(stopped["tables"]) == set(TABLES)
