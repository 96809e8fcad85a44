"""LATERAL FLATTEN rewritten for DuckDB: VALUE and INDEX per array element; other forms refused."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot

from streamd.standin.sql.engine import SqlFailure, translate_expr
from streamd.standin.sql.flatten import rewrite


def _duckdb(sql: str) -> str:
    return translate_expr(rewrite(None, sqlglot.parse_one(sql, read="snowflake"), False))  # type: ignore[arg-type]


def test_flatten_rows_values_and_indexes() -> None:
    con = duckdb.connect(":memory:")
    con.execute("CREATE TABLE T (ID INT, ITEMS JSON)")
    con.execute(
        """INSERT INTO T VALUES (1, '[{"q": 2, "p": 1.25}, {"q": 1, "p": 4}]'), (2, '[]')"""
    )
    sql = _duckdb(
        "SELECT t.ID, f.INDEX, (f.VALUE:q::NUMBER(6, 0) * f.VALUE:p::NUMBER(10, 2))::NUMBER(12, 2) "
        "FROM T t, LATERAL FLATTEN(INPUT => t.ITEMS) f ORDER BY 1, 2"
    )
    rows = con.execute(sql).fetchall()
    assert [(r[0], r[1], str(r[2])) for r in rows] == [(1, 0, "2.50"), (1, 1, "4.00")]


def test_flatten_options_are_refused() -> None:
    with pytest.raises(SqlFailure, match="only INPUT"):
        _duckdb("SELECT f.VALUE FROM T t, LATERAL FLATTEN(PATH => 'a') f")
