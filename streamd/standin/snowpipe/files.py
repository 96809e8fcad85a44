"""Reading one staged JSON file the way a pipe's COPY does (pure; runs in a worker thread).

Follows COPY INTO <table> with FILE_FORMAT = (TYPE = JSON): compression is detected (AUTO: gzip
by its magic bytes, else none); each top-level JSON value is one record (NDJSON, or the elements of
an outer array with STRIP_OUTER_ARRAY = TRUE); MATCH_BY_COLUMN_NAME maps an object's keys onto
columns, keys without a column are ignored and missing columns load NULL (COPY docs). Without it,
the table must have a single VARIANT/OBJECT/ARRAY column that receives the whole value.

Snowflake's JSON parser also reads values that span lines (pretty-printed documents, several per
file); the stand-in reads one value per line (NDJSON) unless the file is one outer array with
STRIP_OUTER_ARRAY, and reports a multi-line value as invalid lines.

Errors follow ON_ERROR: SKIP_FILE (Snowpipe's default) loads nothing from a file with any error;
CONTINUE loads the good records. Either way the first error is described with its line.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from streamd.standin.snowpipe.pipes import PipeSpec
from streamd.standin.storage.ddl import TableSpec
from streamd.standin.streaming.parse_rows import (
    MAX_DECODED_BYTES,
    RowParseError,
    coerce_row,
    coerce_value,
    to_arrow,
)

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class FirstError:
    """The first error in a file, as insertReport describes it."""

    message: str
    line: int
    character: int
    column: str | None = None


@dataclass(slots=True)
class FileLoad:
    """The outcome of reading one file: rows to insert and the counts of its load event."""

    rows: pa.Table | None
    rows_parsed: int
    rows_inserted: int
    errors_seen: int
    error_limit: int
    status: str
    first_error: FirstError | None = None

    def event(self, path: str, size: int, received_ms: int, inserted_ms: int) -> dict[str, Any]:
        """The file's load event (insertReport / loadHistoryScan `files[]` entry)."""
        out: dict[str, Any] = {
            "path": path,
            "fileSize": size,
            "timeReceived": received_ms,
            "lastInsertTime": inserted_ms,
            "rowsInserted": self.rows_inserted,
            "rowsParsed": self.rows_parsed,
            "errorsSeen": self.errors_seen,
            "errorLimit": self.error_limit,
            "status": self.status,
        }
        if self.first_error is not None:
            out.update(
                firstError=self.first_error.message,
                firstErrorLineNum=self.first_error.line,
                firstErrorCharacterPos=self.first_error.character,
                firstErrorColumnName=self.first_error.column,
            )
        return out


def failed(message: str, *, line: int = 1, character: int = 1) -> FileLoad:
    """A file that could not be read at all (missing, corrupt compression, unknown table)."""
    return FileLoad(None, 0, 0, 1, 1, "LOAD_FAILED", FirstError(message, line, character))


def read_file(spec: PipeSpec, table: TableSpec, path: str, data: bytes) -> FileLoad:
    """Parse and map every record of a staged file for `spec`'s COPY."""
    if data[:2] == _GZIP_MAGIC:
        try:
            data = _gunzip(data)
        except (OSError, EOFError, zlib.error) as err:
            return failed(
                f"Invalid data encountered during decompression for file: '{path}', "
                f"compression type used: 'GZIP', cause: '{err}'"
            )
    good: list[dict[str, Any]] = []
    parsed = errors = 0
    first: FirstError | None = None
    mapper = _Mapper(spec, table)
    for line_no, record, error in _records(data, spec.strip_outer_array):
        parsed += 1
        if error is None:
            try:
                good.append(mapper(record))
                continue
            except RowParseError as err:
                error = FirstError(err.message, line_no, 1, err.source)
        errors += 1
        first = first or error
    if errors and spec.on_error == "SKIP_FILE":
        return FileLoad(None, parsed, 0, errors, 1, "LOAD_FAILED", first)
    status = "PARTIALLY_LOADED" if errors else "LOADED"
    if errors and not good:
        status = "LOAD_FAILED"
    limit = parsed if spec.on_error == "CONTINUE" else 1
    return FileLoad(to_arrow(table, good), parsed, len(good), errors, limit, status, first)


def _gunzip(data: bytes) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        out: bytes = f.read(MAX_DECODED_BYTES + 1)
    if len(out) > MAX_DECODED_BYTES:
        raise OSError("decompressed file exceeds 256 MB; split it into smaller files")
    return out


def _records(data: bytes, strip_outer_array: bool) -> list[tuple[int, Any, FirstError | None]]:
    """(line number, value, error) per record of a decoded file."""
    stripped = data.lstrip()
    if strip_outer_array and stripped[:1] == b"[":
        try:
            values = orjson.loads(data)
        except orjson.JSONDecodeError as err:
            return [
                (
                    err.lineno,
                    None,
                    FirstError(f"Error parsing JSON: {err.msg}", err.lineno, err.colno),
                )
            ]
        if isinstance(values, list):
            return [(1, v, None) for v in values]
        return [(1, values, None)]
    out: list[tuple[int, Any, FirstError | None]] = []
    for line_no, line in enumerate(data.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        try:
            out.append((line_no, orjson.loads(line), None))
        except orjson.JSONDecodeError as err:
            detail = f"Error parsing JSON: {err.msg}, line {line_no}"
            out.append((line_no, None, FirstError(detail, line_no, err.pos + 1)))
    return out


class _Mapper:
    """Maps records onto a table's columns, with the name lookup built once per file."""

    def __init__(self, spec: PipeSpec, table: TableSpec) -> None:
        self.spec = spec
        self.table = table
        sensitive = spec.match_by_column_name == "CASE_SENSITIVE"
        self.columns = {(c.name if sensitive else c.name.upper()): c for c in table.columns}
        self.sensitive = sensitive
        self.required = [c for c in table.columns if not c.nullable]

    def __call__(self, record: Any) -> dict[str, Any]:
        """The row for one record, or RowParseError."""
        if self.spec.match_by_column_name is None:
            return self._whole(record)
        if not isinstance(record, dict):
            raise RowParseError(
                "100069", f"MATCH_BY_COLUMN_NAME needs a JSON object, got {type(record).__name__}"
            )
        out: dict[str, Any] = {}
        for key, value in record.items():
            col = self.columns.get(key if self.sensitive else key.upper())
            if col is None:
                continue  # keys without a column are ignored by MATCH_BY_COLUMN_NAME
            out[col.name] = coerce_value(col, value)
        for col in self.required:
            if out.get(col.name) is None:
                raise RowParseError(
                    "100072", f"NULL result in a non-nullable column '{col.name}'", col.name
                )
        return out

    def _whole(self, record: Any) -> dict[str, Any]:
        table = self.table
        variants = [c for c in table.columns if c.kind in ("variant", "object", "array")]
        if len(table.columns) != 1 or not variants:
            raise RowParseError(
                "002023",
                "JSON file format can produce one and only one column of type variant, object, "
                "or array. Use MATCH_BY_COLUMN_NAME to load into more columns.",
            )
        return coerce_row(table, {variants[0].name: record})
