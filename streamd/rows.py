"""Value types that flow through the pipeline: rows, envelopes, batches, offset tokens, channel keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

Row = dict[str, Any]
"""One row, keyed by column name as the target table spells it (upper case for unquoted names)."""

OFFSET_WIDTH = 20
"""Offset tokens are zero-padded to this width so string order equals numeric order."""


def format_offset(position: int) -> str:
    """The offset token for a position: zero-padded decimal, so tokens sort as strings."""
    if position < 0:
        raise ValueError(f"offset position must be >= 0, got {position}")
    return f"{position:0{OFFSET_WIDTH}d}"


def parse_offset(token: str | None) -> int | None:
    """The position an offset token stands for; None for a channel that has committed nothing."""
    if token is None or token == "":
        return None
    try:
        return int(token)
    except ValueError:
        raise ValueError(
            f"offset token {token!r} is not a streamd position; was the channel written by another client?"
        ) from None


class Envelope(NamedTuple):
    """A row on its way from a source to its table lane.

    A NamedTuple rather than a frozen dataclass: one is built per row, and a frozen dataclass's
    `__init__` (one `object.__setattr__` per field) cost ~0.7 µs of a row's budget.
    """

    table: str
    row: Row
    key: str = ""
    """Shard key: rows with one key (e.g. one producer) always share a channel, so stay in order."""
    ack: Callable[[int | None], None] | None = None
    """Called once the row is durable in the spool, with its sequence (its offset token), or with
    None when it was not spooled (dead-lettered, or refused by a full spool with drop_newest).
    Push sources answer their clients from here: nothing is acknowledged before it is durable."""


@dataclass(frozen=True, slots=True)
class ChannelKey:
    """Where a channel lives: database, schema, pipe and channel name."""

    database: str
    schema: str
    pipe: str
    channel: str

    def __str__(self) -> str:
        return f"{self.database}.{self.schema}.{self.pipe}/{self.channel}"


@dataclass(slots=True)
class Batch:
    """Rows encoded once as NDJSON, with the contiguous offset range they occupy on their channel."""

    table: str
    body: bytes
    rows: int
    first_offset: int
    last_offset: int
    oldest_event_monotonic: float = 0.0

    @property
    def start_token(self) -> str:
        return format_offset(self.first_offset)

    @property
    def end_token(self) -> str:
        return format_offset(self.last_offset)


def split_table(name: str) -> tuple[str, str, str]:
    """`DB.SCHEMA.TABLE` into its parts."""
    parts = name.split(".")
    if len(parts) != 3:
        raise ValueError(f"table {name!r} must be fully qualified as DATABASE.SCHEMA.TABLE")
    return parts[0], parts[1], parts[2]
