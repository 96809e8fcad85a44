"""Append Rows bodies → typed Arrow columns plus rejected rows (pure; runs in a worker thread).

A bad row never fails the request (ON_ERROR = CONTINUE, reference §2.12): it is counted, described
and kept for the error table, while the good rows of the same body load.
"""

from __future__ import annotations

import base64
import gzip
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import orjson
import pyarrow as pa
import zstandard

from streamd.standin.storage.ddl import ColumnSpec, TableSpec

MAX_DECODED_BYTES = 256 * 1024 * 1024
"""Cap on a decompressed body: 4 MB of zstd rarely exceeds ~30 MB of NDJSON; more is a bomb."""


class InvalidRowsBody(Exception):
    """The body as a whole cannot be read (bad encoding): the request is rejected with 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RowParseError(Exception):
    """One value or row does not fit the table; the row goes to the error table."""

    def __init__(self, code: str, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.source = source


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that was parsed but not inserted, as the error table records it (§2.12)."""

    error_code: str
    message: str
    source: str | None
    data: str
    """JSON text of the original row, or of the raw line as a string when it was not JSON."""
    content_type: str
    """`json`, `json-invalid` or `binary-base64`, as Snowflake's error_data_content_type."""


@dataclass(slots=True)
class ParsedRows:
    """The outcome of one body: good rows as an Arrow table, and the rejected ones."""

    good: pa.Table | None
    good_count: int
    rejected: list[RejectedRow] = field(default_factory=list)

    @property
    def parsed(self) -> int:
        """Rows parsed, inserted or not (`rows_parsed`)."""
        return self.good_count + len(self.rejected)


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """Undo `Content-Encoding` (zstd, gzip or identity; §2.2)."""
    encoding = (content_encoding or "identity").strip().lower()
    try:
        if encoding in ("identity", ""):
            return body
        if encoding == "zstd":
            # decompressobj copes with frames that do not record their content size.
            out = zstandard.ZstdDecompressor().decompressobj().decompress(body)
        elif encoding in ("gzip", "x-gzip"):
            out = gzip.decompress(body)
        else:
            raise InvalidRowsBody(
                "ERR_UNSUPPORTED_CONTENT_ENCODING",
                f"Content-Encoding {content_encoding!r} is not supported; use zstd or gzip",
            )
    except (zstandard.ZstdError, OSError, EOFError, zlib.error) as err:
        raise InvalidRowsBody(
            "ERR_INVALID_PAYLOAD", f"body is not valid {encoding} data: {err}"
        ) from err
    if len(out) > MAX_DECODED_BYTES:
        raise InvalidRowsBody("ERR_PAYLOAD_TOO_LARGE", "decompressed body exceeds 256 MB")
    return out


def iter_lines(data: bytes) -> Iterator[bytes]:
    """NDJSON lines with the optional `\\r` removed; blank lines are skipped.

    The official SDK puts a blank line after every append call (official-sdk-wire §5).
    """
    for line in data.split(b"\n"):
        stripped = line.rstrip(b"\r")
        if stripped.strip():
            yield stripped


def parse_rows(table: TableSpec, data: bytes) -> ParsedRows:
    """Validate every line of a decoded body against the table's columns."""
    good: list[dict[str, Any]] = []
    rejected: list[RejectedRow] = []
    for line in iter_lines(data):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            rejected.append(_invalid_line(line, str(err)))
            continue
        if not isinstance(obj, dict):
            rejected.append(
                RejectedRow(
                    "100069",
                    f"Row must be a JSON object, got {type(obj).__name__}",
                    None,
                    line.decode("utf-8", "replace"),
                    "json",
                )
            )
            continue
        try:
            good.append(coerce_row(table, obj))
        except RowParseError as err:
            rejected.append(RejectedRow(err.code, err.message, err.source, line.decode(), "json"))
    return ParsedRows(to_arrow(table, good), len(good), rejected)


def _invalid_line(line: bytes, detail: str) -> RejectedRow:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raw = base64.b64encode(line).decode("ascii")
        return RejectedRow(
            "100069", "Invalid UTF-8 in row", None, orjson.dumps(raw).decode(), "binary-base64"
        )
    return RejectedRow(
        "100069", f"Error parsing JSON: {detail}", None, orjson.dumps(text).decode(), "json-invalid"
    )


