"""The wire-answer → exception table (snowflake-apis.md §2.10) and transport-error mapping."""

from __future__ import annotations

import email.utils

import httpx
import orjson
import pytest

from streamd.errors import (
    AuthError,
    DeliveryError,
    FatalError,
    ObjectNotFound,
    PayloadTooLarge,
    ReopenChannel,
    RetryableError,
)
from streamd.snowflake.codes import error_for, map_transport_errors, parse_retry_after

WHAT = "append to MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW-STREAMING/streamd_SENSOR"


def _body(code: str | None, message: str = "server says no", key: str = "code") -> bytes:
    data: dict[str, object] = {"message": message}
    if code is not None:
        data[key] = code
    return orjson.dumps(data)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "STALE_CONTINUATION_TOKEN_SEQUENCER", ReopenChannel),
        (400, "ERR_CHANNEL_HAS_INVALID_CLIENT_SEQUENCER", ReopenChannel),
        (400, "ERR_CHANNEL_HAS_INVALID_ROW_SEQUENCER", ReopenChannel),
        (400, "ERR_CHANNEL_MUST_BE_REOPENED", ReopenChannel),
        (400, "ERR_CHANNEL_MUST_BE_REOPENED_DUE_TO_ROW_SEQ_GAP", ReopenChannel),
        (400, "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED", ReopenChannel),
        (400, "ERR_CHANNEL_DOES_NOT_EXIST_OR_NOT_AUTHORIZED", ReopenChannel),
        (400, "STALE_PIPE_CACHE", ReopenChannel),
        (400, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED", ObjectNotFound),
        (400, "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED", ObjectNotFound),
        (400, "ERR_SOMETHING_BAD", FatalError),
        (400, None, FatalError),
        (401, None, AuthError),
        (403, None, AuthError),
        (401, "STALE_CONTINUATION_TOKEN_SEQUENCER", AuthError),
        (404, None, ObjectNotFound),
        (404, "ERR_CHANNEL_MUST_BE_REOPENED", ReopenChannel),
        (408, None, RetryableError),
        (409, "ERR_CHANNEL_MUST_BE_REOPENED", ReopenChannel),
        (409, "ERR_CHANNEL_HAS_UNCOMMITTED_DATA", ReopenChannel),
        (410, None, ReopenChannel),
        (413, None, PayloadTooLarge),
        (415, None, FatalError),
        (429, None, RetryableError),
        (429, "SWITCH_TO_FILE_MODE", RetryableError),
        (500, None, RetryableError),
        (502, None, RetryableError),
        (503, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED", RetryableError),
        (504, None, RetryableError),
    ],
)
def test_status_and_code_table(
    status: int, code: str | None, expected: type[DeliveryError]
) -> None:
    """Each (status, code) maps to exactly one class; a stale sequencer is never ChannelFenced."""
    err = error_for(status, _body(code), {}, what=WHAT)
    assert type(err) is expected
    assert err.status == status
    assert err.code == code


@pytest.mark.parametrize("key", ["code", "error_code", "error"])
def test_code_read_from_every_body_key(key: str) -> None:
    """The code is read from `code`, `error_code` or `error` (§2.10, wire note §4.3)."""
    err = error_for(400, _body("STALE_PIPE_CACHE", key=key), {}, what=WHAT)
    assert type(err) is ReopenChannel
    assert err.code == "STALE_PIPE_CACHE"


def test_message_is_one_line_naming_object_status_code_and_server_text() -> None:
    """The message names what failed, the status, the code and the server's words, on one line."""
    body = _body("ERR_CHANNEL_MUST_BE_REOPENED", "Channel\nmust be\treopened")
    message = str(error_for(400, body, {}, what=WHAT))
    assert message == (
        f"{WHAT} failed: HTTP 400 ERR_CHANNEL_MUST_BE_REOPENED: Channel must be reopened"
    )


@pytest.mark.parametrize(
    ("status", "code", "fix"),
    [
        (403, None, "INSERT grant"),
        (401, None, "RSA_PUBLIC_KEY"),
        (404, None, "the table name in the source's config"),
        (400, "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED", "create the table"),
        (413, None, "smaller batches"),
        (400, "ERR_PIPE_KIND_NOT_SUPPORTED", "not a streaming pipe"),
    ],
)
def test_fatal_messages_carry_the_fix(status: int, code: str | None, fix: str) -> None:
    """Errors an operator must act on say what to do."""
    err = error_for(status, _body(code), {}, what=WHAT)
    assert isinstance(err, FatalError)
    assert fix in str(err)
    assert WHAT in str(err)


def test_non_json_and_empty_bodies() -> None:
    """A text body is the message; an empty body still yields a typed error."""
    err = error_for(502, b"<html>Bad   Gateway</html>", {}, what=WHAT)
    assert type(err) is RetryableError
    assert str(err).endswith("HTTP 502: <html>Bad Gateway</html>")
    assert type(error_for(404, b"", {}, what=WHAT)) is ObjectNotFound


def test_long_server_message_is_truncated() -> None:
    """A huge body cannot flood the log line."""
    err = error_for(500, b"x" * 10_000, {}, what=WHAT)
    assert len(str(err)) < 500


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("", None),
        ("soon", None),
        (None, None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    """Delta-seconds are read as given (never negative); junk is ignored."""
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    """An HTTP date is turned into seconds from `now`."""
    now = 1_763_900_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_header_lands_on_the_error(status: int) -> None:
    """429 (and 5xx) carry the server's Retry-After; header names are case-insensitive."""
    err = error_for(status, b"", {"Retry-After": "12"}, what=WHAT)
    assert isinstance(err, RetryableError)
    assert err.retry_after == 12.0
    err = error_for(status, b"", httpx.Headers({"retry-after": "3"}), what=WHAT)
    assert isinstance(err, RetryableError)
    assert err.retry_after == 3.0
    err = error_for(status, b"", {}, what=WHAT)
    assert isinstance(err, RetryableError)
    assert err.retry_after is None


_REQUEST = httpx.Request("POST", "https://ingest.example/rows?continuationToken=SECRET")


@pytest.mark.parametrize(
    ("exc", "ambiguous", "expected"),
    [
        (httpx.ReadTimeout("timed out", request=_REQUEST), False, RetryableError),
        (httpx.ReadTimeout("timed out", request=_REQUEST), True, ReopenChannel),
        (httpx.WriteTimeout("timed out", request=_REQUEST), True, ReopenChannel),
        (httpx.RemoteProtocolError("closed", request=_REQUEST), True, ReopenChannel),
        (httpx.ReadError("reset", request=_REQUEST), False, RetryableError),
        (httpx.ConnectError("refused", request=_REQUEST), True, RetryableError),
        (httpx.ConnectTimeout("timed out", request=_REQUEST), True, RetryableError),
        (httpx.PoolTimeout("timed out", request=_REQUEST), True, RetryableError),
        (httpx.UnsupportedProtocol("ftp", request=_REQUEST), False, FatalError),
    ],
)
def test_transport_errors(
    exc: httpx.RequestError, ambiguous: bool, expected: type[DeliveryError]
) -> None:
    """Unknown outcomes of appends reopen; failures before sending and idempotent calls retry."""
    with pytest.raises(DeliveryError) as info, map_transport_errors(ambiguous=ambiguous, what=WHAT):
        raise exc
    assert type(info.value) is expected
    assert WHAT in str(info.value)
    assert "SECRET" not in str(info.value)


def test_transport_mapping_leaves_other_errors_alone() -> None:
    """Only httpx request errors are translated."""
    with pytest.raises(KeyError), map_transport_errors(ambiguous=True):
        raise KeyError("x")
