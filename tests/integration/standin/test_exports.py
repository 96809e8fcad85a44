"""CDC exports on the stand-in, with the shipped sql/cdc statements: a standard stream on the SCD1
customer table feeds an Iceberg table (DELETE then MERGE, read back with pyiceberg) and Parquet
files in a stage (COPY INTO, read back with pyarrow), across an insert, an update and a delete."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import StaticTable

from streamd.cli.setup import Planned, plan
from streamd.errors import SqlError
from streamd.snowflake.sql_api import SqlApiClient
from streamd.standin.server import Standin
from tests.conftest import REPO, StandinFactory
from tests.integration.standin.conftest import connect
from tests.integration.standin.sql_client import rows, script, sql_client

RETAIL_SQL = REPO / "sql" / "retail"


def _body(item: Planned) -> str:
    """A task's body: the text after its `AS` line, without a BEGIN … END wrapper."""
    body = item.text.split("\nAS\n", 1)[1].strip()
    if body.upper().startswith("BEGIN") and body.upper().endswith("END"):
        body = body[len("BEGIN") : -len("END")]
    return body


async def _objects(client: SqlApiClient) -> dict[str, str]:
    """Run the customers/cdc DDL (not the tasks); return the task bodies by task name."""
    bodies: dict[str, str] = {}
    for item in plan(["retail", "customers", "cdc"]):
        head = " ".join(item.text.split()[:5]).upper()
        if "TASK" in head:
            if head.startswith("CREATE"):
                bodies[item.text.split()[4].split(".")[-1]] = _body(item)
            continue
        await client.execute(item.text)
    return bodies


