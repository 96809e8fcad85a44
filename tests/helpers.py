"""Helpers shared by unit and integration tests (`from tests.helpers import eventually`).

`eventually` is the one place a test polls: for state that nothing signals (a fake's counter, a
source's port, rows in a table that a scheduler fills). It waits with a deadline and, on timeout,
fails with what it waited for and the last value it saw. The deadline is a hang guard, not a
measurement: no test asserts how long anything took.
"""

from __future__ import annotations

import inspect
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio

from streamd.rows import Row
from streamd.testing import start_standin_process

T = TypeVar("T")


async def eventually(
    probe: Callable[[], T | Awaitable[T]],
    check: Callable[[T], object] = bool,
    *,
    within: float = 30,
    interval: float = 0.01,
    what: str | None = None,
) -> T:
    """Call `probe` (sync or async) until `check(value)` holds; return that value.

    Sleeps `interval` seconds between calls (0: just a checkpoint, e.g. for a `ManualClock`).
    After `within` seconds, raises `AssertionError` naming `what` and the last value seen.
    """
    last = "(the probe never returned)"
    with anyio.move_on_after(within):
        while True:
            value: Any = probe()
            if inspect.isawaitable(value):
                value = await value
            last = repr(value)
            if check(value):
                return value  # type: ignore[no-any-return]
            await anyio.sleep(interval)
    raise AssertionError(
        f"{what or _describe(probe)}: not true within {within} s (a hang guard); last: {last}"
    )


def _describe(probe: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(probe).strip()
    except (OSError, TypeError):
        return getattr(probe, "__qualname__", repr(probe))


class DeadLetterRecorder:
    """A source's dead-letter sink that keeps what it is given, one dict per record."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    async def __call__(
        self, table: str, row: Row, *, rule: str, detail: str, position: str | None = None
    ) -> None:
        self.records.append(
            {"table": table, "row": row, "rule": rule, "detail": detail, "position": position}
        )


@contextmanager
def standin_process(data_dir: Path, *args: str) -> Iterator[str]:
    """`streamd standin serve` in its own process (port 0); yields its URL, terminates it after."""
    proc: subprocess.Popen[str]
    proc, url = start_standin_process(data_dir, *args)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()


def spb(seq: int | None, metrics: list[dict[str, Any]], timestamp: int = 1000) -> bytes:
    """A Sparkplug B payload: `metrics` are Metric fields by name; no `seq` for an NDEATH."""
    from streamd.sources.mqtt.sparkplug_b_pb2 import Payload  # protobuf: only who needs it

    p: Any = Payload(timestamp=timestamp)
    if seq is not None:
        p.seq = seq
    for m in metrics:
        metric = p.metrics.add()
        for k, v in m.items():
            setattr(metric, k, v)
    out: bytes = p.SerializeToString()
    return out
