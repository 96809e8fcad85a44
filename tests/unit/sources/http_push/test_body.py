"""HTTP push answers: every status after parsing has the documented body shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamd.sources.http_push.body import answer, not_admitted, parse_body

from .test_source import NDJSON, URL, Pipeline, ndjson, serving

SHAPE = {"accepted", "first_offset", "last_offset", "errors", "refused", "pending", "not_sent"}


def test_not_admitted_sends_every_row_again_and_judges_no_line() -> None:
    parsed = parse_body(
        b'{"id": 1}\nnot json\n{"id": 2}\n', "ndjson", max_row_bytes=1024, max_rows=10
    )
    body = not_admitted(parsed, "pipeline is full; retry later")
    assert body.keys() >= SHAPE
    assert body["accepted"] == 0
    assert body["not_sent"] == [1, 3]
    assert body["errors"] == []
    assert body["error"] == "pipeline is full; retry later"
    assert answer(parsed, {}, 0)[1].keys() <= body.keys()


async def test_inflight_budget_429_has_the_documented_body(tmp_path: Path) -> None:
    limits: dict[str, Any] = {"max_inflight_rows": 2, "max_rows_per_request": 2}
    async with serving(tmp_path, Pipeline(), **limits) as (client, source):
        source._inflight = 1  # as if one row of another request awaited its ack
        r = await client.post(URL, content=ndjson(1, 2), headers=NDJSON)
    assert r.status_code == 429
    assert r.headers["Retry-After"]
    body = r.json()
    assert body.keys() >= SHAPE
    assert (body["accepted"], body["not_sent"]) == (0, [1, 2])
    assert "awaiting durability" in body["error"]
