"""The sink seam: what a delivery mode takes batches from, and what the daemon asks of it.

Both modes (streaming channels, classic-Snowpipe files) are a `Sink` over a `BatchSource`: they
take a lane's batches through the source, release each range once Snowflake has it, and answer
the daemon's status, readiness and drain questions the same way, so the daemon never asks which
mode a lane uses.
"""

from __future__ import annotations

from typing import Any, Protocol

from streamd.rows import Batch


class BatchSource(Protocol):
    """A lane's rows as batches whose offsets are their durable sequence numbers."""

    @property
    def committed(self) -> int:
        """The highest offset released as committed (0: none)."""
        ...

    @property
    def may_drop_unreleased(self) -> bool:
        """Whether rows handed out may vanish before they are released (a full spool dropping
        its oldest); when False a sink may let go of a batch's body and `reread` it."""
        ...

    def stats(self) -> dict[str, Any]:
        """The storage behind the source, for `streamd inspect`."""
        ...

    def replay_from(self, offset: int) -> None:
        """Hand out rows from `offset` on next (everything before is committed)."""
        ...

    async def next_batch(self) -> Batch | None:
        """The next batch to deliver, or None once the lane has ended and all was handed out."""
        ...

    async def reread(self, first: int, last: int) -> list[Batch]:
        """The rows `first`–`last` again, as contiguous runs; rows no longer stored are left out."""
        ...

    async def release(self, upto: int) -> None:
        """Rows up to `upto` are committed in Snowflake: they need not be kept any longer."""
        ...


class Sink(Protocol):
    """One lane's delivery, whatever the mode."""

    table: str
    is_open: bool
    last_error: str | None
    """The last failure retried or refused, for the start-up timeout's message."""

    @property
    def name(self) -> str:
        """What it delivers through, for operators ("channel DB.S.PIPE/NAME", "files …")."""
        ...

    @property
    def committed_offset(self) -> int:
        """The highest offset known committed in Snowflake (0: none)."""
        ...

    def commit_lag_s(self) -> float:
        """Age of the oldest row handed to Snowflake and not yet known committed (0: none)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """Its state for `/status` and `streamd inspect`."""
        ...

    async def open(self) -> None:
        """Get ready to deliver, resuming after what is already committed."""
        ...

    async def run(self) -> None:
        """Deliver every batch until the source ends, then return once all are committed."""
        ...
