"""The daemon's memory policy: heap trimmed back to the OS, and the cyclic collector's pace.

Heap trim: hand memory freed after a burst back to the OS, so RSS follows what is in use.

glibc's malloc keeps what is freed inside its heap for reuse and returns only the top of the heap
on its own. A burst (a lane that filled while the event loop was held up, then was spooled in
one append of thousands of rows; 4 MB batches read back while draining a backlog) leaves tens of
MB free but resident, for as long as one live object sits above it. orjson makes such bursts
bigger than their NDJSON: each `orjson.dumps` result keeps a buffer of at least 4 KiB (3.12 and
later), whatever the row's size. In bench/stall.py the daemon sat at 148 MB through a commit
freeze and dropped to 108 MB after one `malloc_trim(0)` (7 ms), which releases every whole free
page of every arena (madvise), not just the top.

So the daemon trims every TRIM_INTERVAL_S in a worker thread (ctypes releases the GIL). Where the
C library has no `malloc_trim` (musl without it, macOS) the loop returns at once.

Collector pace: the cyclic collector's youngest generation runs every 700 net allocations of
tracked objects by default. Rows are dicts, freed by reference counting as soon as they are
spooled; they only count against that budget while they wait. When a lane is full, every row
waits (10,000 producers each hold one, with its send's coroutines and events), survives into the
older generations and is traversed there again and again: at 10,000 sensor tasks the collector
took ~35 % of the event loop's thread, and the daemon fell to ~7,300 of the 10,000 rows/s offered,
so the lane stayed full (bench/scale.py). Collecting the youngest generation every
YOUNG_GENERATION_THRESHOLD allocations instead kept up at ~76 % of a core. Cyclic garbage is rare
here (~1,000 objects/s, mostly from the HTTP stack), so it waits a little longer, not unbounded.
What cycles do hold lives longer, so none may hold anything large: httpx's responses did (each
append's ~100 KB body, 10–25 MB of RSS in bench/stall.py), and the streaming client now cuts
them loose (`streamd.snowflake.streaming._cut_loose`).
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import anyio.to_thread

from streamd.clock import Clock

TRIM_INTERVAL_S = 5.0
"""How often: a trim takes ~1–8 ms (more free pages, longer); bench/stall.py samples every 5 s."""


YOUNG_GENERATION_THRESHOLD = 10_000
"""Net tracked allocations between two youngest-generation collections (CPython's default: 700)."""


@contextmanager
def collector_paced() -> Iterator[None]:
    """Collect the youngest generation every YOUNG_GENERATION_THRESHOLD allocations, then restore."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], YOUNG_GENERATION_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def heap_trimmer() -> Callable[[], int] | None:
    """`malloc_trim(0)` of the C library this process runs on, or None if it has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def trim_all() -> int:
        return int(trim(0))

    return trim_all


async def trim_heap_loop(
    clock: Clock,
    *,
    interval_s: float = TRIM_INTERVAL_S,
    trim: Callable[[], int] | None = None,
) -> None:
    """Trim the heap every `interval_s` until cancelled; returns at once without a trimmer."""
    trimmer = trim if trim is not None else heap_trimmer()
    if trimmer is None:
        return
    while True:
        await clock.sleep(interval_s)
        await anyio.to_thread.run_sync(trimmer)
