"""A channel's identity: the one `ChannelId` every streaming module keys its channels by."""

from __future__ import annotations

from typing import NamedTuple


class ChannelId(NamedTuple):
    """A channel's identity, upper-cased like unquoted identifiers (§2.5: path names are
    case-insensitive)."""

    db: str
    schema: str
    pipe: str
    channel: str
