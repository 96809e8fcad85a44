"""Pure pieces of the stand-in: tokens, DDL, body decoding, row validation, SQL values."""

from __future__ import annotations

import gzip
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlglot
import zstandard

from streamd.standin.sql.values import column_type, format_value
from streamd.standin.storage.ddl import (
    ColumnSpec,
    CreateDatabase,
    DdlError,
    RunSql,
    plan_file,
    sql_files,
    translate,
)
from streamd.standin.streaming.parse_rows import (
    InvalidRowsBody,
    decode_body,
    iter_lines,
    parse_rows,
)
from streamd.standin.streaming.tokens import TokenClaims, TokenError, decode_token, encode_token

REPO = Path(__file__).resolve().parents[3]


def test_token_round_trip_and_tamper() -> None:
    claims = TokenClaims("DB", "S", "P-STREAMING", "CH/1", 3, 7)
    token = encode_token(b"k" * 32, claims)
    assert decode_token(b"k" * 32, token) == claims
    with pytest.raises(TokenError):
        decode_token(b"other" * 8, token)  # another process's secret
    with pytest.raises(TokenError):
        decode_token(b"k" * 32, token.replace(".", "x.", 1))
    with pytest.raises(TokenError):
        decode_token(b"k" * 32, "garbage")


def _table() -> RunSql:
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


def test_create_table_translation_keeps_snowflake_column_model() -> None:
    action = _table()
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


def test_decode_body_encodings() -> None:
    raw = b'{"a":1}\n'
    assert decode_body(zstandard.ZstdCompressor().compress(raw), "zstd") == raw
    assert decode_body(gzip.compress(raw), "gzip") == raw
    assert decode_body(raw, None) == raw
    with pytest.raises(InvalidRowsBody) as err:
        decode_body(b"not zstd", "zstd")
    assert err.value.code == "ERR_INVALID_PAYLOAD"
    with pytest.raises(InvalidRowsBody):
        decode_body(raw, "br")


def test_blank_lines_and_crlf_skipped() -> None:
    assert list(iter_lines(b'{"a":1}\r\n\n\r\n  \n{"b":2}\n\n')) == [b'{"a":1}', b'{"b":2}']


def test_parse_rows_validates_each_row() -> None:
    table = _table().table
    assert table is not None
    body = b"\n".join(
        [
            b'{"ID":"ok1","n":"12.345","f":1,"b":"true","ts":"2024-01-01T00:00:00+02:00",'
            b'"v":{"x":[1]},"o":{},"a":[]}',
            b'{"id":"ok2"}',
            b'{"id":"toolong"}',
            b'{"id":"x","n":1000}',  # NUMBER(5,2) holds < 1000
            b'{"id":"x","o":[1]}',
            b'{"id":"x","f":"abc"}',
            b'{"n":1}',
            b'{"id":"x","zz":1}',
            b"[1,2]",
            b"{oops",
            b'{"id":"x","b":"maybe"}',
            b'{"id":"x","ts":"yesterday"}',
        ]
    )
    parsed = parse_rows(table, body)
    assert parsed.good_count == 2
    assert parsed.parsed == 12
    good = parsed.good
    assert good is not None
    first = good.to_pylist()[0]
    assert first["N"] == Decimal("12.35")
    assert first["TS"] == datetime(2024, 1, 1)  # NTZ keeps the wall clock, drops the offset
    assert first["V"] == '{"x":[1]}'
    assert first["B"] is True
    codes = [r.error_code for r in parsed.rejected]
    assert "100072" in codes  # NOT NULL
    assert "100078" in codes  # too long
    assert [r.content_type for r in parsed.rejected].count("json-invalid") == 1


def test_sql_values() -> None:
    assert format_value(datetime(1970, 1, 2, 0, 0, 1, 500), "timestamp_ntz") == "86401.000500000"
    aware = datetime(1970, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert format_value(aware, "timestamp_ltz") == "0.000000000"
    assert format_value(date(1970, 1, 11), "date") == "10"
    assert format_value(True, "boolean") == "true"
    assert format_value(Decimal("1.50"), "fixed") == "1.50"
    assert format_value(None, "text") is None
    assert column_type("DECIMAL(10,2)") == {"type": "fixed", "precision": 10, "scale": 2}
    assert column_type("TIMESTAMP WITH TIME ZONE")["type"] == "timestamp_ltz"
    assert column_type("JSON")["type"] == "variant"
