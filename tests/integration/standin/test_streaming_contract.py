"""Contract tests for the stand-in's Snowpipe Streaming API, from the reference, over raw httpx."""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import orjson
import pytest
import zstandard
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from streamd.standin.http.auth import fingerprint
from streamd.standin.server import Standin
from tests.conftest import StandinFactory
from tests.helpers import eventually

from .conftest import connect

_PATH = "databases/manufacturing_demo/schemas/raw_data/pipes/SENSOR_DATA_RAW-STREAMING"
PIPE = f"/v2/streaming/{_PATH}"
ROWS = f"/v2/streaming/data/{_PATH}"
TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
SELECT_IDS = f"SELECT event_id FROM {TABLE} ORDER BY event_id"
COUNT_ROWS = f"SELECT count(*) FROM {TABLE}"


def row(event_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_timestamp": "2024-05-01T10:00:00.123456",
        "equipment_id": "EQ-1",
        "temperature": 71.5,
        "raw_payload": {"id": event_id, "nested": [1, 2]},
        **extra,
    }


def ndjson(*rows: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


@pytest.fixture
async def client(standin: Standin) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(standin) as c:
        yield c


async def open_channel(c: httpx.AsyncClient, name: str, **body: Any) -> dict[str, Any]:
    r = await c.put(f"{PIPE}/channels/{name}", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def append(
    c: httpx.AsyncClient, name: str, token: str, body: bytes, end: str, **headers: str
) -> httpx.Response:
    return await c.post(
        f"{ROWS}/channels/{name}/rows",
        params={"continuationToken": token, "startOffsetToken": end, "endOffsetToken": end},
        content=body,
        headers={"Content-Type": "application/x-ndjson", **headers},
    )


async def status(c: httpx.AsyncClient, *names: str) -> dict[str, Any]:
    r = await c.post(f"{PIPE}:bulk-channel-status", json={"channel_names": list(names)})
    assert r.status_code == 200, r.text
    return dict(r.json()["channel_statuses"])


async def wait_committed(c: httpx.AsyncClient, name: str, token: str) -> dict[str, Any]:
    st = await eventually(
        lambda: status(c, name),
        lambda found: found.get(name, {}).get("last_committed_offset_token") == token,
        interval=0.05,
        what=f"channel {name} committed up to {token}",
    )
    return dict(st[name])


async def sql(c: httpx.AsyncClient, statement: str) -> list[list[str | None]]:
    r = await c.post("/api/v2/statements", json={"statement": statement})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def test_append_is_not_commit_and_status_follows_the_commit(
    client: httpx.AsyncClient,
) -> None:
    opened = await open_channel(client, "c1")
    assert opened["channel_status"]["last_committed_offset_token"] is None
    r = await append(client, "c1", opened["next_continuation_token"], ndjson(row("a")), "1")
    assert r.status_code == 200
    token2 = r.json()["next_continuation_token"]
    r = await append(client, "c1", token2, ndjson(row("b"), row("c")), "3")
    assert r.status_code == 200
    right_after = (await status(client, "c1"))["c1"]
    assert right_after["last_committed_offset_token"] is None  # 200 ≠ committed
    assert right_after["rows_inserted"] == 0
    committed = await wait_committed(client, "c1", "3")
    assert committed["rows_inserted"] == 3
    assert committed["rows_parsed"] == 3
    assert committed["rows_error_count"] == committed["rows_errors"] == 0
    assert committed["channel_status_code"] == "SUCCESS"
    ids = await sql(client, SELECT_IDS)
    assert ids == [["a"], ["b"], ["c"]]


async def test_reopen_stales_old_token_and_returns_committed_offset(
    client: httpx.AsyncClient,
) -> None:
    first = await open_channel(client, "c1")
    r = await append(client, "c1", first["next_continuation_token"], ndjson(row("a")), "1")
    old_token = r.json()["next_continuation_token"]
    await wait_committed(client, "c1", "1")
    second = await open_channel(client, "c1")
    assert second["channel_status"]["last_committed_offset_token"] == "1"
    r = await append(client, "c1", old_token, ndjson(row("b")), "2")
    assert r.status_code == 400
    assert r.json()["code"] == "STALE_CONTINUATION_TOKEN_SEQUENCER"
    r = await append(client, "c1", second["next_continuation_token"], ndjson(row("b")), "2")
    assert r.status_code == 200


async def test_reopen_discards_uncommitted_rows(
    make_standin: StandinFactory,
) -> None:
    standin = make_standin(commit_delay_s=1.0)
    async with httpx.AsyncClient(base_url=standin.url) as c:
        c.headers["Authorization"] = "Bearer " + await _scoped(c)
        first = await open_channel(c, "c1")
        r = await append(c, "c1", first["next_continuation_token"], ndjson(row("lost")), "7")
        assert r.status_code == 200
        again = await open_channel(c, "c1")
        assert again["channel_status"]["last_committed_offset_token"] is None
        # A channel commits in append order: once a later batch has committed, the discarded
        # one would have landed before it if it were still pending.
        r = await append(c, "c1", again["next_continuation_token"], ndjson(row("kept")), "8")
        assert r.status_code == 200
        st = await wait_committed(c, "c1", "8")
        assert st["rows_inserted"] == 1
        assert await sql(c, COUNT_ROWS) == [["1"]]


async def test_fail_on_uncommitted_rows_409(make_standin: StandinFactory) -> None:
    standin = make_standin(commit_delay_s=5.0)
    async with httpx.AsyncClient(base_url=standin.url) as c:
        c.headers["Authorization"] = "Bearer " + await _scoped(c)
        first = await open_channel(c, "c1")
        await append(c, "c1", first["next_continuation_token"], ndjson(row("a")), "1")
        r = await c.put(f"{PIPE}/channels/c1", json={"fail_on_uncommitted_rows": True})
        assert r.status_code == 409
        assert r.json()["code"] == "ERR_CHANNEL_HAS_UNCOMMITTED_DATA"
        r = await c.request(
            "DELETE", f"{PIPE}/channels/c1", json={"fail_on_uncommitted_rows": True}
        )
        assert r.status_code == 409


async def test_garbled_and_replayed_tokens_rejected(client: httpx.AsyncClient) -> None:
    opened = await open_channel(client, "c1")
    token = opened["next_continuation_token"]
    r = await append(client, "c1", token[:-3] + "xyz", ndjson(row("a")), "1")
    assert r.status_code == 400
    assert r.json()["code"] == "ERR_CHANNEL_MUST_BE_REOPENED"
    r = await append(client, "c1", "not-a-token", ndjson(row("a")), "1")
    assert r.status_code == 400
    assert (await append(client, "c1", token, ndjson(row("a")), "1")).status_code == 200
    r = await append(client, "c1", token, ndjson(row("a")), "1")  # same token again
    assert r.status_code == 400
    assert r.json()["code"] == "ERR_CHANNEL_MUST_BE_REOPENED_DUE_TO_ROW_SEQ_GAP"
    r = await client.post(f"{ROWS}/channels/c1/rows", content=ndjson(row("a")))
    assert r.status_code == 400  # continuationToken is required


async def test_unknown_pipe_404_and_unknown_channel_absent(client: httpx.AsyncClient) -> None:
    bad = "/v2/streaming/databases/manufacturing_demo/schemas/raw_data/pipes/NOPE-STREAMING"
    r = await client.put(f"{bad}/channels/c1", json={})
    assert r.status_code == 404
    assert r.json()["code"] == "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED"
    assert "NOPE-STREAMING" in r.json()["message"]
    r = await client.put(
        "/v2/streaming/databases/NODB/schemas/S/pipes/T-STREAMING/channels/c", json={}
    )
    assert r.status_code == 404
    await open_channel(client, "Known")
    statuses = await status(client, "Known", "ghost")
    assert list(statuses) == ["Known"]  # requested spelling kept, unknown names absent
    assert statuses["Known"]["channel_name"] == "KNOWN"


async def test_channel_names_with_slash_are_split_on_the_raw_path(
    client: httpx.AsyncClient,
) -> None:
    opened = await open_channel(client, "ch%20a%2Fb")
    assert opened["channel_status"]["channel_name"] == "CH A/B"
    r = await append(client, "ch%20a%2Fb", opened["next_continuation_token"], ndjson(row("a")), "1")
    assert r.status_code == 200
    await wait_committed(client, "ch a/b", "1")


async def test_zstd_gzip_and_blank_lines(client: httpx.AsyncClient) -> None:
    opened = await open_channel(client, "c1")
    token = opened["next_continuation_token"]
    sdk_style = ndjson(row("z1")) + b"\n" + ndjson(row("z2")).replace(b"\n", b"\r\n") + b"\n\n"
    body = zstandard.ZstdCompressor(level=1).compress(sdk_style)
    r = await append(client, "c1", token, body, "1", **{"Content-Encoding": "zstd"})
    assert r.status_code == 200, r.text
    token = r.json()["next_continuation_token"]
    body = gzip.compress(ndjson(row("g1")))
    r = await append(client, "c1", token, body, "2", **{"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    st = await wait_committed(client, "c1", "2")
    assert st["rows_inserted"] == 3
    assert st["rows_error_count"] == 0
    assert st["rows_parsed"] == 3  # blank lines are not rows


async def test_oversize_body_413(client: httpx.AsyncClient) -> None:
    opened = await open_channel(client, "c1")
    body = b" " * (4 * 1024 * 1024 + 1)
    r = await append(client, "c1", opened["next_continuation_token"], body, "1")
    assert r.status_code == 413
    assert r.json()["code"] == "ERR_PAYLOAD_TOO_LARGE"
    just_fits = ndjson(row("a")) + b" " * (4 * 1024 * 1024 - len(ndjson(row("a"))))
    r = await append(client, "c1", opened["next_continuation_token"], just_fits, "1")
    assert r.status_code == 200


async def test_bad_rows_counted_and_in_error_table_good_rows_commit(
    client: httpx.AsyncClient,
) -> None:
    opened = await open_channel(client, "c1")
    body = b"".join(
        [
            ndjson(row("good1")),
            ndjson(row("badtype", temperature="hot")),
            ndjson({"event_id": "missing-not-null"}),
            ndjson(row("unknown", no_such_column=1)),
            b"{not json\n",
            ndjson(row("x" * 200)),  # VARCHAR(128)
            ndjson(row("good2")),
        ]
    )
    r = await append(client, "c1", opened["next_continuation_token"], body, "42")
    assert r.status_code == 200
    st = await wait_committed(client, "c1", "42")
    assert st["rows_inserted"] == 2
    assert st["rows_parsed"] == 7
    assert st["rows_error_count"] == st["rows_errors"] == 5
    assert st["last_error_offset_upper_bound"] == "42"
    assert "too long" in st["last_error_message"]
    assert st["last_error_timestamp"] is not None
    ids = await sql(client, SELECT_IDS)
    assert ids == [["good1"], ["good2"]]
    errors = await sql(
        client,
        "SELECT error_code, error_metadata, error_data "
        "FROM MANUFACTURING_DEMO._STANDIN.ERROR_TABLE ORDER BY error_code",
    )
    assert len(errors) == 5
    metas = [orjson.loads(e[1] or "null") for e in errors]
    assert {m["service"] for m in metas} == {"snowpipe_streaming"}
    assert {m["details"]["offset_token_upper_bound"] for m in metas} == {"42"}
    assert {m["details"]["channel_name"] for m in metas} == {"C1"}
    assert "json-invalid" in {m["details"]["error_data_content_type"] for m in metas}
    sources = {m["error_source"] for m in metas}
    assert {"TEMPERATURE", "EVENT_TIMESTAMP", "no_such_column", "EVENT_ID"} <= sources
    assert any(orjson.loads(e[2] or "null")["$1"].get("temperature") == "hot" for e in errors
               if (e[2] or "").startswith('{"$1": {'))  # fmt: skip


async def test_drop_channel_forgets_it(client: httpx.AsyncClient) -> None:
    opened = await open_channel(client, "c1")
    r = await client.delete(f"{PIPE}/channels/c1")
    assert r.status_code == 200
    assert r.json() == {}
    assert await status(client, "c1") == {}
    r = await append(client, "c1", opened["next_continuation_token"], ndjson(row("a")), "1")
    assert r.status_code == 400


async def test_state_survives_restart(make_standin: StandinFactory) -> None:
    first = make_standin()
    async with httpx.AsyncClient(base_url=first.url) as c:
        c.headers["Authorization"] = "Bearer " + await _scoped(c)
        opened = await open_channel(c, "c1")
        await append(c, "c1", opened["next_continuation_token"], ndjson(row("a"), row("b")), "9")
        await wait_committed(c, "c1", "9")
    make_standin.stop(first)
    second = make_standin()
    async with httpx.AsyncClient(base_url=second.url) as c:
        c.headers["Authorization"] = "Bearer " + await _scoped(c)
        reopened = await open_channel(c, "c1")
        assert reopened["channel_status"]["last_committed_offset_token"] == "9"
        assert reopened["channel_status"]["rows_inserted"] == 2
        assert await sql(c, COUNT_ROWS) == [["2"]]


async def test_missing_bearer_401(standin: Standin) -> None:
    async with httpx.AsyncClient(base_url=standin.url) as c:
        assert (await c.get("/v2/streaming/hostname")).status_code == 401
        assert (await c.put(f"{PIPE}/channels/c1", json={})).status_code == 401
        c.headers["Authorization"] = "Bearer not-a-scoped-token"
        assert (await c.put(f"{PIPE}/channels/c1", json={})).status_code == 401


# ---- key-pair JWT ----------------------------------------------------------------------------


def _keypair() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem


def _jwt(key: rsa.RSAPrivateKey, signer: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
    now = time.time()
    body: dict[str, Any] = {
        "iss": f"MYORG-ACCT.STREAMD.{fingerprint(key.public_key())}",
        "sub": "MYORG-ACCT.STREAMD",
        "iat": int(now * 1000),  # milliseconds, as the official SDK sends (wire §2)
        "exp": int((now + 3540) * 1000),
        **claims,
    }
    return jwt.encode(body, signer or key, algorithm="RS256")


async def test_keypair_jwt_verification(make_standin: StandinFactory) -> None:
    key, pem = _keypair()
    other, _ = _keypair()
    standin = make_standin(public_key_pem=pem, hostname="ingest.local")
    async with httpx.AsyncClient(base_url=standin.url) as c:

        async def hostname(token: str) -> httpx.Response:
            return await c.get(
                "/v2/streaming/hostname", headers={"Authorization": f"Bearer {token}"}
            )

        good = await hostname(_jwt(key))
        assert good.status_code == 200
        assert good.text == "ingest.local"
        now = int(time.time())
        assert (await hostname(_jwt(key, iat=now, exp=now + 60))).status_code == 200  # seconds
        assert (await hostname(_jwt(key, signer=other))).status_code == 401  # wrong key
        assert (await hostname(_jwt(other))).status_code == 401  # fingerprint of another key
        expired = _jwt(key, iat=(now - 7200) * 1000, exp=(now - 3600) * 1000)
        assert (await hostname(expired)).status_code == 401
        too_long = _jwt(key, iat=now, exp=now + 7200)
        assert (await hostname(too_long)).status_code == 401
        assert (await hostname(_jwt(key, sub="OTHER.USER"))).status_code == 401

        r = await c.post(
            "/oauth/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "scope": "x"},
            headers={"Authorization": f"Bearer {_jwt(key)}"},
        )
        assert r.status_code == 200
        scoped = r.text
        assert jwt.decode(scoped, options={"verify_signature": False})["exp"] > now + 3000
        ok = await c.put(
            f"{PIPE}/channels/c1", json={}, headers={"Authorization": f"Bearer {scoped}"}
        )
        assert ok.status_code == 200
        # A key-pair JWT is accepted on the ingest host too (§2.1 [OBS]); another key's is not.
        kp = await c.put(
            f"{PIPE}/channels/c1", json={}, headers={"Authorization": f"Bearer {_jwt(key)}"}
        )
        assert kp.status_code == 200
        bad = await c.put(
            f"{PIPE}/channels/c1", json={}, headers={"Authorization": f"Bearer {_jwt(other)}"}
        )
        assert bad.status_code == 401
        r = await c.post("/api/v2/statements", json={"statement": "SELECT 1"},
                         headers={"Authorization": f"Bearer {_jwt(other)}"})  # fmt: skip
        assert r.status_code == 401


async def _scoped(c: httpx.AsyncClient) -> str:
    r = await c.post(
        "/oauth/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "scope": "h"},
        headers={"Authorization": "Bearer any"},
    )
    assert r.status_code == 200
    return r.text
