"""SQL API on the stand-in: multi-statement requests, transactions, and refusing what it can't run."""

from __future__ import annotations

import pytest

from streamd.errors import SqlError
from streamd.standin.server import Standin
from tests.integration.standin.sql_client import rows, script, sql_client

SETUP = """
CREATE DATABASE D;
CREATE SCHEMA D.S;
CREATE TABLE D.S.T (ID NUMBER, NAME VARCHAR(10));
"""


async def test_multi_statement_runs_in_order_and_returns_handles(standin: Standin) -> None:
    async with sql_client(standin) as c:
        result = await c.execute(
            SETUP + "INSERT INTO D.S.T VALUES (1, 'a'), (2, 'b'); SELECT count(*) AS N FROM D.S.T",
            multi_statement_count=5,
        )
        assert result.rows == [["Multiple statements executed successfully."]]
        assert len(result.statement_handles) == 5
        assert await rows(c, "SELECT ID FROM D.S.T ORDER BY ID") == [{"ID": 1}, {"ID": 2}]


async def test_statement_count_mismatch_is_refused(standin: Standin) -> None:
    async with sql_client(standin) as c:
        with pytest.raises(SqlError) as err:
            await c.execute("SELECT 1; SELECT 2")
        assert err.value.code == "000008"
        assert "Actual statement count 2 did not match the desired statement count 1" in str(
            err.value
        )


async def test_failure_stops_the_script_and_earlier_statements_stay(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        with pytest.raises(SqlError) as err:
            await script(
                c,
                "INSERT INTO D.S.T VALUES (1, 'a');\nSELECT * FROM D.S.NOPE;\n"
                "INSERT INTO D.S.T VALUES (2, 'b')",
            )
        # Snowflake's multi-statement failure (§4.7), naming where it stopped.
        assert (err.value.code, err.value.sql_state) == ("100132", "P0000")
        assert "on line 2" in str(err.value)
        assert "NOPE" in str(err.value)
        assert await rows(c, "SELECT ID FROM D.S.T") == [{"ID": 1}]


async def test_explicit_transaction_rolls_back(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        await script(c, "BEGIN; INSERT INTO D.S.T VALUES (1, 'a'); ROLLBACK")
        await script(c, "BEGIN; INSERT INTO D.S.T VALUES (2, 'b'); COMMIT")
        # An open transaction at the end of a request is rolled back.
        await script(c, "BEGIN TRANSACTION; INSERT INTO D.S.T VALUES (3, 'c')")
        assert await rows(c, "SELECT ID FROM D.S.T") == [{"ID": 2}]


async def test_unknown_snowflake_statement_is_refused_not_skipped(standin: Standin) -> None:
    async with sql_client(standin) as c:
        with pytest.raises(SqlError) as err:
            await c.execute(
                "CREATE ALERT A WAREHOUSE = W SCHEDULE = '1 minute' IF (EXISTS "
                "(SELECT 1)) THEN SELECT 1"
            )
        assert err.value.code == "000002"
        assert err.value.sql_state == "0A000"


async def test_session_defaults_resolve_unqualified_names(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        await c.execute("INSERT INTO T VALUES (7, 'x')", database="D", schema="S")
        await script(c, "USE SCHEMA D.S; INSERT INTO T VALUES (8, 'y')")
        assert await rows(c, "SELECT sum(ID) AS S FROM D.S.T") == [{"S": 15}]
