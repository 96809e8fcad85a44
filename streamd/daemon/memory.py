"""The daemon's memory policy, decided here for the whole process: heap trim and the cyclic collector.

Heap trim: glibc's malloc keeps freed memory inside its heap and returns only the heap's top on its
own, so a burst (a lane spooled in one append, 4 MB batches read back while draining) would stay
resident for as long as one live object sits above it. `malloc_trim(0)` releases every whole free
page of every arena; the daemon calls it every TRIM_INTERVAL_S in a worker thread (ctypes releases
the GIL). Where the C library has no `malloc_trim` (musl, macOS) the loop returns at once.

Collector: rows are freed by reference counting as soon as they are spooled, but rows waiting in
a full lane (one per blocked producer, with its coroutines and events) survive into the older
generations and are traversed again and again. So the youngest generation is collected every
YOUNG_GENERATION_THRESHOLD net allocations rather than CPython's 700; cyclic garbage here is rare
(mostly the HTTP stack's), so it waits a little longer, never unboundedly, and no cycle may hold
anything large (the streaming client cuts each response loose for that reason). Once sources
report their long-lived objects built (`SourceContext.started`: e.g. 10,000 producer tasks of
~40 tracked objects each), those are frozen out of the collector's traversals (`gc.freeze`);
reference counting still frees them. Everything is restored when the run ends.
bench/README.md ("Memory policy") has the figures behind these choices.
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
"""How often to trim; one trim takes a few ms (longer with more free pages)."""


YOUNG_GENERATION_THRESHOLD = 10_000
"""Net tracked allocations between two youngest-generation collections (CPython's default: 700)."""


class CollectorPolicy:
    """How the cyclic collector runs while the daemon runs; undone when the run ends."""

    def __init__(self) -> None:
        self._applied = False

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Pace the youngest generation for the block; afterwards, thresholds and freeze as before.

        The threshold is never lowered. What `freeze` froze is unfrozen at the end, unless objects
        were frozen before the run (by whoever embeds the daemon): they stay frozen, with ours.
        """
        thresholds = gc.get_threshold()
        frozen_before = gc.get_freeze_count()
        gc.set_threshold(max(thresholds[0], YOUNG_GENERATION_THRESHOLD), *thresholds[1:])
        self._applied = True
        try:
            yield
        finally:
            self._applied = False
            if frozen_before == 0:
                gc.unfreeze()
            gc.set_threshold(*thresholds)

    def freeze(self) -> None:
        """Exempt every object alive now from cyclic collection until the run ends (else nothing)."""
        if self._applied:
            gc.freeze()


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
