"""The stand-in's classic Snowpipe over HTTP, driven by snowflake-ingest (our PipeIngestClient):
CREATE PIPE, insertFiles, asynchronous loads, dedupe by name, per-file errors, insertReport,
loadHistoryScan, SYSTEM$PIPE_STATUS, key-pair auth."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.errors import AuthError, ObjectNotFound
from streamd.sinks.files.confirm import ConfirmPolicy, FileConfirmer
from streamd.snowflake.auth import load_private_key
from streamd.snowflake.keys import generate_key_pair
from streamd.snowflake.pipe_ingest import FileReport, PipeIngestClient
from streamd.snowflake.stage_upload import LocalDirStage
from streamd.standin.server import Standin
from streamd.testing import standin_query
from tests.conftest import StandinFactory

TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
PIPE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_FILES"
STAGE = "MANUFACTURING_DEMO.RAW_DATA.LANDING"


def _row(i: int, **extra: object) -> bytes:
    row = {
        "EVENT_ID": f"f:{i}",
        "EVENT_TIMESTAMP": "2026-11-23T10:00:00",
        "EQUIPMENT_ID": "EQ-0001",
        "temperature": 70.5,
        "NOT_A_COLUMN": 1,
        **extra,
    }
    return json.dumps(row).encode()


@pytest.fixture
def keyed(make_standin: StandinFactory) -> tuple[Standin, RSAPrivateKey]:
    """A stand-in that verifies key-pair JWTs, with its stage and pipe, and the private key."""
    private, public = generate_key_pair()
    standin = make_standin(public_key_pem=public)
    key = load_private_key(private, None, source="test")
    return standin, key


def _sql(standin: Standin, key: RSAPrivateKey, statement: str) -> list[list[str | None]]:
    from streamd.clock import SystemClock
    from streamd.snowflake.auth import KeyPairAuth

    token = KeyPairAuth(key, "LOCAL", "STREAMD", SystemClock()).jwt()
    response = httpx.post(
        f"{standin.url}/api/v2/statements",
        json={"statement": statement},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    rows: list[list[str | None]] = response.json()["data"]
    return rows


def _setup(standin: Standin, key: RSAPrivateKey, options: str = "") -> LocalDirStage:
    _sql(standin, key, f"CREATE STAGE IF NOT EXISTS {STAGE}")
    _sql(
        standin,
        key,
        f"CREATE OR REPLACE PIPE {PIPE} AUTO_INGEST = FALSE AS COPY INTO {TABLE} FROM @{STAGE} "
        f"FILE_FORMAT = (TYPE = JSON STRIP_OUTER_ARRAY = TRUE) "
        f"MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE {options}",
    )
    return LocalDirStage(standin.settings.data_dir.joinpath("stages", *STAGE.split(".")))


def _client(standin: Standin, key: RSAPrivateKey, pipe: str = PIPE) -> PipeIngestClient:
    return PipeIngestClient(
        url=standin.url, account="LOCAL", user="STREAMD", pipe=pipe, private_key=key
    )


async def _confirm(client: PipeIngestClient, files: dict[str, bytes]) -> dict[str, FileReport]:
    from streamd.clock import SystemClock

    confirmer = FileConfirmer(
        client,
        SystemClock(),
        ConfirmPolicy(report_poll_s=0.1, scan_after_s=1, resubmit_after_s=30),
        on_retry=lambda exc, attempt: None,
        on_resubmit=lambda path: None,
    )
    out: dict[str, FileReport] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(confirmer.run)
        now = datetime.now(UTC).timestamp()
        await confirmer.submit([(p, len(d), now) for p, d in files.items()])
        with anyio.fail_after(60):
            for path in files:
                out[path] = await confirmer.wait(path)
        tg.cancel_scope.cancel()
    return out


def _count(standin: Standin, key: RSAPrivateKey) -> int:
    [[n]] = _sql(standin, key, f"select count(*) from {TABLE}")
    return int(n or 0)


async def test_files_load_once_with_per_file_errors(keyed: tuple[Standin, RSAPrivateKey]) -> None:
    """Good NDJSON(.gz) and JSON-array files load; a corrupt gzip and a file with an invalid
    line fail whole (SKIP_FILE) with their first error and line; resubmission loads nothing."""
    standin, key = keyed
    stage = _setup(standin, key)
    ndjson = b"\n".join(_row(i) for i in range(5)) + b"\n"
    files = {
        "a/good.ndjson.gz": gzip.compress(ndjson),
        "a/array.json": b"[" + b",".join(_row(i) for i in range(10, 13)) + b"]",
        "a/corrupt.ndjson.gz": gzip.compress(ndjson)[:20],
        "a/bad-line.ndjson": _row(20) + b"\n" + b'{"EVENT_ID": "x",\n' + _row(21) + b"\n",
    }
    for path, data in files.items():
        await stage.upload(path, data)
    client = _client(standin, key)
    reports = await _confirm(client, files)

    assert reports["a/good.ndjson.gz"].status == "LOADED"
    assert reports["a/good.ndjson.gz"].rows_inserted == 5
    assert reports["a/array.json"].rows_inserted == 3
    corrupt = reports["a/corrupt.ndjson.gz"]
    assert corrupt.status == "LOAD_FAILED"
    assert "decompression" in (corrupt.first_error or "")
    bad = reports["a/bad-line.ndjson"]
    assert (bad.status, bad.rows_inserted, bad.rows_parsed, bad.first_error_line) == (
        "LOAD_FAILED",
        0,
        3,
        2,
    )
    assert _count(standin, key) == 8

    # The same names again: Snowpipe skips what it loaded (no new rows), retries what failed.
    await client.ingest_files([(p, None) for p in files])
    await stage.upload("a/bad-line.ndjson", _row(20) + b"\n" + _row(21) + b"\n")
    since = datetime.now(UTC) - timedelta(minutes=5)
    with anyio.fail_after(30):
        while True:
            history = await client.load_history_scan(since)
            if any(r.path == "a/bad-line.ndjson" and r.loaded for r in history):
                break
            await anyio.sleep(0.1)
    assert _count(standin, key) == 10
    loaded = [r.path for r in history if r.loaded]
    assert sorted(loaded) == ["a/array.json", "a/bad-line.ndjson", "a/good.ndjson.gz"]

    [[status]] = _sql(standin, key, f"select SYSTEM$PIPE_STATUS('{PIPE}')")
    assert status is not None
    parsed = json.loads(status)
    assert parsed["executionState"] == "RUNNING"
    assert parsed["pendingFileCount"] == 0
    assert parsed["lastIngestedFilePath"] == "a/bad-line.ndjson"


async def test_insert_report_is_a_tail_with_begin_mark(
    keyed: tuple[Standin, RSAPrivateKey],
) -> None:
    """A second insertReport (with the kept beginMark) shows only newer events."""
    standin, key = keyed
    stage = _setup(standin, key, "ON_ERROR = CONTINUE")
    await stage.upload("one.ndjson", _row(1) + b"\nnot json\n")
    client = _client(standin, key)
    [partial] = (await _confirm(client, {"one.ndjson": b""})).values()
    assert (partial.status, partial.rows_inserted, partial.errors_seen) == (
        "PARTIALLY_LOADED",
        1,
        1,
    )
    reports, complete = await client.insert_report()
    assert complete
    assert [r.path for r in reports] == []  # everything older was handed out already

    # A caller whose mark is older than the window it asks for is told it missed events.
    from streamd.clock import SystemClock
    from streamd.snowflake.auth import KeyPairAuth

    token = KeyPairAuth(key, "LOCAL", "STREAMD", SystemClock()).jwt()
    async with httpx.AsyncClient(base_url=standin.url) as http:
        late = await http.get(
            f"/v1/data/pipes/{PIPE}/insertReport",
            params={"beginMark": "1_0", "recentSeconds": "0"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert late.json()["completeResult"] is True  # no mark: nothing to have missed
        mark = late.json()["nextBeginMark"]
        assert mark == "1_0"
        await stage.upload("two.ndjson", _row(2) + b"\n")
        await _confirm(client, {"two.ndjson": b""})
        stale = await http.get(
            f"/v1/data/pipes/{PIPE}/insertReport",
            params={"beginMark": "1_1", "recentSeconds": "0"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert stale.json()["completeResult"] is False


async def test_errors_map_onto_the_error_tree(keyed: tuple[Standin, RSAPrivateKey]) -> None:
    """Unknown pipe → ObjectNotFound; a key the stand-in does not know → AuthError; 5,001
    files → FatalError (400)."""
    standin, key = keyed
    _setup(standin, key)
    with pytest.raises(ObjectNotFound):
        await _client(standin, key, pipe="MANUFACTURING_DEMO.RAW_DATA.NOPE").ingest_files(
            [("x", None)]
        )
    other = load_private_key(generate_key_pair()[0], None, source="test")
    with pytest.raises(AuthError):
        await _client(standin, other).ingest_files([("x", None)])
    from streamd.clock import SystemClock
    from streamd.snowflake.auth import KeyPairAuth

    token = KeyPairAuth(key, "LOCAL", "STREAMD", SystemClock()).jwt()
    async with httpx.AsyncClient(base_url=standin.url) as http:
        response = await http.post(
            f"/v1/data/pipes/{PIPE}/insertFiles",
            json={"files": [{"path": f"f{i}"} for i in range(5001)]},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert "5000" in response.json()["message"]


def test_create_pipe_needs_an_existing_stage_and_table(standin: Standin) -> None:
    """Snowflake's compilation errors for a missing stage or table."""
    for statement, expected in [
        (
            f"CREATE PIPE MANUFACTURING_DEMO.RAW_DATA.p AS COPY INTO {TABLE} FROM @{STAGE} "
            "FILE_FORMAT = (TYPE = JSON) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE",
            "does not exist",
        ),
        (
            f"CREATE PIPE MANUFACTURING_DEMO.RAW_DATA.p AS COPY INTO {TABLE} FROM @{STAGE} "
            "FILE_FORMAT = (TYPE = JSON)",
            "one and only one column",
        ),
    ]:
        with pytest.raises(httpx.HTTPStatusError) as err:
            standin_query(standin.url, statement)
        assert expected in err.value.response.text
