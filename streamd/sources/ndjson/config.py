"""The `[[sources]] kind = "ndjson"` section: which files to follow, into which table, and how."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from streamd.config.base import FrozenModel

MiB = 1024 * 1024


class NdjsonSourceConfig(FrozenModel):
    """Tails NDJSON files (one JSON object per line) matching globs into one table."""

    kind: Literal["ndjson"] = "ndjson"
    """Selects this source type."""
    name: str = Field(default="ndjson", min_length=1)
    """Unique name of this source (appears in logs; names its position file)."""
    paths: list[str] = Field(min_length=1)
    """Glob patterns of the files to follow, e.g. ["/var/log/app/*.ndjson"]; new matches are picked up."""
    table: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$"
    )
    """Fully qualified target table, DB.SCHEMA.TABLE."""
    poll_interval_ms: float = Field(default=250, gt=0)
    """Pause at end of all files before looking again (for new data and new files)."""
    max_line_bytes: int = Field(default=1 * MiB, ge=16)
    """Longer lines go to the dead-letter queue."""
    start_at: Literal["beginning", "end"] = "beginning"
    """On the very first start (no saved positions): read existing files from the beginning, or only what is appended."""
    drain_timeout_s: float = Field(default=5, ge=0)
    """On shutdown, how long to wait for acks of lines already sent, so their positions are saved."""

    @field_validator("paths")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("a path pattern is empty")
        return value

    def tables(self) -> list[str]:
        """The fully qualified table this source writes."""
        return [self.table]
