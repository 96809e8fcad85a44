"""Export and Iceberg findings against the real stand-in: files written by COPY INTO @stage (LIST,
SYSTEM$STREAM_HAS_DATA) and snapshots of a real Iceberg table (SYSTEM$GET_ICEBERG_TABLE_INFORMATION)."""

from __future__ import annotations

import anyio

from streamd.reconciler.loop import Reconciler
from streamd.snowflake.sql_api import SqlApiClient

from .conftest import reconciler

SCHEMA = "MANUFACTURING_DEMO.EXPORTS"
EXPORT = (
    f"COPY INTO @{SCHEMA}.OUT/orders/ FROM (SELECT ID, NOTE, METADATA$ACTION AS CDC_ACTION "
    f"FROM {SCHEMA}.ORDERS_STREAM) FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE"
)
MAX_AGE_S = 3.0
"""LIST's last_modified has whole seconds, so a fresh file can look up to 1 s old."""


async def _keys(watcher: Reconciler) -> set[tuple[str, str]]:
    return {f.key for f in (await watcher.run_cycle()).findings}


async def test_an_export_that_stops_is_reported_within_a_cycle_and_clears_when_it_runs(
    sql: SqlApiClient,
) -> None:
    """The export (COPY INTO @stage from a stream) runs, then stops while changes arrive: the next
    cycle reports it; running the export again clears it. An old file with no changes waiting
    is not a finding."""
    for statement in (
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"CREATE TABLE {SCHEMA}.ORDERS (ID INT, NOTE VARCHAR)",
        f"CREATE STREAM {SCHEMA}.ORDERS_STREAM ON TABLE {SCHEMA}.ORDERS",
        f"CREATE STAGE {SCHEMA}.OUT",
        f"INSERT INTO {SCHEMA}.ORDERS VALUES (1, 'first')",
        EXPORT,
    ):
        await sql.execute(statement)
    watcher = reconciler(
        sql,
        [],
        exports=[
            {
                "stage": f"@{SCHEMA}.OUT/orders/",
                "max_age_s": MAX_AGE_S,
                "stream": f"{SCHEMA}.ORDERS_STREAM",
            }
        ],
    )
    stopped = ("export", f"@{SCHEMA}.OUT/orders/")
    assert stopped not in await _keys(watcher)

    await anyio.sleep(MAX_AGE_S + 1)
    assert stopped not in await _keys(watcher), "the stream is consumed: no file is due"

    await sql.execute(f"INSERT INTO {SCHEMA}.ORDERS VALUES (2, 'second')")  # and no export runs
    report = await watcher.run_cycle()
    [finding] = [f for f in report.findings if f.key == stopped]
    assert finding.severity == "warning"
    assert f"while {SCHEMA}.ORDERS_STREAM has changes waiting" in finding.message

    await sql.execute(EXPORT)
    assert stopped not in await _keys(watcher)


async def test_an_iceberg_table_whose_snapshots_stop_is_reported_and_clears(
    sql: SqlApiClient,
) -> None:
    """Snapshot age is read from the metadata file the stand-in names (a real Iceberg table)."""
    table = f"{SCHEMA}.CUSTOMERS_ICEBERG"
    for statement in (
        f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
        f"CREATE ICEBERG TABLE {table} (ID INT, NAME VARCHAR) CATALOG = 'SNOWFLAKE' "
        "EXTERNAL_VOLUME = 'STREAMD_ICEBERG_VOLUME' BASE_LOCATION = 'customers'",
    ):
        await sql.execute(statement)
    watcher = reconciler(sql, [], iceberg=[{"table": table, "max_age_s": MAX_AGE_S}])
    empty = {f.key: f for f in (await watcher.run_cycle()).findings}
    if ("iceberg", table) in empty:
        assert empty["iceberg", table].message == "Iceberg table has no snapshot yet"

    await sql.execute(f"INSERT INTO {table} VALUES (1, 'ada')")
    assert ("iceberg", table) not in await _keys(watcher)

    await anyio.sleep(MAX_AGE_S + 0.5)  # the task that writes it stopped
    report = await watcher.run_cycle()
    [finding] = [f for f in report.findings if f.key == ("iceberg", table)]
    assert finding.message.startswith("newest snapshot is ")

    await sql.execute(f"INSERT INTO {table} VALUES (2, 'grace')")
    assert ("iceberg", table) not in await _keys(watcher)
