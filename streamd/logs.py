"""The structlog chain: context, level, UTC timestamp, secret redaction, JSON or console rendering.

Events are snake_case past-tense facts (`channel_opened`, `batch_committed`) with stable keys
(`table`, `channel`, `rows`, `bytes`, `offset_token`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import orjson
import structlog

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(private_key|passphrase|password|secret|token(?!_count)|authorization|jwt|api_key)", re.I
)
# Values that are secrets whatever key they hide under: PEM blocks and JWTs.
_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
    re.S,
)
# Offset and continuation tokens are positions, not credentials; operators need them in logs.
_NOT_SECRET = frozenset(
    {"offset_token", "committed_offset_token", "start_offset_token", "end_offset_token"}
)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: _redact_item(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def _redact_item(key: str, value: Any) -> Any:
    if key not in _NOT_SECRET and _SECRET_KEY.search(key) and value is not None:
        return REDACTED
    return _redact_value(value)


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace secret-looking keys and values before anything is rendered."""
    for key in list(event_dict):
        event_dict[key] = _redact_item(key, event_dict[key])
    return event_dict


def _orjson_dumps(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def configure(
    format: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
) -> None:
    """Configure structlog once for the process: JSON lines on stdout unless stdout is a terminal."""
    use_console = format == "console" or (format == "auto" and sys.stdout.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
        if use_console
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(**context: Any) -> Any:
    """A bound logger with `context` on every event."""
    return structlog.get_logger().bind(**context)
