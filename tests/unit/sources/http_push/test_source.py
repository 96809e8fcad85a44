"""HTTP push source over a real server on port 0: answers only once rows are durable."""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
import zstandard
from anyio.streams.memory import MemoryObjectReceiveStream

from streamd.clock import SystemClock
from streamd.rows import Envelope, format_offset
from streamd.sources.base import SourceContext
from streamd.sources.http_push.body import BodyError, decode_body
from streamd.sources.http_push.source import HttpPushSource, HttpPushSourceConfig
from streamd.sources.synthetic.sequences import FileSequences
from tests.helpers import DeadLetterRecorder, eventually

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NDJSON = {**AUTH, "Content-Type": "application/x-ndjson"}
TABLE = "SHOP.RAW.ORDERS"


class Pipeline:
    """Plays lanes + spool: acks each row after `delay` with the next seq (None when `refuse`)."""

    def __init__(self, delay: float = 0.0, refuse: set[int] | None = None) -> None:
        self.delay = delay
        self.refuse = refuse or set()
        self.envelopes: list[Envelope] = []
        self.seq = 0
        self.acked_at: float | None = None

    async def run(self, receive: MemoryObjectReceiveStream[Envelope]) -> None:
        async with receive:
            async for envelope in receive:
                if self.delay:
                    await anyio.sleep(self.delay)
                self.envelopes.append(envelope)
                assert envelope.ack is not None
                if envelope.row.get("id") in self.refuse:
                    envelope.ack(None)
                else:
                    self.seq += 1
                    envelope.ack(self.seq)
                self.acked_at = time.monotonic()


@asynccontextmanager
async def serving(
    tmp_path: Path,
    pipeline: Pipeline | None,
    *,
    capacity: int = 64,
    dead: DeadLetterRecorder | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, HttpPushSource]]:
    config = HttpPushSourceConfig.model_validate(
        {"port": 0, "tokens": [TOKEN, "other"], "tables": {"orders": TABLE}, **overrides}
    )
    source = HttpPushSource(config, dead)
    send, receive = anyio.create_memory_object_stream[Envelope](capacity)
    ctx = SourceContext(send, SystemClock(), FileSequences(tmp_path / "seq.json"))
    async with send, receive, anyio.create_task_group() as tg:
        url = await tg.start(source.run, ctx)
        if pipeline is not None:
            tg.start_soon(pipeline.run, receive.clone())
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield client, source
        tg.cancel_scope.cancel()


def ndjson(*ids: int) -> bytes:
    return b"".join(orjson.dumps({"id": i}) + b"\n" for i in ids)


URL = "/v1/tables/orders/rows"


async def test_ndjson_and_json_array_are_accepted_with_offsets(tmp_path: Path) -> None:
    pipeline = Pipeline()
    async with serving(tmp_path, pipeline) as (client, _):
        r = await client.post(URL, content=ndjson(1, 2, 3), headers=NDJSON)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["accepted"] == 3
        assert (body["first_offset"], body["last_offset"]) == (format_offset(1), format_offset(3))
        assert body["errors"] == []
        assert body["not_sent"] == []
        assert body["pending"] == []
        r = await client.post(URL, json=[{"id": 4}, {"id": 5}], headers=AUTH)
        assert r.status_code == 200
        assert r.json()["accepted"] == 2
    assert [e.row["id"] for e in pipeline.envelopes] == [1, 2, 3, 4, 5]
    assert {e.table for e in pipeline.envelopes} == {TABLE}
    assert {e.key for e in pipeline.envelopes} == {"http_push"}


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
async def test_compressed_bodies(tmp_path: Path, encoding: str) -> None:
    raw = ndjson(1, 2)
    data = gzip.compress(raw) if encoding == "gzip" else zstandard.compress(raw)
    async with serving(tmp_path, Pipeline()) as (client, _):
        headers = {**NDJSON, "Content-Encoding": encoding}
        r = await client.post(URL, content=data, headers=headers)
        assert r.status_code == 200
        assert r.json()["accepted"] == 2
        r = await client.post(URL, content=b"garbage", headers=headers)
        assert r.status_code == 400