async def test_cdc_to_iceberg_and_parquet(make_standin: StandinFactory) -> None:
    standin: Standin = make_standin(sql_dirs=(RETAIL_SQL,))
    data_dir: Path = standin.settings.data_dir
    customers = "RETAIL_DEMO.CURATED.CUSTOMERS"
    async with sql_client(standin) as c:
        bodies = await _objects(c)
        to_iceberg, to_parquet = bodies["TASK_CDC_TO_ICEBERG"], bodies["TASK_CDC_TO_PARQUET"]

        await c.execute(
            f"INSERT INTO {customers} (CUSTOMER_ID, NAME, EMAIL, CITY, TIER, UPDATED_AT) VALUES "
            "('C1', 'Ann', 'a@x', 'Oslo', 'GOLD', '2026-01-01 10:00:00'), "
            "('C2', 'Bob', 'b@x', 'Rome', 'BRONZE', '2026-01-01 10:00:00'), "
            "('C3', 'Cid', 'c@x', 'Lima', 'SILVER', '2026-01-01 10:00:00')"
        )
        await script(c, to_iceberg)
        await c.execute(to_parquet)
        # Consumed: the streams are empty, and a second run exports nothing more.
        has = await rows(
            c, "SELECT SYSTEM$STREAM_HAS_DATA('RETAIL_DEMO.CDC.CUSTOMERS_PARQUET_STREAM') AS H"
        )
        assert has == [{"H": False}]

        await c.execute(f"UPDATE {customers} SET CITY = 'Bergen' WHERE CUSTOMER_ID = 'C1'")
        await c.execute(f"DELETE FROM {customers} WHERE CUSTOMER_ID = 'C2'")
        await script(c, to_iceberg)
        await c.execute(to_parquet)

        info = await rows(
            c, "SELECT SYSTEM$GET_ICEBERG_TABLE_INFORMATION('RETAIL_DEMO.CDC.CUSTOMERS_ICEBERG')"
        )
        listing = await rows(c, "LIST @RETAIL_DEMO.CDC.CDC_EXPORT_STAGE/customers/")
        mirror = await rows(
            c, "SELECT CUSTOMER_ID, CITY FROM RETAIL_DEMO.CDC.CUSTOMERS_ICEBERG ORDER BY 1"
        )

    assert mirror == [
        {"CUSTOMER_ID": "C1", "CITY": "Bergen"},
        {"CUSTOMER_ID": "C3", "CITY": "Lima"},
    ]

    # The Iceberg table, read by an Iceberg reader: through the catalog and the metadata file.
    catalog = SqlCatalog(
        "standin",  # the catalog name the stand-in registered its tables under
        uri=f"sqlite:///{data_dir / 'iceberg' / 'catalog.db'}",
        warehouse=(data_dir / "iceberg" / "warehouse").as_uri(),
    )
    table = catalog.load_table(("RETAIL_DEMO", "CDC", "CUSTOMERS_ICEBERG"))
    current = sorted(
        (r["CUSTOMER_ID"], r["CITY"], r["TIER"]) for r in table.scan().to_arrow().to_pylist()
    )
    assert current == [("C1", "Bergen", "GOLD"), ("C3", "Lima", "SILVER")]
    # One commit per task run: an append, then an overwrite (pyiceberg: delete + append snapshots).
    assert len(table.snapshots()) == 3
    location = orjson.loads(next(iter(info[0].values())))
    assert location["status"] == "success"
    static = StaticTable.from_metadata(location["metadataLocation"])
    assert static.scan().to_arrow().num_rows == 2

    # The Parquet CDC files: one per run, ADD ×3 then UPDATE C1 and DELETE C2.
    assert len(listing) == 2
    assert all(r["name"].endswith(".snappy.parquet") for r in listing)
    assert all(r["last_modified"].endswith("GMT") for r in listing)
    stage_dir = data_dir / "stages" / "RETAIL_DEMO" / "CDC" / "CDC_EXPORT_STAGE"
    files = [stage_dir / r["name"].split("/", 1)[1] for r in listing]
    runs = [pq.read_table(f).to_pylist() for f in files]
    runs.sort(key=len, reverse=True)
    assert sorted((r["CUSTOMER_ID"], r["OP_TYPE"]) for r in runs[0]) == [
        ("C1", "ADD"),
        ("C2", "ADD"),
        ("C3", "ADD"),
    ]
    assert sorted((r["CUSTOMER_ID"], r["OP_TYPE"], r["CITY"]) for r in runs[1]) == [
        ("C1", "UPDATE", "Bergen"),
        ("C2", "DELETE", "Rome"),
    ]

    # DROP removes the mirror, the registry entry and the Iceberg table.
    async with sql_client(standin) as c:
        await c.execute("DROP ICEBERG TABLE RETAIL_DEMO.CDC.CUSTOMERS_ICEBERG")
        left = await rows(c, "SHOW TABLES LIKE 'CUSTOMERS_ICEBERG' IN SCHEMA RETAIL_DEMO.CDC")
    assert left == []
    assert not catalog.table_exists(("RETAIL_DEMO", "CDC", "CUSTOMERS_ICEBERG"))


