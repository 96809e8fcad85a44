"""Reading rows across a lane's segments (for replay and for feeding the batcher)."""

from __future__ import annotations

import anyio
import anyio.to_thread

from streamd.spool.chunk import RowRun
from streamd.spool.segment import Segment, read_run


async def read_segments(
    segments: list[Segment], from_seq: int, max_rows: int, max_bytes: int
) -> RowRun:
    """Up to `max_rows` consecutive rows from `from_seq` on, ≤ `max_bytes` of body (at least one).

    `segments` is the spool's live list: appends, commits and drops may change it while a read
    is in a worker thread, so each step looks again rather than holding on to a snapshot. Each
    segment is read only up to the size it had when looked at, so a write in progress is never
    seen half done.
    """
    run = RowRun(from_seq, max_rows, max_bytes)
    while run.rows < max_rows and run.nbytes < max_bytes:
        want = run.next_seq
        segment = next((s for s in segments if s.count and s.last_seq >= want), None)
        if segment is None:
            break
        if run.rows and segment.first_seq > want:
            break  # a gap (rows dropped meanwhile): the run stays contiguous
        seq, offset = segment.seek_hint(max(want, segment.first_seq))
        rows_before = run.rows
        try:
            await anyio.to_thread.run_sync(read_run, segment.path, seq, offset, segment.size, run)
        except FileNotFoundError:
            continue  # deleted by commit or drop_oldest meanwhile; look again
        if run.rows == rows_before or run.last < segment.last_seq:
            break  # nothing more, or stopped by a limit inside this segment
    return run
