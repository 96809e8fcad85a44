"""The calls the official SDK makes beyond the documented API, over HTTPS with a raw httpx client:
plain-text hostname and token, `:pipe-info`, telemetry, the S3 stage + `/filebuffer`, and
idempotent retries by requestId (official-sdk-wire.md §3–§7)."""

from __future__ import annotations

import base64
import ssl
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import jwt
import orjson
import pytest
import zstandard
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from streamd.standin.server import Standin
from streamd.testing import standin_query
from tests.conftest import StandinFactory

_PATH = "databases/MANUFACTURING_DEMO/schemas/RAW_DATA/pipes/SENSOR_DATA_RAW-STREAMING"
PIPE = f"/v2/streaming/{_PATH}"
DATA = f"/v2/streaming/data/{_PATH}"
TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"


def ndjson(prefix: str, n: int) -> bytes:
    rows = (
        orjson.dumps(
            {
                "EVENT_ID": f"{prefix}-{i}",
                "EVENT_TIMESTAMP": "2026-11-23T10:00:00",
                "EQUIPMENT_ID": "E",
            }
        )
        for i in range(n)
    )
    # The SDK's shape: a blank line after every append call (wire §5).
    return b"\n".join(rows) + b"\n\n"


@pytest.fixture
def tls_standin(make_standin: StandinFactory) -> Standin:
    return make_standin(tls=True, commit_delay_s=0.05)


@pytest.fixture
async def client(tls_standin: Standin) -> AsyncIterator[httpx.AsyncClient]:
    assert tls_standin.ca_file is not None
    verify = ssl.create_default_context(cafile=str(tls_standin.ca_file))
    async with httpx.AsyncClient(
        base_url=tls_standin.url, verify=verify, headers={"Authorization": "Bearer keypair"}
    ) as c:
        r = await c.post(
            "/oauth/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "scope": "x"},
        )
        assert r.status_code == 200
        c.headers["Authorization"] = f"Bearer {r.text}"
        c.headers["X-Snowflake-Authorization-Token-Type"] = "OAUTH"
        yield c


def count(standin: Standin, prefix: str) -> tuple[str | None, ...]:
    rows = standin_query(
        standin.url,
        f"select count(*), count(distinct EVENT_ID) from {TABLE} where EVENT_ID like '{prefix}-%'",
        ca_file=standin.ca_file,
    )
    return tuple(rows[0])


async def open_channel(c: httpx.AsyncClient, name: str) -> str:
    r = await c.put(f"{PIPE}/channels/{name}", json={"fail_on_uncommitted_rows": True})
    assert r.status_code == 200, r.text
    return str(r.json()["next_continuation_token"])


async def wait_committed(c: httpx.AsyncClient, name: str, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        r = await c.post(f"{PIPE}:bulk-channel-status", json={"channel_names": [name]})
        status: dict[str, Any] = r.json()["channel_statuses"][name]
        if status["last_committed_offset_token"] == token or time.monotonic() > deadline:
            return status
        await anyio.sleep(0.1)


async def test_hostname_and_token_are_plain_text_like_the_service(tls_standin: Standin) -> None:
    assert tls_standin.ca_file is not None
    verify = ssl.create_default_context(cafile=str(tls_standin.ca_file))
    async with httpx.AsyncClient(base_url=tls_standin.url, verify=verify) as c:
        headers = {
            "Authorization": "Bearer kp",
            "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
        }
        r = await c.get("/v2/streaming/hostname", headers=headers)
        assert r.status_code == 200
        assert r.text == "127.0.0.1"  # bare host: the SDK appends the port itself
        r = await c.post(
            "/oauth/token",
            headers=headers,
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "scope": r.text},
        )
        assert r.headers["content-type"].startswith("text/plain")
        header = jwt.get_unverified_header(r.text)
        claims = jwt.decode(r.text, options={"verify_signature": False})
        assert header["alg"] == "HS256"
        assert claims["exp"] > time.time() + 50 * 60  # the SDK refreshes under ~5 min left


async def test_pipe_info_points_the_sdk_back_at_the_stand_in(
    client: httpx.AsyncClient, tls_standin: Standin
) -> None:
    body = {"generate_new_token": True, "encryption_version": "AES-CTR-128.1"}
    r = await client.post(f"{PIPE}:pipe-info", json=body)
    assert r.status_code == 200, r.text
    info = r.json()
    assert set(info) == {
        "rowset_stage_location",
        "durable_stage_location",
        "encryption_info",
        "parameter_overrides",
    }
    stage = info["rowset_stage_location"]
    port = tls_standin.url.rsplit(":", 1)[1]
    assert stage["storage_endpoint"] == f"127.0.0.1:{port}"
    assert stage["location_type"] == "S3"
    assert set(stage["creds"]) == {"AWS_KEY_ID", "AWS_SECRET_KEY", "AWS_TOKEN"}
    assert len(base64.b64decode(info["encryption_info"]["pipe_key"])) == 32
    again = (await client.post(f"{PIPE}:pipe-info", json=body)).json()
    assert again["rowset_stage_location"]["location"] != stage["location"]  # fresh prefix
    missing = await client.post(
        "/v2/streaming/databases/MANUFACTURING_DEMO/schemas/RAW_DATA/pipes/NOPE:pipe-info",
        json=body,
    )
    assert missing.status_code == 404