async def test_copy_into_stage_options(make_standin: StandinFactory) -> None:
    standin: Standin = make_standin(sql_dirs=(RETAIL_SQL,))
    stage_dir = standin.settings.data_dir / "stages" / "RETAIL_DEMO" / "CURATED" / "OUT"
    async with sql_client(standin) as c:
        await script(
            c,
            "CREATE STAGE RETAIL_DEMO.CURATED.OUT;"
            "CREATE TABLE RETAIL_DEMO.CURATED.T (ID NUMBER(4, 0), AT TIMESTAMP_NTZ, V VARIANT);"
            "INSERT INTO RETAIL_DEMO.CURATED.T SELECT 1, '2026-01-01 10:00:00', PARSE_JSON('{\"a\": 1}');"
            "INSERT INTO RETAIL_DEMO.CURATED.T SELECT 2, '2026-01-01 11:00:00', PARSE_JSON('[2]');",
        )
        detailed = await rows(
            c,
            "COPY INTO @RETAIL_DEMO.CURATED.OUT/run/part FROM (SELECT ID, AT, V FROM "
            "RETAIL_DEMO.CURATED.T ORDER BY ID) FILE_FORMAT = (TYPE = PARQUET COMPRESSION = NONE) "
            "DETAILED_OUTPUT = TRUE",
        )
        empty = await rows(
            c,
            "COPY INTO @RETAIL_DEMO.CURATED.OUT/empty/ FROM (SELECT * FROM RETAIL_DEMO.CURATED.T "
            "WHERE ID > 9) FILE_FORMAT = (TYPE = PARQUET) HEADER = TRUE",
        )
        refusals = []
        for statement in (
            "COPY INTO @RETAIL_DEMO.CURATED.OUT/x/ FROM RETAIL_DEMO.CURATED.T "
            "FILE_FORMAT = (TYPE = CSV)",
            "COPY INTO @RETAIL_DEMO.CURATED.OUT/x/ FROM (SELECT CURRENT_TIMESTAMP() AS T) "
            "FILE_FORMAT = (TYPE = PARQUET)",
            "COPY INTO @RETAIL_DEMO.CURATED.NOPE/x/ FROM RETAIL_DEMO.CURATED.T "
            "FILE_FORMAT = (TYPE = PARQUET)",
        ):
            with pytest.raises(SqlError) as err:
                await c.execute(statement)
            refusals.append(err.value.code)
    assert detailed == [{"FILE_NAME": "run/part_0_0_0.parquet", "FILE_SIZE": detailed[0]["FILE_SIZE"],
                         "ROW_COUNT": 2}]  # fmt: skip
    assert empty == [{"rows_unloaded": 0, "input_bytes": 0, "output_bytes": 0}]
    assert not (stage_dir / "empty").exists()  # zero rows write no file
    table = pq.read_table(stage_dir / "run" / "part_0_0_0.parquet")
    # HEADER = FALSE (the default) names the columns col1…; VARIANT is unloaded as JSON text.
    assert table.column_names == ["col1", "col2", "col3"]
    assert table.column("col3").to_pylist() == ['{"a":1}', "[2]"]
    assert refusals == ["000002", "100001", "002003"]


async def test_streamed_rows_reach_iceberg_metadata(make_standin: StandinFactory) -> None:
    """Rows that land through Snowpipe Streaming are in the metadata the info function returns."""
    standin: Standin = make_standin(sql_dirs=(RETAIL_SQL,))
    path = "databases/retail_demo/schemas/cdc/pipes/LIVE-STREAMING"
    async with sql_client(standin) as c:
        await script(
            c,
            "CREATE SCHEMA RETAIL_DEMO.CDC;"
            "CREATE ICEBERG TABLE RETAIL_DEMO.CDC.LIVE (ID VARCHAR, N NUMBER(10, 0)) "
            "CATALOG = 'SNOWFLAKE' EXTERNAL_VOLUME = 'V' BASE_LOCATION = 'live';",
        )
        async with connect(standin) as s:
            opened = await s.put(f"/v2/streaming/{path}/channels/c1", json={})
            assert opened.status_code == 200, opened.text
            token = opened.json()["next_continuation_token"]
            body = b'{"ID": "a", "N": 1}\n{"ID": "b", "N": 2}\n'
            appended = await s.post(
                f"/v2/streaming/data/{path}/channels/c1/rows",
                params={"continuationToken": token, "endOffsetToken": "2"},
                content=body,
            )
            assert appended.status_code == 200, appended.text
            with anyio.fail_after(30):
                while True:  # the stand-in commits after its commit delay
                    if await rows(c, "SELECT 1 FROM RETAIL_DEMO.CDC.LIVE WHERE ID = 'b'"):
                        break
                    await anyio.sleep(0.1)
        info = await rows(c, "SELECT SYSTEM$GET_ICEBERG_TABLE_INFORMATION('RETAIL_DEMO.CDC.LIVE')")
    location = orjson.loads(next(iter(info[0].values())))["metadataLocation"]
    table = StaticTable.from_metadata(location)
    assert sorted(r["ID"] for r in table.scan().to_arrow().to_pylist()) == ["a", "b"]
