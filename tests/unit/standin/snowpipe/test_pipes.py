"""CREATE PIPE parsing: names qualified, options kept, what cannot load refused."""

from __future__ import annotations

import pytest

from streamd.standin.snowpipe.pipes import PipeError, PipeSpec, parse_create_pipe
from streamd.standin.storage.ddl import ColumnSpec, TableSpec

TABLE = TableSpec(
    "DB",
    "S",
    "T",
    (
        ColumnSpec("ID", "fixed", nullable=False, precision=38, scale=0),
        ColumnSpec("NAME", "text"),
    ),
)


def _pipe(options: str = "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE") -> PipeSpec:
    parsed = parse_create_pipe(
        "CREATE OR REPLACE PIPE p AUTO_INGEST = FALSE AS COPY INTO t FROM @st/sub "
        f"FILE_FORMAT = (TYPE = JSON STRIP_OUTER_ARRAY = TRUE) {options}",
        "db",
        "s",
    )
    assert parsed is not None
    return parsed.spec


def test_create_pipe_is_parsed_with_names_qualified_and_options() -> None:
    spec = _pipe("MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE ON_ERROR = CONTINUE")
    assert spec.qualified == "DB.S.P"
    assert spec.table == ("DB", "S", "T")
    assert spec.stage == ("DB", "S", "ST")
    assert spec.prefix == "sub"
    assert spec.strip_outer_array
    assert spec.match_by_column_name == "CASE_INSENSITIVE"
    assert spec.on_error == "CONTINUE"


def test_snowpipe_default_on_error_is_skip_file_and_other_statements_are_not_pipes() -> None:
    assert _pipe().on_error == "SKIP_FILE"
    assert parse_create_pipe("CREATE TABLE x (a int)", "DB", "S") is None


@pytest.mark.parametrize(
    "text",
    [
        "CREATE PIPE p AUTO_INGEST = TRUE AS COPY INTO t FROM @st FILE_FORMAT = (TYPE = JSON)",
        "CREATE PIPE p AS COPY INTO t FROM @st FILE_FORMAT = (TYPE = CSV)",
        "CREATE PIPE p AS COPY INTO t (a) FROM (SELECT $1:a FROM @st) FILE_FORMAT = (TYPE=JSON)",
    ],
)
def test_what_the_stand_in_cannot_load_is_refused(text: str) -> None:
    with pytest.raises(PipeError):
        parse_create_pipe(text, "DB", "S")
