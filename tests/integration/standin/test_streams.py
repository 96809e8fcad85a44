"""Streams on the stand-in over the SQL API: change rows, offsets, ISUPDATE pairs, staleness."""

from __future__ import annotations

import anyio
import pytest

from streamd.errors import SqlError
from streamd.standin.server import Standin
from tests.conftest import StandinFactory
from tests.integration.standin.sql_client import rows, script, sql_client

from .conftest import connect
from .test_streaming_contract import append, ndjson, open_channel, row, wait_committed

SETUP = """
CREATE DATABASE D;
CREATE SCHEMA D.S;
CREATE TABLE D.S.T (ID NUMBER, NAME VARCHAR);
CREATE TABLE D.S.SINK (ID NUMBER, NAME VARCHAR, ACTION VARCHAR, ISUPDATE BOOLEAN);
INSERT INTO D.S.T VALUES (1, 'a'), (2, 'b'), (3, 'c');
CREATE STREAM D.S.ST ON TABLE D.S.T;
"""
CONSUME = "INSERT INTO D.S.SINK SELECT ID, NAME, METADATA$ACTION, METADATA$ISUPDATE FROM D.S.ST"
CHANGES = "SELECT ID, NAME, METADATA$ACTION AS A, METADATA$ISUPDATE AS U FROM D.S.ST ORDER BY ID, A"