def coerce_row(table: TableSpec, obj: dict[str, Any]) -> dict[str, Any]:
    """A row keyed by column name with Arrow-ready values, or RowParseError."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        col = table.column(key)
        if col is None:
            # The brief's choice: an unmappable key rejects the row (Snowflake invalidates the
            # channel only under schema evolution, §2.12; silently dropping data hides bugs).
            raise RowParseError(
                "100080", f"Column '{key}' does not exist in table {table.name}", key
            )
        if col.name in out:
            raise RowParseError(
                "100069", f"Column '{col.name}' given twice (keys differ in case)", key
            )
        out[col.name] = coerce_value(col, value)
    for col in table.columns:
        if not col.nullable and out.get(col.name) is None:
            raise RowParseError(
                "100072", f"NULL result in a non-nullable column '{col.name}'", col.name
            )
    return out


def coerce_value(col: ColumnSpec, value: Any) -> Any:
    """One JSON value → the Python value Arrow stores for this column, or RowParseError."""
    if value is None:
        return None
    kind = col.kind
    if kind in ("variant", "object", "array"):
        if kind == "object" and not isinstance(value, dict):
            raise RowParseError(
                "100069", f"Value for OBJECT column '{col.name}' is not an object", col.name
            )
        if kind == "array" and not isinstance(value, list):
            raise RowParseError(
                "100069", f"Value for ARRAY column '{col.name}' is not an array", col.name
            )
        return orjson.dumps(value).decode()
    if kind == "text":
        return _text(col, value)
    if kind == "fixed":
        return _fixed(col, value)
    if kind == "real":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _not_recognized("Numeric", col, value)
        try:
            return float(value)
        except ValueError:
            raise _not_recognized("Numeric", col, value) from None
    if kind == "boolean":
        return _boolean(col, value)
    if kind in ("timestamp_ntz", "timestamp_ltz", "timestamp_tz"):
        return _timestamp(col, value)
    if kind == "date":
        if isinstance(value, str):
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                pass
        raise _not_recognized("Date", col, value)
    if kind == "time":
        if isinstance(value, str):
            try:
                return time.fromisoformat(value)
            except ValueError:
                pass
        raise _not_recognized("Time", col, value)
    if kind == "binary":
        if isinstance(value, str):
            try:
                # The SDK sends bytes as base64 by default (official-sdk-wire §5).
                return base64.b64decode(value, validate=True)
            except ValueError:
                pass
        raise _not_recognized("Binary", col, value)
    raise RowParseError("100069", f"column '{col.name}' has unsupported type {kind}", col.name)


def _text(col: ColumnSpec, value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = orjson.dumps(value).decode()
    else:
        # Snowflake would store the JSON text of an object in a VARCHAR; the stand-in does too.
        text = orjson.dumps(value).decode()
    if col.length is not None and len(text) > col.length:
        raise RowParseError(
            "100078",
            f"String '{text[:32]}' is too long and would be truncated (column '{col.name}', "
            f"max {col.length})",
            col.name,
        )
    return text


def _fixed(col: ColumnSpec, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _not_recognized("Numeric", col, value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _not_recognized("Numeric", col, value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _not_recognized("Numeric", col, value) from None
    if not number.is_finite():
        raise _not_recognized("Numeric", col, value)
    precision = col.precision or 38
    scale = col.scale or 0
    number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if abs(number) >= Decimal(10) ** (precision - scale):
        raise RowParseError(
            "100039",
            f"Numeric value '{value}' is out of range for NUMBER({precision},{scale}) column "
            f"'{col.name}'",
            col.name,
        )
    return number


def _boolean(col: ColumnSpec, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "t", "yes", "y", "on", "1"):
            return True
        if lowered in ("false", "f", "no", "n", "off", "0"):
            return False
    raise _not_recognized("Boolean", col, value)


def _timestamp(col: ColumnSpec, value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _not_recognized("Timestamp", col, value) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # Numbers are seconds since the epoch, Snowflake's reading of small integers.
        parsed = datetime.fromtimestamp(value, tz=UTC)
    else:
        raise _not_recognized("Timestamp", col, value)
    if col.kind == "timestamp_ntz":
        # TIMESTAMP_NTZ keeps the wall-clock time and drops any offset, as Snowflake does.
        return parsed.replace(tzinfo=None)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _not_recognized(what: str, col: ColumnSpec, value: Any) -> RowParseError:
    codes = {"Numeric": "100038", "Timestamp": "100035", "Boolean": "100037", "Date": "100040"}
    shown = value if isinstance(value, str) else orjson.dumps(value).decode()
    return RowParseError(
        codes.get(what, "100069"),
        f"{what} value '{str(shown)[:64]}' is not recognized (column '{col.name}')",
        col.name,
    )


def arrow_type(col: ColumnSpec) -> pa.DataType:
    """The Arrow type that carries a column's values into DuckDB."""
    kind = col.kind
    if kind == "fixed":
        return pa.decimal128(col.precision or 38, col.scale or 0)
    if kind == "real":
        return pa.float64()
    if kind == "boolean":
        return pa.bool_()
    if kind == "date":
        return pa.date32()
    if kind == "time":
        return pa.time64("us")
    if kind == "timestamp_ntz":
        return pa.timestamp("us")
    if kind in ("timestamp_ltz", "timestamp_tz"):
        return pa.timestamp("us", tz="UTC")
    if kind == "binary":
        return pa.binary()
    return pa.string()


def to_arrow(table: TableSpec, rows: list[dict[str, Any]]) -> pa.Table | None:
    """Parsed rows as an Arrow table in the target table's column types; None for no rows."""
    if not rows:
        return None
    present = {name for row in rows for name in row}
    # Only columns some row mentions are inserted, so DuckDB applies column DEFAULTs to the others.
    cols = [c for c in table.columns if c.name in present]
    arrays = [pa.array([row.get(c.name) for row in rows], type=arrow_type(c)) for c in cols]
    return pa.Table.from_arrays(arrays, names=[c.name for c in cols])
