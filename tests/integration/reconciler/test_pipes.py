"""Classic pipe health from SYSTEM$PIPE_STATUS, against the real stand-in."""

from __future__ import annotations

from streamd.snowflake.sql_api import SqlApiClient

from .conftest import reconciler

TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
PIPE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_FILES_PIPE"


async def test_a_running_pipe_is_quiet_and_a_dropped_one_is_a_warning(sql: SqlApiClient) -> None:
    await sql.execute("CREATE STAGE IF NOT EXISTS MANUFACTURING_DEMO.RAW_DATA.LANDING")
    await sql.execute(
        f"CREATE OR REPLACE PIPE {PIPE} AUTO_INGEST = FALSE AS COPY INTO {TABLE} "
        "FROM @MANUFACTURING_DEMO.RAW_DATA.LANDING FILE_FORMAT = (TYPE = JSON) "
        "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
    )
    watcher = reconciler(sql, [], pipes=[{"pipe": PIPE}])
    assert (await watcher.run_cycle()).findings == ()

    await sql.execute(f"DROP PIPE {PIPE}")
    [finding] = (await watcher.run_cycle()).findings
    assert (finding.check, finding.object, finding.severity) == ("pipe", PIPE, "warning")
    assert finding.failed_query
    assert f"SYSTEM$PIPE_STATUS('{PIPE}')" in finding.message
    assert "does not exist" in finding.message
