"""Splitting each row's event → committed latency by the stand-in's `--timing-log`.

Imported by `bench/latency.py` (run as a script, so `bench/` is on sys.path). Times are
`time.monotonic()` in both processes (CLOCK_MONOTONIC is system-wide on Linux).
"""

from __future__ import annotations

import bisect
from array import array
from pathlib import Path
from typing import Any

import orjson

from streamd.rows import parse_offset

PARTS = (
    ("client before server", "event -> append request received"),
    ("  of which server busy", "batch ready while an earlier append was in the server"),
    ("server append", "received -> response sent"),
    ("server commit", "response sent -> committed"),
    ("  of which delay left", "response sent -> commit due"),
    ("  of which scheduler", "commit due -> commit started"),
    ("  of which DuckDB", "commit started -> committed"),
    ("client after commit", "committed -> status poll saw it"),
    ("  of which next poll", "committed -> the client sent the poll that saw it"),
    ("  of which server status call", "the stand-in answering the poll that saw it"),
)


def server_log(path: Path) -> tuple[dict[int, dict[str, Any]], list[tuple[float, float]]]:
    """The stand-in's `--timing-log`: committed batches by end offset, and the (received,
    responded) times of its status calls in the order they were answered."""
    batches: dict[int, dict[str, Any]] = {}
    polls: list[tuple[float, float]] = []
    for line in path.read_text().splitlines():
        record = orjson.loads(line)
        if record["kind"] == "status":
            polls.append((record["received"], record["responded"]))
            continue
        end = parse_offset(record["end_offset_token"])
        if record["outcome"] == "committed" and end is not None:
            batches.setdefault(end, record)  # a discarded try of the same range is not the real one
    polls.sort(key=lambda p: p[1])
    return batches, polls


def status_call_share(polls: list[tuple[float, float]], settled: float, seen: float) -> float:
    """How long the stand-in spent, after `settled`, answering the poll the client saw it in.

    Polls of a pipe are sequential, so that is the last call answered before `seen`.
    """
    i = bisect.bisect_right([p[1] for p in polls], seen) - 1
    if i < 0:
        return 0.0
    received, responded = polls[i]
    return max(0.0, responded - max(received, settled))


def next_poll_wait(client_polls: list[tuple[float, float]], settled: float, seen: float) -> float:
    """How long after `settled` the client started the poll it saw the commit in (the poll whose
    start and end bracket `seen`)."""
    i = bisect.bisect_right([p[0] for p in client_polls], seen) - 1
    if i < 0:
        return 0.0
    return max(0.0, client_polls[i][0] - settled)


def breakdown(
    committed: list[tuple[float, int, int]],
    server: dict[int, dict[str, Any]],
    polls: list[tuple[float, float]],
    client_polls: list[tuple[float, float]],
    sent_at: array[float],
    linger_s: float,
) -> dict[str, list[float]]:
    """Per row, seconds spent in each of `PARTS`, plus `client-added` (the two client parts) and
    `client-added net` (less the time its batch was ready but the server still held an earlier
    append, appends being serial per channel, and the server's share of the status call)."""
    parts: dict[str, list[float]] = {name: [] for name, _ in PARTS}
    parts["client-added"] = []
    parts["client-added net"] = []
    parts["turnaround"] = []
    """Per batch that waited on the previous append: its response sent -> this request received."""
    first: dict[int, tuple[float, int]] = {}
    for at, rows, last in committed:
        first.setdefault(last, (at, rows))
    earlier: list[tuple[float, float]] = []
    """(received, responded) of the appends so far, in order: serial, so never overlapping."""
    for last, (seen, rows) in sorted(first.items()):
        rec = server[last]
        low = last - rows + 1
        assert parse_offset(rec["start_offset_token"]) == low, rec
        received, responded, settled = rec["received"], rec["responded"], rec["settled"]
        # When the batcher would have cut it with the writer free: linger after its first row, or
        # when its last row came if that was sooner (a batch full by rows or bytes).
        ready = min(sent_at[low - 1] + linger_s, sent_at[last - 1])
        busy = 0.0
        for got, answered in reversed(earlier):
            if answered <= ready:
                break  # and every one before it too
            busy += max(0.0, min(answered, received) - max(got, ready))
        if earlier and earlier[-1][1] > ready:
            parts["turnaround"].append(received - earlier[-1][1])
        earlier.append((received, responded))
        per_batch = {
            "  of which server busy": busy,
            "server append": responded - received,
            "server commit": settled - responded,
            "  of which delay left": rec["due"] - responded,
            "  of which scheduler": rec["commit_started"] - rec["due"],
            "  of which DuckDB": settled - rec["commit_started"],
            "client after commit": seen - settled,
            "  of which next poll": next_poll_wait(client_polls, settled, seen),
            "  of which server status call": status_call_share(polls, settled, seen),
        }
        after = per_batch["client after commit"]
        for seq in range(low, last + 1):
            before = received - sent_at[seq - 1]
            parts["client before server"].append(before)
            for name, value in per_batch.items():
                parts[name].append(value)
            parts["client-added"].append(before + after)
            server_share = busy + per_batch["  of which server status call"]
            parts["client-added net"].append(before + after - server_share)
    return parts