async def test_auth_missing_malformed_and_wrong(tmp_path: Path) -> None:
    async with serving(tmp_path, Pipeline()) as (client, _):
        ct = {"Content-Type": "application/x-ndjson"}
        r = await client.post(URL, content=ndjson(1), headers=ct)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        r = await client.post(URL, content=ndjson(1), headers={**ct, "Authorization": "Basic x"})
        assert r.status_code == 401
        r = await client.post(URL, content=ndjson(1), headers={**ct, "Authorization": "Bearer no"})
        assert r.status_code == 403
        r = await client.post(
            URL, content=ndjson(1), headers={**ct, "Authorization": "Bearer other"}
        )
        assert r.status_code == 200  # every configured token is accepted


async def test_tokens_resolve_from_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_TOKEN", "from-env")
    (tmp_path / "token").write_text("from-file\n")
    config = HttpPushSourceConfig.model_validate(
        {"tokens": ["env:PUSH_TOKEN", f"file:{tmp_path / 'token'}"], "tables": {"o": TABLE}}
    )
    assert [t.get_secret_value() for t in config.tokens] == ["from-env", "from-file"]
    assert "from-env" not in repr(config)
    assert config.tables() == [TABLE]
    with pytest.raises(ValueError, match="NOPE is not set"):
        HttpPushSourceConfig.model_validate({"tokens": ["env:NOPE"], "tables": {"o": TABLE}})
    with pytest.raises(ValueError, match=r"DB\.SCHEMA\.TABLE"):
        HttpPushSourceConfig.model_validate({"tokens": ["t"], "tables": {"o": "ORDERS"}})


async def test_unknown_table_media_type_and_encoding(tmp_path: Path) -> None:
    async with serving(tmp_path, Pipeline()) as (client, _):
        r = await client.post("/v1/tables/nope/rows", content=ndjson(1), headers=NDJSON)
        assert r.status_code == 404
        r = await client.post(URL, content=ndjson(1), headers={**AUTH, "Content-Type": "text/csv"})
        assert r.status_code == 415
        r = await client.post(URL, content=ndjson(1), headers={**NDJSON, "Content-Encoding": "br"})
        assert r.status_code == 415


async def test_413_for_body_rows_and_row_size(tmp_path: Path) -> None:
    dead = DeadLetterRecorder()
    limits = {"max_body_bytes": 4096, "max_row_bytes": 64, "max_rows_per_request": 5}
    async with serving(tmp_path, Pipeline(), dead=dead, **limits) as (client, _):
        r = await client.post(URL, content=b"x" * 5000, headers=NDJSON)
        assert r.status_code == 413
        bomb = gzip.compress(b"\n" * 100_000)  # small on the wire, too big decoded
        r = await client.post(URL, content=bomb, headers={**NDJSON, "Content-Encoding": "gzip"})
        assert r.status_code == 413
        r = await client.post(URL, content=ndjson(1, 2, 3, 4, 5, 6), headers=NDJSON)
        assert r.status_code == 413
        big = orjson.dumps({"id": 9, "pad": "x" * 100}) + b"\n"
        r = await client.post(URL, content=ndjson(1) + big, headers=NDJSON)
        assert r.status_code == 413
        body = r.json()
        assert body["accepted"] == 1
        assert body["errors"][0]["line"] == 2
    assert [d["rule"] for d in dead.records] == ["row_too_large"]


def test_decoding_is_capped() -> None:
    with pytest.raises(BodyError) as info:
        decode_body(zstandard.compress(b"a" * 10_000), "zstd", 1000)
    assert info.value.status == 413
    two_members = gzip.compress(b"a\n") + gzip.compress(b"b\n")
    assert decode_body(two_members, "gzip", 100) == b"a\nb\n"