async def test_select_does_not_advance_and_insert_select_does(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        assert await rows(c, CHANGES) == []  # created after the first rows: empty
        await c.execute("INSERT INTO D.S.T VALUES (4, 'd'), (5, 'e')")
        first = await rows(c, CHANGES)
        assert first == [
            {"ID": 4, "NAME": "d", "A": "INSERT", "U": False},
            {"ID": 5, "NAME": "e", "A": "INSERT", "U": False},
        ]
        assert await rows(c, CHANGES) == first  # a SELECT leaves the offset alone
        result = await c.execute(CONSUME)
        assert result.stats == {"numRowsInserted": 2}
        assert await rows(c, CHANGES) == []
        assert await rows(c, "SELECT count(*) AS N FROM D.S.SINK") == [{"N": 2}]


async def test_update_is_a_delete_insert_pair_and_delete_nets_out(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        await script(
            c,
            "UPDATE D.S.T SET NAME = 'B' WHERE ID = 2; DELETE FROM D.S.T WHERE ID = 3; "
            "INSERT INTO D.S.T VALUES (9, 'z'); DELETE FROM D.S.T WHERE ID = 9",
        )
        assert await rows(c, CHANGES) == [
            {"ID": 2, "NAME": "b", "A": "DELETE", "U": True},
            {"ID": 2, "NAME": "B", "A": "INSERT", "U": True},
            {"ID": 3, "NAME": "c", "A": "DELETE", "U": False},
        ]
        ids = await rows(c, "SELECT DISTINCT METADATA$ROW_ID AS R FROM D.S.ST WHERE ID = 2")
        assert len(ids) == 1  # the pair shares its row id


async def test_failed_or_rolled_back_dml_leaves_the_offset(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        await c.execute("INSERT INTO D.S.T VALUES (4, 'd')")
        await script(c, f"BEGIN; {CONSUME}; ROLLBACK")
        with pytest.raises(SqlError):
            # Fails at run time (cast), after reading the stream.
            await c.execute(
                "INSERT INTO D.S.SINK SELECT ID / 0, CAST(NAME AS INT), 'x', false FROM D.S.ST"
            )
        assert len(await rows(c, CHANGES)) == 1
        # Inside one transaction both reads see the same change set; commit consumes it.
        await script(c, f"BEGIN; {CONSUME}; {CONSUME}; COMMIT")
        assert await rows(c, "SELECT count(*) AS N FROM D.S.SINK") == [{"N": 2}]
        assert await rows(c, CHANGES) == []


async def test_append_only_stream_ignores_updates_and_deletes(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP + "CREATE OR REPLACE STREAM D.S.AO ON TABLE D.S.T APPEND_ONLY = TRUE")
        await script(
            c,
            "UPDATE D.S.T SET NAME = 'x'; DELETE FROM D.S.T WHERE ID = 1; "
            "INSERT INTO D.S.T VALUES (7, 'g')",
        )
        assert await rows(c, "SELECT ID, METADATA$ACTION AS A FROM D.S.AO") == [
            {"ID": 7, "A": "INSERT"}
        ]


async def test_stream_has_data_and_staleness(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        probe = "SELECT SYSTEM$STREAM_HAS_DATA('D.S.ST') AS H"
        assert await rows(c, probe) == [{"H": False}]
        await c.execute("INSERT INTO D.S.T VALUES (4, 'd')")
        assert await rows(c, probe) == [{"H": True}]
        # Retention of 0 days: the unconsumed offset is stale at once.
        await c.execute(
            "ALTER TABLE D.S.T SET DATA_RETENTION_TIME_IN_DAYS = 0 "
            "MAX_DATA_EXTENSION_TIME_IN_DAYS = 0"
        )
        with pytest.raises(SqlError) as err:
            await c.execute(CHANGES)
        assert "stale" in str(err.value)


async def test_show_streams_reports_mode_table_and_stale_after(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP + "CREATE STREAM D.S.AO ON TABLE D.S.T APPEND_ONLY = TRUE")
        shown = {s["name"]: s for s in await rows(c, "SHOW STREAMS IN DATABASE D")}
        assert set(shown) == {"ST", "AO"}
        default = await rows(c, "SHOW STREAMS", database="D")  # no IN: the current database
        assert sorted(s["name"] for s in default) == ["AO", "ST"]
        st = shown["ST"]
        assert (st["mode"], shown["AO"]["mode"]) == ("DEFAULT", "APPEND_ONLY")
        assert st["table_name"] == "D.S.T"
        assert st["type"] == "DELTA"
        assert st["stale"] == "false"
        # Default retention: max(1 day, 14 days extension) after the offset (§5.1).
        assert (
            13.99 * 86400
            < st["stale_after"].timestamp() - st["created_on"].timestamp()
            < 14.01 * 86400
        )
        await c.execute("ALTER TABLE D.S.T SET MAX_DATA_EXTENSION_TIME_IN_DAYS = 2")
        st = (await rows(c, "SHOW STREAMS LIKE 's%' IN SCHEMA D.S"))[0]
        assert st["name"] == "ST"
        assert (
            1.99 * 86400
            < st["stale_after"].timestamp() - st["created_on"].timestamp()
            < 2.01 * 86400
        )
        await c.execute(
            "ALTER TABLE D.S.T SET DATA_RETENTION_TIME_IN_DAYS = 0 MAX_DATA_EXTENSION_TIME_IN_DAYS = 0"
        )
        assert [s["stale"] for s in await rows(c, "SHOW STREAMS IN ACCOUNT")] == ["true", "true"]
        await c.execute("CREATE OR REPLACE STREAM D.S.ST ON TABLE D.S.T")
        with pytest.raises(SqlError):
            await c.execute("CREATE STREAM D.S.ST ON TABLE D.S.T")
        await c.execute("DROP STREAM D.S.ST")
        assert [s["name"] for s in await rows(c, "SHOW STREAMS IN DATABASE D")] == ["AO"]


async def test_rows_committed_by_snowpipe_streaming_appear_in_the_stream(standin: Standin) -> None:
    table = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
    async with sql_client(standin) as c, connect(standin) as http:
        await c.execute(
            f"CREATE STREAM MANUFACTURING_DEMO.RAW_DATA.S ON TABLE {table} APPEND_ONLY = TRUE"
        )
        opened = await open_channel(http, "c1")
        r = await append(
            http, "c1", opened["next_continuation_token"], ndjson(row("a"), row("b")), "2"
        )
        assert r.status_code == 200
        await wait_committed(http, "c1", "2")
        seen = await rows(
            c, "SELECT EVENT_ID, METADATA$ACTION AS A FROM MANUFACTURING_DEMO.RAW_DATA.S ORDER BY 1"
        )
        assert seen == [{"EVENT_ID": "a", "A": "INSERT"}, {"EVENT_ID": "b", "A": "INSERT"}]
        await c.execute(
            "CREATE TABLE MANUFACTURING_DEMO.RAW_DATA.SEEN AS SELECT EVENT_ID FROM MANUFACTURING_DEMO.RAW_DATA.S"
        )  # CTAS consumes the stream (§5.3)
        assert await rows(c, "SELECT count(*) AS N FROM MANUFACTURING_DEMO.RAW_DATA.S") == [
            {"N": 0}
        ]
        assert await rows(c, "SELECT count(*) AS N FROM MANUFACTURING_DEMO.RAW_DATA.SEEN") == [
            {"N": 2}
        ]


async def test_select_then_dml_in_one_transaction_consumes_once(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        await c.execute("INSERT INTO D.S.T VALUES (4, 'd')")
        await script(
            c, f"BEGIN; SELECT * FROM D.S.ST; INSERT INTO D.S.T VALUES (5, 'e'); {CONSUME}; COMMIT"
        )
        # The change set was fixed at the first read: row 5 (inserted later in the transaction)
        # was not exported, and the offset moved only past what was read.
        assert await rows(c, "SELECT ID FROM D.S.SINK") == [{"ID": 4}]
        assert await rows(c, "SELECT ID FROM D.S.ST") == [{"ID": 5}]
        await script(c, "BEGIN; SELECT * FROM D.S.ST; COMMIT")  # a SELECT-only commit: no move
        assert await rows(c, "SELECT ID FROM D.S.ST") == [{"ID": 5}]


async def test_retention_from_create_table_and_has_data_renews_an_empty_stream(
    standin: Standin,
) -> None:
    async with sql_client(standin) as c:
        await script(
            c,
            "CREATE DATABASE D; CREATE SCHEMA D.S; "
            "CREATE TABLE D.S.R (ID NUMBER) DATA_RETENTION_TIME_IN_DAYS = 0 "
            "MAX_DATA_EXTENSION_TIME_IN_DAYS = 1; "
            "ALTER TABLE D.S.R SET CHANGE_TRACKING = TRUE; CREATE STREAM D.S.RS ON TABLE D.S.R",
        )
        show = "SHOW STREAMS LIKE 'RS' IN DATABASE D"
        first = (await rows(c, show))[0]
        lead = first["stale_after"].timestamp() - first["created_on"].timestamp()
        assert 0.99 * 86400 < lead < 1.01 * 86400
        await anyio.sleep(0.2)
        # An empty stream probed with SYSTEM$STREAM_HAS_DATA moves its staleness forward (§5.2) …
        assert await rows(c, "SELECT SYSTEM$STREAM_HAS_DATA('D.S.RS') AS H") == [{"H": False}]
        renewed = (await rows(c, show))[0]["stale_after"]
        assert renewed > first["stale_after"]
        # … one with data does not.
        await c.execute("INSERT INTO D.S.R VALUES (1)")
        assert await rows(c, "SELECT SYSTEM$STREAM_HAS_DATA('D.S.RS') AS H") == [{"H": True}]
        assert (await rows(c, show))[0]["stale_after"] == renewed
        with pytest.raises(SqlError) as err:
            await c.execute("ALTER TABLE D.S.R SET DATA_RETENTION_TIME_IN_DAYS = 'x'")
        assert err.value.code == "000002"


async def test_append_only_stream_sees_rows_after_the_table_was_emptied(
    make_standin: StandinFactory,
) -> None:
    first = make_standin()
    async with sql_client(first) as c:
        await script(c, SETUP + "CREATE STREAM D.S.AO ON TABLE D.S.T APPEND_ONLY = TRUE")
        await script(c, "INSERT INTO D.S.T VALUES (4, 'd'); DELETE FROM D.S.T")
        assert await rows(c, "SELECT ID FROM D.S.AO") == []  # inserted, then deleted: nothing
    make_standin.stop(first)  # checkpoints: DuckDB may now hand out the emptied table's row ids
    second = make_standin()
    async with sql_client(second) as c:
        await c.execute("INSERT INTO D.S.T VALUES (7, 'g'), (8, 'h')")
        assert await rows(c, "SELECT ID FROM D.S.AO ORDER BY ID") == [{"ID": 7}, {"ID": 8}]
        # The standard stream reports the emptying as deletes and the new rows as inserts, not
        # as updates of the rows whose ids DuckDB handed out again.
        changes = await rows(
            c,
            "SELECT ID, METADATA$ACTION AS A, METADATA$ISUPDATE AS U, METADATA$ROW_ID AS R "
            "FROM D.S.ST ORDER BY ID, A",
        )
        assert [(r["ID"], r["A"], r["U"]) for r in changes] == [
            (1, "DELETE", False),
            (2, "DELETE", False),
            (3, "DELETE", False),
            (7, "INSERT", False),
            (8, "INSERT", False),
        ]
        assert len({r["R"] for r in changes}) == 5
        await c.execute(CONSUME)
        assert await rows(c, "SELECT count(*) AS N FROM D.S.ST") == [{"N": 0}]
        await c.execute("DELETE FROM D.S.T WHERE ID = 7")
        assert await rows(c, CHANGES) == [{"ID": 7, "NAME": "g", "A": "DELETE", "U": False}]
        # A row keeps its row id from insert to delete.
        inserted_7 = next(r["R"] for r in changes if r["ID"] == 7)
        assert await rows(c, "SELECT METADATA$ROW_ID AS R FROM D.S.ST") == [{"R": inserted_7}]
