"""CREATE PIPE parsing: names qualified, options kept, what cannot load refused."""

from __future__ import annotations

import pytest

from streamd.standin.snowpipe.pipes import PipeError, parse_create_pipe
from tests.unit.standin.tables import json_pipe


def test_create_pipe_is_parsed_with_names_qualified_and_options() -> None:
    spec = json_pipe("MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE ON_ERROR = CONTINUE")
    assert spec.qualified == "DB.S.P"
    assert spec.table == ("DB", "S", "T")
    assert spec.stage == ("DB", "S", "ST")
    assert spec.prefix == "sub"
    assert spec.strip_outer_array
    assert spec.match_by_column_name == "CASE_INSENSITIVE"
    assert spec.on_error == "CONTINUE"


def test_snowpipe_default_on_error_is_skip_file_and_other_statements_are_not_pipes() -> None:
    assert json_pipe().on_error == "SKIP_FILE"
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
