"""How sources hand bad input to the dead-letter queue without importing the pipeline.

`DeadLetter` has the signature of `streamd.pipeline.dead_letters.DeadLetters.put`, so the daemon
passes that bound method straight in. A line that is not a JSON object cannot be a `Row`, so it
travels as `{"_raw": <the line as text>}` (see `raw_row`).
"""

from __future__ import annotations

from typing import Protocol

from streamd.rows import Row

RAW_KEY = "_raw"
"""Key under which an unparseable line's text is kept in its dead-letter record."""


class DeadLetter(Protocol):
    """Records one rejected row with the rule it broke; returns once it is written."""

    async def __call__(
        self, table: str, row: Row, *, rule: str, detail: str, position: str | None = None
    ) -> None: ...


def raw_row(line: bytes) -> Row:
    """A dead-letter row for a line that is not a JSON object (bytes kept as replaced text)."""
    return {RAW_KEY: line.decode("utf-8", errors="replace")}
