"""The one table from Snowflake's wire answers (HTTP status, error code) to exception classes.

Retry, reopen or stop is decided here and nowhere else; callers never look at status codes or
message text. The table follows `snowflake-apis.md` §2.10 (status guidance and codes) and the
official SDK's observed behaviour in `official-sdk-wire.md` §4.3 and §7.
"""

from __future__ import annotations

import contextlib
import email.utils
import ssl
import time
from collections.abc import Iterator, Mapping

import httpx
import orjson

from streamd.errors import (
    AuthError,
    ChannelFenced,
    DeliveryError,
    FatalError,
    ObjectNotFound,
    PayloadTooLarge,
    ReopenChannel,
    RetryableError,
)

REOPEN_CODES: frozenset[str] = frozenset(
    {
        # A stale sequencer is also the answer to an append that raced the caller's own reopen,
        # so on the wire it is ReopenChannel; `reopen_class` says when it means fenced.
        "STALE_CONTINUATION_TOKEN_SEQUENCER",
        "ERR_CHANNEL_HAS_INVALID_CLIENT_SEQUENCER",
        "ERR_CHANNEL_HAS_INVALID_ROW_SEQUENCER",
        "ERR_CHANNEL_MUST_BE_REOPENED",
        "ERR_CHANNEL_MUST_BE_REOPENED_DUE_TO_ROW_SEQ_GAP",
        # Seen in the wild, not documented; Artie reopens on both (§2.10 "codes seen in the wild").
        "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED",
        "ERR_CHANNEL_DOES_NOT_EXIST_OR_NOT_AUTHORIZED",
        "STALE_PIPE_CACHE",
    }
)
"""Codes that make the channel unusable: reopen it and replay from the committed offset."""

FENCING_CODES: frozenset[str] = frozenset(
    {"STALE_CONTINUATION_TOKEN_SEQUENCER", "ERR_CHANNEL_HAS_INVALID_CLIENT_SEQUENCER"}
)
"""Reopen codes saying the channel's sequencer moved: someone opened the channel after us."""

NOT_FOUND_CODES: frozenset[str] = frozenset(
    {
        "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED",
        "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED",
    }
)
"""Codes naming a missing (or invisible) pipe or table: an operator must create or grant it."""

_MESSAGE_LIMIT = 300

_FIX_NOT_FOUND = (
    "create the table (or pipe) or fix the table name in the source's config, "
    "and check the role has USAGE on the database and schema and INSERT on the table"
)
_FIXES: dict[type[DeliveryError], str] = {
    ObjectNotFound: _FIX_NOT_FOUND,
    PayloadTooLarge: "send smaller batches: one request may carry at most 4 MB after compression",
}
_FIX_401 = (
    "check `account` and `user`, and that the user's RSA_PUBLIC_KEY "
    "(DESC USER → RSA_PUBLIC_KEY_FP) matches the configured private key"
)
_FIX_403 = (
    "check the role's INSERT grant on the table and USAGE on the database and schema "
    "(OPERATE on the pipe for custom pipes)"
)
_FIX_CODE: dict[str, str] = {
    "ERR_PIPE_KIND_NOT_SUPPORTED": (
        "the pipe is not a streaming pipe; use the default `<TABLE>-STREAMING` pipe "
        "or one built on DATA_SOURCE(TYPE => 'STREAMING')"
    ),
}
_FIX_FATAL = "the request was refused as malformed; report it with this message"


def classify(status: int, code: str | None) -> type[DeliveryError]:
    """The exception class for an HTTP status and Snowflake error code (§2.10)."""
    if status in (401, 403):
        # Auth is decided by status alone: a refresh was already tried by the caller.
        return AuthError
    if status in (408, 429) or 500 <= status <= 599:
        return RetryableError
    if code in REOPEN_CODES:
        # The code wins over the status for every other 4xx: the documented status for these is
        # 400, but the meaning of the code does not depend on it.
        return ReopenChannel
    if code in NOT_FOUND_CODES or status == 404:
        return ObjectNotFound
    if status in (409, 410):
        # 409: channel invalidated or superseded (§2.10); 410: the pipe failed over to another
        # region (Kafka connector, §2.10) — a reopen against the new primary is the cure.
        return ReopenChannel
    if status == 413:
        return PayloadTooLarge
    return FatalError


