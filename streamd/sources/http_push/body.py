"""Request bodies of the HTTP push source: bounded decompression and per-line parsing.

Pure functions (no I/O) so they run in a worker thread and are tested without a server.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import zstandard

from streamd.rows import Row, format_offset

BodyFormat = Literal["ndjson", "json"]

_CONTENT_TYPES: dict[str, BodyFormat] = {
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/json": "json",
}


class BodyError(Exception):
    """The whole request is refused with `status`; nothing of it is accepted."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class LineError:
    """One bad line: its 1-based number, the rule it broke, and the line itself (for the DLQ)."""

    line: int
    rule: str
    detail: str
    raw: bytes


@dataclass(slots=True)
class Parsed:
    """The rows of a body in order, each with its 1-based line number, and the bad lines."""

    rows: list[tuple[int, Row]] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


def body_format(content_type: str | None) -> BodyFormat:
    """The body format for a Content-Type header; 415 for anything else."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    fmt = _CONTENT_TYPES.get(media)
    if fmt is None:
        raise BodyError(
            415,
            f"Content-Type {media or '(none)'!r} is not supported; send application/x-ndjson "
            "(one JSON object per line) or application/json (an array of objects)",
        )
    return fmt


def decode_body(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo Content-Encoding, never producing more than `limit` bytes (413 past it)."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        out = raw
    elif coding in ("gzip", "x-gzip"):
        out = _gunzip(raw, limit)
    elif coding == "zstd":
        out = _unzstd(raw, limit)
    else:
        raise BodyError(415, f"Content-Encoding {coding!r} is not supported; use gzip or zstd")
    if len(out) > limit:
        raise BodyError(413, f"body is over {limit} bytes decompressed; send smaller requests")
    return out


def _gunzip(raw: bytes, limit: int) -> bytes:
    out = bytearray()
    data = raw
    # A gzip body may hold several members back to back (what `cat a.gz b.gz` makes).
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            # max_length caps the output: a small bomb never expands past limit + 1 in memory.
            out += d.decompress(data, limit + 1 - len(out))
        except zlib.error as exc:
            raise BodyError(400, f"body is not valid gzip: {exc}") from None
        if len(out) > limit or d.unconsumed_tail:
            raise BodyError(413, f"body is over {limit} bytes decompressed; send smaller requests")
        if not d.eof:
            raise BodyError(400, "gzip body is truncated")
        data = d.unused_data
    return bytes(out)


def _unzstd(raw: bytes, limit: int) -> bytes:
    out = bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as reader:
            while len(out) <= limit:
                chunk = reader.read(min(1 << 20, limit + 1 - len(out)))
                if not chunk:
                    break
                out += chunk
    except zstandard.ZstdError as exc:
        raise BodyError(400, f"body is not valid zstd: {exc}") from None
    return bytes(out)


def parse_body(body: bytes, fmt: BodyFormat, *, max_row_bytes: int, max_rows: int) -> Parsed:
    """Split a decoded body into rows and bad lines (413 when it holds more than `max_rows`)."""
    if fmt == "ndjson":
        return _parse_ndjson(body, max_row_bytes, max_rows)
    return _parse_array(body, max_row_bytes, max_rows)


def _too_many(count: int, max_rows: int) -> BodyError:
    return BodyError(413, f"request holds {count} rows, over {max_rows}; split it")


def _parse_ndjson(body: bytes, max_row_bytes: int, max_rows: int) -> Parsed:
    lines = body.split(b"\n")
    count = sum(1 for line in lines if line.strip())
    if count > max_rows:
        raise _too_many(count, max_rows)
    parsed = Parsed()
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix(b"\r")
        if not line.strip():
            continue  # blank lines (and the final newline) are not rows
        if len(line) > max_row_bytes:
            parsed.errors.append(
                LineError(
                    number,
                    "row_too_large",
                    f"line is {len(line)} bytes, over max_row_bytes ({max_row_bytes})",
                    line,
                )
            )
            continue
        _add(parsed, number, line)
    return parsed


def _add(parsed: Parsed, number: int, line: bytes) -> None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        parsed.errors.append(LineError(number, "invalid_json", f"invalid JSON: {exc}", line))
        return
    if not isinstance(value, dict):
        kind = type(value).__name__
        parsed.errors.append(
            LineError(number, "not_an_object", f"expected a JSON object, got {kind}", line)
        )
        return
    parsed.rows.append((number, value))


def _parse_array(body: bytes, max_row_bytes: int, max_rows: int) -> Parsed:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Without a valid array there are no lines to tell apart: the whole request is bad.
        raise BodyError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise BodyError(400, "a JSON body must be an array of objects; send NDJSON otherwise")
    if len(value) > max_rows:
        raise _too_many(len(value), max_rows)
    parsed = Parsed()
    # For arrays, "line" is the 1-based index of the element.
    for number, item in enumerate(value, start=1):
        encoded = orjson.dumps(item)
        if len(encoded) > max_row_bytes:
            detail = f"element is {len(encoded)} bytes, over max_row_bytes ({max_row_bytes})"
            parsed.errors.append(LineError(number, "row_too_large", detail, encoded))
        elif not isinstance(item, dict):
            kind = type(item).__name__
            parsed.errors.append(
                LineError(number, "not_an_object", f"expected a JSON object, got {kind}", encoded)
            )
        else:
            parsed.rows.append((number, item))
    return parsed


def answer(parsed: Parsed, results: dict[int, int | None], sent: int) -> tuple[int, dict[str, Any]]:
    """Status and body of a request whose first `sent` rows reached the pipeline.

    `results` holds the acks by row index: the spool sequence, or None when not stored.
    """
    lines = [number for number, _ in parsed.rows]
    stored = {i: s for i, s in results.items() if s is not None}
    seqs = stored.values()
    body: dict[str, Any] = {
        "accepted": len(stored),
        "first_offset": format_offset(min(seqs)) if stored else None,
        "last_offset": format_offset(max(seqs)) if stored else None,
        "errors": [{"line": e.line, "rule": e.rule, "error": e.detail} for e in parsed.errors],
        "refused": [lines[i] for i, s in sorted(results.items()) if s is None],
        "pending": [lines[i] for i in range(sent) if i not in results],
        "not_sent": lines[sent:],
    }
    if body["pending"] or body["not_sent"]:
        return 503, body
    if body["refused"]:
        return 507, body
    if parsed.errors:
        only_size = all(e.rule == "row_too_large" for e in parsed.errors)
        return (413 if only_size else 400), body
    return 200, body


def not_admitted(parsed: Parsed, reason: str) -> dict[str, Any]:
    """The body of a 429: nothing accepted or dead-lettered, every row to be sent again.

    Bad lines are not judged yet (the retried request reports them); `error` says why.
    """
    lines = [number for number, _ in parsed.rows]
    return {
        "accepted": 0,
        "first_offset": None,
        "last_offset": None,
        "errors": [],
        "refused": [],
        "pending": [],
        "not_sent": lines,
        "error": reason,
    }