async def test_telemetry_is_accepted_and_counted(
    client: httpx.AsyncClient, tls_standin: Standin
) -> None:
    logs = {"logs": [{"timestamp": "1", "message": {"type": "ssv2_client_metrics"}}] * 3}
    r = await client.post(
        "/telemetry/send/sessionless", json=logs, headers={"Authorization": "Bearer kp"}
    )
    assert r.status_code == 200
    assert r.json()["success"] is True
    assert "data" in r.json()
    assert (tls_standin.sdk.telemetry_posts, tls_standin.sdk.telemetry_logs) == (1, 3)


async def test_rows_retry_by_request_id_is_applied_once(
    client: httpx.AsyncClient, tls_standin: Standin
) -> None:
    token = await open_channel(client, "retry")
    body = zstandard.ZstdCompressor().compress(ndjson("retry", 50))
    headers = {
        "Content-Type": "application/x-ndjson",
        "Content-Encoding": "zstd",
        "x-snowflake-uncompressed-content-length": "999",
        "x-snowflake-min-append-timestamp-ms": "1795422929987",
    }

    async def send(retry: int) -> httpx.Response:
        params = {
            "startOffsetToken": "0",
            "endOffsetToken": "49",
            "continuationToken": token,
            "requestId": "0b9f0d1c-1111-4a4a-9c9c-000000000001",
            "retryCount": str(retry),
        }
        return await client.post(
            f"{DATA}/channels/retry/rows", params=params, content=body, headers=headers
        )

    first = await send(0)
    assert first.status_code == 200, first.text
    retried = await send(1)  # the response to the first was "lost"
    assert retried.status_code == 200, retried.text
    assert retried.json() == first.json()
    assert (await send(1)).status_code == 400  # not higher than the last retry: not a retry
    status = await wait_committed(client, "retry", "49")
    assert status["rows_inserted"] == 50
    assert count(tls_standin, "retry") == ("50", "50")
    assert tls_standin.state.replayed_appends == 1


async def test_file_mode_upload_and_filebuffer_commit_like_rows(
    client: httpx.AsyncClient, tls_standin: Standin
) -> None:
    info = (await client.post(f"{PIPE}:pipe-info", json={})).json()
    location = info["rowset_stage_location"]["location"]
    key = base64.b64decode(info["encryption_info"]["pipe_key"])
    iv = bytes(range(16))
    frame = zstandard.ZstdCompressor().compress(ndjson("file", 300))
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    blob = encryptor.update(frame) + encryptor.finalize()
    crc = base64.b64encode(zlib.crc32(blob).to_bytes(4, "big")).decode()
    chunked = (
        f"{len(blob):x};chunk-signature=x\r\n".encode()
        + blob
        + f"\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    )
    put = await client.put(
        f"/{location}0.ndjson",
        params={"x-id": "PutObject"},
        content=chunked,
        headers={
            "Content-Encoding": "aws-chunked",
            "x-amz-decoded-content-length": str(len(blob)),
            "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        },
    )
    assert put.status_code == 200, put.text
    assert put.headers["etag"].strip('"')

    token = await open_channel(client, "files")
    fragment = {
        "file_path": f"{location}0.ndjson",
        "file_length_bytes": len(blob),
        "fragment_length_bytes": len(blob),
        "fragment_start_byte_offset": 0,
        "fragment_start_offset_token": "0",
        "fragment_end_offset_token": "299",
        "fragment_row_count": 300,
        "iv_base64": base64.b64encode(iv).decode(),
        "encryption_version": "AES-CTR-128.1",
        "master_key_id": "1",
    }
    params = {"continuationToken": token, "requestId": "rid-files", "retryCount": "0"}
    r = await client.post(f"{DATA}/channels/files/filebuffer", params=params, json=[fragment])
    assert r.status_code == 200, r.text
    # A retry after a lost response: same answer, the blob (already consumed) not needed again.
    retry = await client.post(
        f"{DATA}/channels/files/filebuffer", params={**params, "retryCount": "1"}, json=[fragment]
    )
    assert retry.json() == r.json()
    status = await wait_committed(client, "files", "299")
    assert (status["rows_inserted"], status["rows_error_count"]) == (300, 0)
    assert count(tls_standin, "file") == ("300", "300")
    # The next append chains on the filebuffer's continuation token, like after /rows.
    nxt = await client.post(
        f"{DATA}/channels/files/rows",
        params={"continuationToken": r.json()["next_continuation_token"], "endOffsetToken": "300"},
        content=ndjson("next", 1),
    )
    assert nxt.status_code == 200, nxt.text
