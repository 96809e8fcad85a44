"""Rows that must not reach Snowflake go here, one NDJSON line each, and are counted; never dropped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson

from streamd.logs import get_logger
from streamd.pipeline.stats import PipelineStats
from streamd.rows import Row


class DeadLetters:
    """Append-only dead-letter files under `<state_dir>/dead_letters/<table>.ndjson`."""

    def __init__(self, directory: Path, stats: PipelineStats) -> None:
        self.directory = directory
        self._stats = stats
        self._lock = anyio.Lock()
        self._log = get_logger()

    async def put(
        self, table: str, row: Row, *, rule: str, detail: str, position: str | None = None
    ) -> None:
        """Record one rejected row with the rule it broke."""
        record: dict[str, Any] = {
            "table": table,
            "rule": rule,
            "detail": detail,
            "position": position,
            "row": row,
        }
        line = orjson.dumps(record, default=str) + b"\n"
        path = self.directory / f"{table}.ndjson"
        async with self._lock:
            await anyio.to_thread.run_sync(_append, path, line)
        self._stats.reject(table, rule)
        self._log.error(
            "row_rejected",
            table=table,
            rule=rule,
            detail=detail,
            event_id=row.get("EVENT_ID"),
            dead_letter_file=str(path),
        )

    async def oversize(self, table: str, row: Row, size: int, position: str | None) -> None:
        """Batcher hook for a row bigger than any request may carry (`position`: its source key)."""
        await self.put(
            table,
            row,
            position=position,
            rule="row_too_large",
            detail=f"row is {size} bytes of NDJSON, over delivery.max_bytes; shrink the row or raise "
            "delivery.max_bytes (at most 4,000,000)",
        )


def _append(path: Path, line: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as f:
        f.write(line)
