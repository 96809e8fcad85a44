"""The stand-in's diagnostic timing log: one line per batch, times in order, off by default."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import orjson

from tests.conftest import StandinFactory

from .conftest import connect
from .test_streaming_contract import append, ndjson, open_channel, row, wait_committed


async def test_one_line_per_batch_with_times_in_order(
    make_standin: StandinFactory, tmp_path: Path
) -> None:
    """Received ≤ queued ≤ responded, commit no earlier than due; reopen discards are recorded;
    status calls get a line each."""
    path = tmp_path / "timing.jsonl"
    standin = make_standin(timing_log=path, commit_delay_s=0.1)
    before = time.monotonic()
    async with connect(standin) as c:
        opened = await open_channel(c, "c1")
        r = await append(c, "c1", opened["next_continuation_token"], ndjson(row("a")), "1")
        r = await append(
            c, "c1", r.json()["next_continuation_token"], ndjson(row("b"), row("c")), "3"
        )
        await wait_committed(c, "c1", "3")
        standin.faults.freeze_commits()
        await append(c, "c1", r.json()["next_continuation_token"], ndjson(row("d")), "4")
        await open_channel(c, "c1")  # discards the frozen batch
    # The last line is written by whichever comes later: the discard or the response going out.
    for _ in range(250):
        if path.read_text().count('"kind":"append"') == 3:
            break
        await anyio.sleep(0.02)
    records = [orjson.loads(line) for line in path.read_text().splitlines()]
    lines = [x for x in records if x["kind"] == "append"]
    polls = [x for x in records if x["kind"] == "status"]
    assert polls
    assert all(p["pipe"] == "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW-STREAMING" for p in polls)
    assert all(before <= p["received"] <= p["responded"] for p in polls)
    assert [(x["end_offset_token"], x["rows"], x["outcome"]) for x in lines] == [
        ("1", 1, "committed"),
        ("3", 2, "committed"),
        ("4", 1, "discarded"),
    ]
    for x in lines:
        assert x["channel"] == "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW-STREAMING.C1"
        assert before <= x["received"] <= x["queued"] <= x["responded"] <= time.monotonic()
        assert x["due"] - x["queued"] >= 0.099
    for x in lines[:2]:
        assert x["due"] <= x["commit_started"] <= x["settled"]
    assert lines[2]["commit_started"] is None


async def test_no_log_unless_asked(make_standin: StandinFactory) -> None:
    """Without a path there is no timing record at all."""
    standin = make_standin()
    assert standin.timing is None
