"""The exception tree. Retry, reopen or stop is decided by class, never by message text.

::

    StreamdError
    ├── ConfigError                 bad or missing configuration; names the key and the fix
    ├── SourceError                 a source cannot produce (bad input file, broker refused us)
    ├── NotInstalled                a feature whose packages this install leaves out (streaming-only)
    ├── DeliveryError               talking to Snowflake failed
    │   ├── RetryableError          try the same request again later (429, 5xx, transport); carries retry_after
    │   ├── ReopenChannel           the channel is unusable; reopen it and replay from the committed offset
    │   │   └── ChannelFenced       another opener took the channel over; this writer must stop
    │   └── FatalError              an operator must act (auth, grants, missing object, oversize row)
    │       ├── AuthError           401/403 that a token refresh did not cure
    │       ├── ObjectNotFound      database, schema, table, pipe or channel does not exist
    │       ├── PayloadTooLarge     one row is bigger than a request may carry
    │       └── SqlError            a SQL API statement failed (carries Snowflake's code and sqlState)
    └── RowRejected                 one row broke a rule; it is dead-lettered, the batch goes on

Every error carries a one-line message meant for an operator at 3 a.m.: what broke and how to fix it.
"""

from __future__ import annotations


class StreamdError(Exception):
    """Base of every error streamd raises on purpose."""


class ConfigError(StreamdError):
    """Configuration is invalid; `problems` holds one line per broken key."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class SourceError(StreamdError):
    """A source cannot go on producing."""


class NotInstalled(StreamdError):
    """A feature needs a package the streaming-only install leaves out (stand-in, files mode)."""


class DeliveryError(StreamdError):
    """Delivery to Snowflake failed; the subclass says what to do about it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RetryableError(DeliveryError):
    """Transient: send the same request again after `retry_after` seconds (or backoff)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class ReopenChannel(DeliveryError):
    """The channel's continuation token is no longer good: reopen and replay from the committed offset."""


class ChannelFenced(ReopenChannel):
    """A newer opener owns the channel; this writer must stop writing it."""


class FatalError(DeliveryError):
    """Needs an operator; retrying will not help."""


class AuthError(FatalError):
    """Authentication or authorisation failed after a fresh token."""


class ObjectNotFound(FatalError):
    """A database, schema, table, pipe or channel is missing or not visible to the role."""


class PayloadTooLarge(FatalError):
    """A single row does not fit in one append request."""


class SqlError(FatalError):
    """A SQL statement failed; `sql_state` is Snowflake's SQLSTATE when it sent one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        sql_state: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.sql_state = sql_state


class RowRejected(StreamdError):
    """One row broke a validation rule; the row is dead-lettered, never silently dropped."""

    def __init__(self, message: str, *, table: str, rule: str, position: str | None = None) -> None:
        super().__init__(message)
        self.table = table
        self.rule = rule
        self.position = position
