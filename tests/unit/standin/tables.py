"""Sample tables and a sample pipe shared by the stand-in's unit tests."""

from __future__ import annotations

import sqlglot

from streamd.standin.snowpipe.pipes import PipeSpec, parse_create_pipe
from streamd.standin.storage.ddl import ColumnSpec, RunSql, TableSpec, translate


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


PIPE_TABLE = TableSpec(
    "DB",
    "S",
    "T",
    (
        ColumnSpec("ID", "fixed", nullable=False, precision=38, scale=0),
        ColumnSpec("NAME", "text"),
    ),
)


def json_pipe(options: str = "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE") -> PipeSpec:
    """A pipe copying JSON from a stage into `PIPE_TABLE`, with `options` after its COPY."""
    parsed = parse_create_pipe(
        "CREATE OR REPLACE PIPE p AUTO_INGEST = FALSE AS COPY INTO t FROM @st/sub "
        f"FILE_FORMAT = (TYPE = JSON STRIP_OUTER_ARRAY = TRUE) {options}",
        "db",
        "s",
    )
    assert parsed is not None
    return parsed.spec
