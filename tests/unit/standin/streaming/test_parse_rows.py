"""Append bodies: encodings, blank lines, and per-row validation against the table."""

from __future__ import annotations

import gzip
from datetime import datetime
from decimal import Decimal

import pytest
import zstandard

from streamd.standin.streaming.parse_rows import (
    InvalidRowsBody,
    decode_body,
    iter_lines,
    parse_rows,
)
from tests.unit.standin.tables import typed_table


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
    table = typed_table().table
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
