"""Reading a staged file for a pipe: formats, ON_ERROR and load outcomes."""

from __future__ import annotations

import gzip

from streamd.standin.snowpipe.files import read_file
from tests.unit.standin.tables import PIPE_TABLE, json_pipe


def test_ndjson_gzip_rows_map_by_column_name_and_ignore_unknown_keys() -> None:
    data = gzip.compress(b'{"id": 1, "name": "a", "extra": 5}\n\n{"ID": 2}\n')
    load = read_file(json_pipe(), PIPE_TABLE, "f.ndjson.gz", data)
    assert (load.status, load.rows_parsed, load.rows_inserted, load.errors_seen) == (
        "LOADED",
        2,
        2,
        0,
    )
    assert load.rows is not None
    assert load.rows.to_pylist() == [{"ID": 1, "NAME": "a"}, {"ID": 2, "NAME": None}]


def test_outer_array_is_stripped() -> None:
    load = read_file(json_pipe(), PIPE_TABLE, "f.json", b'[{"id": 1}, {"id": 2}, {"id": 3}]')
    assert (load.status, load.rows_inserted) == ("LOADED", 3)


def test_invalid_json_line_fails_the_whole_file_under_skip_file_with_its_line() -> None:
    load = read_file(json_pipe(), PIPE_TABLE, "f.ndjson", b'{"id": 1}\n{"id": \n{"id": 3}\n')
    assert (load.status, load.rows_inserted, load.rows_parsed, load.errors_seen) == (
        "LOAD_FAILED",
        0,
        3,
        1,
    )
    assert load.first_error is not None
    assert load.first_error.line == 2
    assert "Error parsing JSON" in load.first_error.message


def test_continue_loads_the_good_rows_and_reports_partial_load() -> None:
    spec = json_pipe("MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE ON_ERROR = CONTINUE")
    load = read_file(spec, PIPE_TABLE, "f.ndjson", b'{"id": 1}\nnot json\n{"name": "no id"}\n')
    assert (load.status, load.rows_inserted, load.errors_seen) == ("PARTIALLY_LOADED", 1, 2)
    assert load.first_error is not None
    assert load.first_error.line == 2


def test_corrupt_gzip_fails_the_file_with_a_decompression_error() -> None:
    data = gzip.compress(b'{"id": 1}\n' * 100)
    load = read_file(json_pipe(), PIPE_TABLE, "f.ndjson.gz", data[: len(data) // 2])
    assert load.status == "LOAD_FAILED"
    assert load.first_error is not None
    assert "decompression" in load.first_error.message
