"""A sample table shared by the stand-in's DDL and row-parsing tests."""

from __future__ import annotations

import sqlglot

from streamd.standin.storage.ddl import RunSql, translate


def typed_table() -> RunSql:
    """A CREATE TABLE with one column of each Snowflake type family, translated for DuckDB."""
    [stmt] = sqlglot.parse(
        "CREATE TABLE IF NOT EXISTS db.s.t (id VARCHAR(4) NOT NULL, n NUMBER(5,2), f FLOAT, "
        "b BOOLEAN, ts TIMESTAMP_NTZ, v VARIANT, o OBJECT, a ARRAY) "
        "CLUSTER BY (id) COMMENT = 'x'",
        read="snowflake",
    )
    assert stmt is not None
    action = translate(stmt)
    assert isinstance(action, RunSql)
    return action