async def test_bad_lines_400_valid_ones_accepted_and_bad_ones_dead_lettered(
    tmp_path: Path,
) -> None:
    pipeline, dead = Pipeline(), DeadLetterRecorder()
    body = ndjson(1) + b"{oops\n" + b"[1]\n\n" + ndjson(2)
    async with serving(tmp_path, pipeline, dead=dead) as (client, _):
        r = await client.post(URL, content=body, headers=NDJSON)
        assert r.status_code == 400
        answer = r.json()
        assert answer["accepted"] == 2
        assert [(e["line"], e["rule"]) for e in answer["errors"]] == [
            (2, "invalid_json"),
            (3, "not_an_object"),
        ]
        r = await client.post(URL, json=[{"id": 3}, 7], headers=AUTH)
        assert r.status_code == 400
        assert r.json()["errors"][0]["line"] == 2
    assert [e.row["id"] for e in pipeline.envelopes] == [1, 2, 3]
    assert [(d["table"], d["rule"], d["row"]) for d in dead.records[:2]] == [
        (TABLE, "invalid_json", {"_raw": "{oops"}),
        (TABLE, "not_an_object", {"_raw": "[1]"}),
    ]


async def test_answer_comes_only_after_the_acks(tmp_path: Path) -> None:
    pipeline = Pipeline(delay=0.2)
    async with serving(tmp_path, pipeline) as (client, _):
        r = await client.post(URL, content=ndjson(1, 2), headers=NDJSON)
        answered = time.monotonic()
    assert r.status_code == 200
    assert pipeline.acked_at is not None
    assert pipeline.acked_at <= answered
    assert len(pipeline.envelopes) == 2


async def test_refused_rows_answer_507(tmp_path: Path) -> None:
    async with serving(tmp_path, Pipeline(refuse={2})) as (client, _):
        r = await client.post(URL, content=ndjson(1, 2, 3), headers=NDJSON)
    assert r.status_code == 507
    assert r.headers["Retry-After"] == "1"
    assert r.json()["accepted"] == 2
    assert r.json()["refused"] == [2]


async def test_full_pipeline_answers_429_at_once_and_timeout_503(tmp_path: Path) -> None:
    dead = DeadLetterRecorder()
    async with serving(tmp_path, None, capacity=1, dead=dead, ack_timeout_s=2) as (client, src):
        results: dict[str, httpx.Response] = {}

        async def first() -> None:
            results["first"] = await client.post(URL, content=ndjson(1, 2), headers=NDJSON)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await eventually(lambda: src.refusing)  # the first request filled the stream, waits
            r = await client.post(URL, content=ndjson(3) + b"bad\n", headers=NDJSON)
            # At once: answered while the first request still waits for its acks (then a 503).
            assert "first" not in results
            assert r.status_code == 429
            assert r.headers["Retry-After"] == "1"
        assert dead.records == []  # a 429 dead-letters nothing: the client retries it all
        timed_out = results["first"]
        assert timed_out.status_code == 503
        assert "Retry-After" in timed_out.headers
        assert timed_out.json()["pending"] == [1, 2]
        assert timed_out.json()["not_sent"] == []
        assert src.inflight_rows == 2  # row 1 is in the stream, row 2 being sent: acks may come


async def test_inflight_budget_answers_429(tmp_path: Path) -> None:
    limits: dict[str, Any] = {"max_inflight_rows": 2, "max_rows_per_request": 2}
    async with serving(tmp_path, Pipeline(), **limits) as (client, source):
        source._inflight = 1  # as if one row of another request awaited its ack
        r = await client.post(URL, content=ndjson(1, 2), headers=NDJSON)
        assert r.status_code == 429
        source._inflight = 0
        r = await client.post(URL, content=ndjson(1, 2), headers=NDJSON)
        assert r.status_code == 200


async def test_concurrent_clients(tmp_path: Path) -> None:
    pipeline = Pipeline()
    answers: list[dict[str, Any]] = []
    async with serving(tmp_path, pipeline, capacity=8) as (client, source):

        async def post(client_no: int) -> None:
            ids = range(client_no * 100, client_no * 100 + 50)
            headers = {**NDJSON, "X-Client-Id": f"c{client_no}"}
            r = await client.post(URL, content=ndjson(*ids), headers=headers)
            assert r.status_code == 200, r.text
            answers.append(r.json())

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(post, n)
        assert source.inflight_rows == 0
    assert sum(a["accepted"] for a in answers) == 1000
    assert len(pipeline.envelopes) == 1000
    assert len({e.key for e in pipeline.envelopes}) == 20
