"""Internal stages: create/replace/drop, LIST with PATTERN and last_modified, REMOVE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from streamd.standin.objects.stages import (
    NamedStageError,
    StageRef,
    Stages,
    is_stage_statement,
    parse_stage_ref,
    run_stage_statement,
)


@pytest.fixture
def cur() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    con.execute("ATTACH ':memory:' AS D")
    con.execute("CREATE SCHEMA D.S")
    yield con
    con.close()


def test_parse_stage_ref_resolves_short_names() -> None:
    assert parse_stage_ref("@D.S.ST/cdc/x", None, None) == StageRef("D", "S", "ST", "cdc/x")
    assert parse_stage_ref("@st", "d", "s") == StageRef("D", "S", "ST", "")
    assert parse_stage_ref('@"My St"/a', "D", "S") == StageRef("D", "S", "My St", "a")
    with pytest.raises(NamedStageError, match="current database"):
        parse_stage_ref("@st", None, None)
    with pytest.raises(NamedStageError, match="user and table stages"):
        parse_stage_ref("@~/x")


def test_create_list_remove(tmp_path: Path, cur: duckdb.DuckDBPyConnection) -> None:
    stages = Stages(tmp_path)
    _, rows = run_stage_statement(cur, stages, "CREATE STAGE D.S.ST", None, None)
    assert rows == [("Stage area ST successfully created.",)]
    with pytest.raises(NamedStageError, match="already exists"):
        run_stage_statement(cur, stages, "CREATE STAGE D.S.ST", None, None)
    ref = StageRef("D", "S", "ST")
    stages.write_file(ref, "cdc/a.parquet", lambda p: p.write_bytes(b"abc"))
    stages.write_file(ref, "other/b.csv", lambda p: p.write_bytes(b"x"))
    (stages.directory(ref) / "cdc" / "c.parquet.tmp").write_bytes(b"partial")
    assert (tmp_path / "stages" / "D" / "S" / "ST" / "cdc" / "a.parquet").read_bytes() == b"abc"

    columns, rows = run_stage_statement(cur, stages, "LIST @D.S.ST", None, None)
    assert [c for c, _ in columns] == ["name", "size", "md5", "last_modified"]
    assert [(r[0], r[1]) for r in rows] == [("st/cdc/a.parquet", 3), ("st/other/b.csv", 1)]
    assert rows[0][2] == "900150983cd24fb0d6963f7d28e17f72"
    assert rows[0][3].endswith(" GMT")
    _, rows = run_stage_statement(cur, stages, "ls @st/cdc/", "D", "S")
    assert [r[0] for r in rows] == ["st/cdc/a.parquet"]
    _, rows = run_stage_statement(cur, stages, "LIST @D.S.ST PATTERN='.*[.]csv'", None, None)
    assert [r[0] for r in rows] == ["st/other/b.csv"]

    _, rows = run_stage_statement(cur, stages, "REMOVE @D.S.ST/cdc", None, None)
    assert rows == [("st/cdc/a.parquet", "removed")]
    _, rows = run_stage_statement(cur, stages, "LIST @D.S.ST", None, None)
    assert [r[0] for r in rows] == ["st/other/b.csv"]

    run_stage_statement(cur, stages, "CREATE OR REPLACE STAGE D.S.ST", None, None)
    assert run_stage_statement(cur, stages, "LIST @D.S.ST", None, None)[1] == []
    run_stage_statement(cur, stages, "DROP STAGE D.S.ST", None, None)
    with pytest.raises(NamedStageError, match="does not exist"):
        run_stage_statement(cur, stages, "LIST @D.S.ST", None, None)


def test_refusals(tmp_path: Path, cur: duckdb.DuckDBPyConnection) -> None:
    stages = Stages(tmp_path)
    with pytest.raises(NamedStageError, match=r"Schema 'D\.NOPE' does not exist"):
        run_stage_statement(cur, stages, "CREATE STAGE D.NOPE.ST", None, None)
    with pytest.raises(NamedStageError, match="external stages"):
        run_stage_statement(cur, stages, "CREATE STAGE D.S.X URL='s3://b/'", None, None)
    assert is_stage_statement("CREATE OR REPLACE STAGE x FILE_FORMAT = (TYPE = PARQUET)")
    assert is_stage_statement("remove @x pattern='.*'")
    assert not is_stage_statement("CREATE TABLE x (a INT)")
