"""Reading records across a lane's segments (for replay and for feeding the batcher)."""

from __future__ import annotations

import anyio
import anyio.to_thread

from streamd.spool.segment import Segment, read_records


async def read_segments(
    segments: list[Segment], from_seq: int, max_rows: int, max_bytes: int
) -> list[tuple[int, bytes]]:
    """Up to `max_rows` records with seq ≥ from_seq and ≤ max_bytes of payload (at least one).

    `segments` is the spool's live list: appends, commits and drops may change it while a read
    is in a worker thread, so each step looks again rather than holding on to a snapshot. Each
    segment is read only up to the size it had when looked at, so a write in progress is never
    seen half done.
    """
    out: list[tuple[int, bytes]] = []
    while len(out) < max_rows:
        want = out[-1][0] + 1 if out else from_seq
        segment = next((s for s in segments if s.count and s.last_seq >= want), None)
        if segment is None:
            break
        want = max(want, segment.first_seq)
        seq, offset = segment.seek_hint(want)
        budget = max_bytes - sum(len(p) for _, p in out)
        if out and budget <= 0:
            break
        try:
            got = await anyio.to_thread.run_sync(
                read_records,
                segment.path,
                seq,
                offset,
                segment.size,
                want,
                max_rows - len(out),
                budget,
            )
        except FileNotFoundError:
            continue  # deleted by commit or drop_oldest meanwhile; look again
        if not got:
            break
        out.extend(got)
        if got[-1][0] < segment.last_seq:
            break  # stopped by the byte budget
    return out
