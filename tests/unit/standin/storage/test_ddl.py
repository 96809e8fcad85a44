"""Snowflake DDL as DuckDB plans: the column model is kept, what cannot run is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamd.standin.storage.ddl import (
    ColumnSpec,
    CreateDatabase,
    DdlError,
    RunSql,
    plan_file,
    sql_files,
)
from tests.conftest import REPO
from tests.unit.standin.tables import typed_table


def test_create_table_translation_keeps_snowflake_column_model() -> None:
    action = typed_table()
    assert action.table is not None
    assert "CLUSTER" not in action.sql.upper()
    assert "COMMENT" not in action.sql.upper()
    assert "VARIANT" not in action.sql.upper()
    assert action.sql.upper().count("JSON") == 3
    cols = {c.name: c for c in action.table.columns}
    assert (action.table.database, action.table.schema, action.table.name) == ("DB", "S", "T")
    assert cols["ID"] == ColumnSpec("ID", "text", nullable=False, length=4)
    assert cols["N"].kind == "fixed"
    assert (cols["N"].precision, cols["N"].scale) == (5, 2)
    assert cols["V"].kind == "variant"


def test_ddl_rejects_what_it_cannot_run(tmp_path: Path) -> None:
    bad = tmp_path / "x.sql"
    bad.write_text("CREATE DATABASE D;\nCREATE STREAM s ON TABLE D.S.T;\n")
    actions = plan_file(bad)
    assert next(actions) == CreateDatabase("D")
    with pytest.raises(DdlError, match=r"x\.sql.*STREAM"):
        next(actions)


def test_manufacturing_ddl_plans() -> None:
    # Only landing files (01_…09_) are loaded at start; pipelines (10_…) go through setup.
    files = sql_files([REPO / "sql" / "manufacturing"])
    assert [f.name for f in files] == ["01_database.sql", "02_raw_tables.sql"]
    actions = [a for f in files for a in plan_file(f)]
    tables = [a.table.name for a in actions if isinstance(a, RunSql) and a.table]
    assert tables == ["SENSOR_DATA_RAW", "PRODUCTION_DATA_RAW", "QUALITY_DATA_RAW"]
