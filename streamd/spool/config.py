"""The spool's configuration model (one per lane; the daemon composes it into the root config)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from streamd.config.base import FrozenModel

MiB = 1024 * 1024


class SpoolConfig(FrozenModel):
    """How one lane's spool syncs, rolls and bounds its disk use."""

    fsync: Literal["always", "interval", "never"] = "interval"
    """When appended rows are fsynced: before `append` returns, every `fsync_interval_ms`, or never (OS decides)."""
    fsync_interval_ms: float = Field(default=200, gt=0)
    """With fsync = "interval": the longest acknowledged rows wait for an fsync (plus one fsync's duration)."""
    segment_bytes: int = Field(default=64 * MiB, ge=256)
    """A segment file rolls before it would grow past this; also the largest row the spool accepts."""
    max_bytes: int = Field(default=1024 * MiB, ge=256)
    """Disk the lane's segments may use; whole segments are freed once every row in them is committed."""
    when_full: Literal["block", "drop_oldest", "drop_newest"] = "block"
    """At max_bytes: wait for commits, delete the oldest uncommitted segment(s), or refuse the new rows."""

    @model_validator(mode="after")
    def _segment_fits(self) -> SpoolConfig:
        if self.segment_bytes > self.max_bytes:
            raise ValueError(
                f"spool segment_bytes ({self.segment_bytes}) must not exceed max_bytes ({self.max_bytes})"
            )
        return self