def reopen_class(exc: ReopenChannel) -> type[ReopenChannel]:
    """What a ReopenChannel means to a writer that never appends while it reopens its channel.

    Such a writer (the channel writer serialises both) cannot race its own reopen, so a moved
    sequencer means another opener with the same identity took the channel: ChannelFenced
    (§2.5, §2.11). Anything else stays ReopenChannel: reopen and replay.
    """
    if isinstance(exc, ChannelFenced) or exc.code in FENCING_CODES:
        return ChannelFenced
    return ReopenChannel


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (delta-seconds or HTTP date); None if absent or junk.

    Snowflake does not document `Retry-After` (§2.10, open question 12); honoured when present.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; a zone-less parse means "GMT" was written as "-0000".
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def parse_error_body(body: bytes) -> tuple[str | None, str]:
    """The (code, message) of an error body; tolerant of non-JSON and of every key Snowflake uses.

    The documented key is `code`; the SDK also accepts `error_code`, and EMQX saw `error`
    (§2.10, `official-sdk-wire.md` §4.3). A body that is not JSON is the message itself.
    """
    if not body:
        return None, ""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, _one_line(body.decode("utf-8", "replace"))
    if not isinstance(parsed, dict):
        return None, _one_line(str(parsed))
    code: str | None = None
    for key in ("code", "error_code", "error"):
        value = parsed.get(key)
        if value is not None and value != "":
            code = str(value)
            break
    message = parsed.get("message")
    return code, _one_line(str(message)) if message is not None else ""


def error_for(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    what: str,
    now: float | None = None,
) -> DeliveryError:
    """Build the typed exception for a failed response, with a one-line operator message.

    `what` names the operation and its object (e.g. "append to DB.SCHEMA.PIPE/CHANNEL"); `now`
    is wall-clock seconds for an HTTP-date `Retry-After` (defaults to the system clock).
    """
    code, server_message = parse_error_body(body)
    cls = classify(status, code)
    parts = [f"{what} failed: HTTP {status}"]
    if code:
        parts.append(f" {code}")
    if server_message:
        parts.append(f": {server_message}")
    fix = _fix(cls, status, code)
    if fix:
        parts.append(f" — {fix}")
    message = "".join(parts)
    if cls is RetryableError:
        retry_after = parse_retry_after(_header(headers, "retry-after"), now=now)
        return RetryableError(message, status=status, code=code, retry_after=retry_after)
    return cls(message, status=status, code=code)


@contextlib.contextmanager
def map_transport_errors(*, ambiguous: bool, what: str = "request") -> Iterator[None]:
    """Turn httpx transport failures into streamd's tree.

    An idempotent request (`ambiguous=False`) becomes `RetryableError`. For an append
    (`ambiguous=True`) the server may or may not have taken the rows, so resending the same
    continuation token is not safe: it becomes `ReopenChannel`, and the sink replays from the
    committed offset (§2.6, §2.11 step 5). Failures that happen before a byte is sent (connect,
    pool wait) are never ambiguous and stay retryable.
    """
    try:
        yield
    except httpx.UnsupportedProtocol as exc:
        raise FatalError(
            f"{what} failed: {type(exc).__name__}: {exc} — the URL must start with http:// or https://"
        ) from exc
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        untrusted = _certificate_error(exc)
        if untrusted is not None:
            # Retrying cannot help: the same certificate comes back. Say so at once.
            raise FatalError(
                f"{what} failed: the server's TLS certificate is not trusted "
                f"({untrusted.verify_message or untrusted.reason}); set target.ca_file to the PEM "
                "bundle of the CA that signed it (a TLS-inspecting proxy's or a private link's), "
                "or install that CA in the system trust store"
            ) from exc
        # The request never left this process, so its outcome is known: not received.
        raise RetryableError(f"{what} failed before sending: {_describe(exc)}") from exc
    except httpx.RequestError as exc:
        if ambiguous:
            raise ReopenChannel(
                f"{what} outcome unknown ({_describe(exc)}); "
                "reopen and replay from the committed offset"
            ) from exc
        raise RetryableError(f"{what} failed: {_describe(exc)}") from exc


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure behind a connect error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _describe(exc: BaseException) -> str:
    # httpx's messages carry no URL, so no continuation token or other secret leaks through here.
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fix(cls: type[DeliveryError], status: int, code: str | None) -> str | None:
    if cls is AuthError:
        return _FIX_401 if status == 401 else _FIX_403
    if code is not None and code in _FIX_CODE:
        return _FIX_CODE[code]
    if cls is FatalError:
        return _FIX_FATAL
    return _FIXES.get(cls)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # httpx.Headers is case-insensitive already; a plain dict from a caller may not be.
    value = headers.get(name)
    if value is not None:
        return value
    for key, candidate in headers.items():
        if key.lower() == name:
            return candidate
    return None


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    if len(flat) > _MESSAGE_LIMIT:
        return flat[: _MESSAGE_LIMIT - 1] + "…"
    return flat
