"""Snowflake's official `snowpipe-streaming` SDK (1.9.1), unchanged, against the stand-in over HTTPS.

The SDK runs in a subprocess (`sdk_driver.py`): its Rust core takes its trust roots from
`SSL_CERT_FILE` and its log target from `SS_LOG_TARGET` in the process environment, which the
test process must not change for everything else. The stand-in runs in this process, so the tests
can read its counters and fault plan.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from streamd.snowflake.auth import mint_jwt
from streamd.standin.faults import FaultRule
from streamd.standin.server import Standin
from streamd.testing import standin_query
from tests.conftest import StandinFactory

pytest.importorskip("snowflake.ingest.streaming", reason="the snowpipe-streaming test extra")

DRIVER = Path(__file__).with_name("sdk_driver.py")
TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
ROWS = 100_000
DRIVER_TIMEOUT_S = 90

pytestmark = pytest.mark.slow


def properties(standin: Standin, *, rowset_only: bool) -> dict[str, str]:
    """What a user puts in the SDK's properties to reach the stand-in (README has the same)."""
    props = {
        "url": standin.url,
        "account": "testacct",
        "user": "testuser",
        "role": "TESTROLE",
        # A broken stand-in must fail a test in seconds, not retry for the default 10 h.
        "mgmt_retry_total_backoff_seconds": "10",
        "data_retry_total_backoff_seconds": "20",
    }
    if rowset_only:
        # Keep the SDK on the documented /rows path (else bursts over 1 MiB go to file mode).
        props["max_buffered_kb_for_rowset_mode"] = "4000000"
        props["target_rowset_payload_size_mb"] = "2"
        props["enable_telemetry_reporting"] = "false"
    return props


def start_sdk(
    standin: Standin, tmp_path: Path, scenario: str, **spec: Any
) -> tuple[subprocess.Popen[str], Path]:
    """Start one driver scenario in a fresh interpreter that trusts the stand-in's CA."""
    assert standin.ca_file is not None
    spec_file = tmp_path / f"{scenario}-{spec['channel']}.json"
    result_file = spec_file.with_suffix(".result.json")
    spec_file.write_text(json.dumps({**spec, "scenario": scenario, "result": str(result_file)}))
    env = {
        **os.environ,
        "SSL_CERT_FILE": str(standin.ca_file),
        "SS_LOG_TARGET": "stderr",
        "SS_LOG_LEVEL": "info",
    }
    log = (tmp_path / f"{scenario}-{spec['channel']}.log").open("w")
    with log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, str(DRIVER), str(spec_file)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
    return proc, result_file


def finish_sdk(proc: subprocess.Popen[str], result_file: Path) -> dict[str, Any]:
    """Wait for a driver; its result, or a failure showing the end of the SDK's log."""
    try:
        returncode = proc.wait(timeout=DRIVER_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log_file = result_file.with_name(result_file.name.replace(".result.json", ".log"))
    log_tail = "\n".join(log_file.read_text().splitlines()[-25:])
    assert returncode == 0, f"SDK driver failed ({returncode}):\n{log_tail}"
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def run_sdk(standin: Standin, tmp_path: Path, scenario: str, **spec: Any) -> dict[str, Any]:
    """Run one driver scenario to its end."""
    return finish_sdk(*start_sdk(standin, tmp_path, scenario, **spec))


def table_counts(standin: Standin, prefix: str) -> tuple[int, int]:
    """(rows, distinct EVENT_IDs) the run with `prefix` left in the table."""
    assert standin.ca_file is not None
    rows = standin_query(
        standin.url,
        f"select count(*), count(distinct EVENT_ID) from {TABLE} where EVENT_ID like '{prefix}-%'",
        ca_file=standin.ca_file,
    )
    count, distinct = rows[0]
    return int(count or 0), int(distinct or 0)


@pytest.fixture
def tls_standin(make_standin: StandinFactory) -> Standin:
    """A stand-in serving HTTPS with its own throwaway CA."""
    return make_standin(tls=True)


def check_lifecycle(result: dict[str, Any], standin: Standin, prefix: str) -> None:
    """What both lifecycle tests expect of open, commit, reopen, status and drop."""
    last = str(ROWS - 1)
    assert result["open_committed"] is None  # a new channel has no offset token
    assert result["open_status"] == "SUCCESS"
    assert result["committed"] == last
    assert result["committed_by_client"] == last
    assert result["reopen_committed"] == last  # reopen returns the committed offset
    assert result["fenced_error"] is not None
    assert "INVALID_CHANNEL" in result["fenced_error"]  # the first opener was fenced
    assert result["status"] == {
        "status_code": "SUCCESS",
        "committed": last,
        "rows_inserted": ROWS,
        "rows_parsed": ROWS,
        "rows_error_count": 0,
    }
    assert result["after_drop"] is None  # dropped: the channel and its offset are gone
    # The fenced opener's extra row never landed; every other row exactly once.
    assert table_counts(standin, prefix) == (ROWS, ROWS)


def test_sdk_lifecycle_pinned_to_rows(tls_standin: Standin, tmp_path: Path) -> None:
    """Open, 100k rows over /rows, commit, offset back, reopen fences, status, drop."""
    result = run_sdk(
        tls_standin,
        tmp_path,
        "full_lifecycle",
        channel="rowset",
        rows=ROWS,
        prefix="rowset",
        properties=properties(tls_standin, rowset_only=True),
    )
    check_lifecycle(result, tls_standin, "rowset")
    assert tls_standin.sdk.file_fragments == 0  # all of it went through /rows


def test_sdk_lifecycle_default_settings_file_mode(tls_standin: Standin, tmp_path: Path) -> None:
    """The same with the SDK's defaults: a 100k-row burst goes through the stage (file mode)."""
    result = run_sdk(
        tls_standin,
        tmp_path,
        "full_lifecycle",
        channel="default",
        rows=ROWS,
        prefix="default",
        properties=properties(tls_standin, rowset_only=False),
    )
    check_lifecycle(result, tls_standin, "default")
    sdk = tls_standin.sdk
    assert sdk.stage_uploads >= 1
    assert sdk.file_fragments >= 1
    assert sdk.telemetry_posts >= 1  # default settings report telemetry; it is accepted


def test_sdk_retry_after_connection_reset_is_applied_once(
    tls_standin: Standin, tmp_path: Path
) -> None:
    """The 5th append is applied, then its connection reset: the SDK resends it with the same
    requestId and a higher retryCount, and the stand-in answers it without applying it again."""
    rule = tls_standin.faults.add(FaultRule("append", "reset_after", every=5, count=1))
    result = run_sdk(
        tls_standin,
        tmp_path,
        "append_and_commit",
        channel="resets",
        rows=ROWS,
        prefix="resets",
        properties=properties(tls_standin, rowset_only=True),
    )
    assert rule.fired == 1
    assert tls_standin.state.replayed_appends == 1
    assert result["committed"] == str(ROWS - 1)
    assert table_counts(tls_standin, "resets") == (ROWS, ROWS)


def test_sdk_key_pair_jwt_is_verified(make_standin: StandinFactory, tmp_path: Path) -> None:
    """With --public-key the stand-in verifies the SDK's JWTs (iat/exp in ms, `scp` claim)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "rsa_key.p8"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    standin = make_standin(tls=True, public_key_pem=public)
    result = run_sdk(
        standin,
        tmp_path,
        "append_and_commit",
        channel="verified",
        rows=1000,
        prefix="verified",
        private_key_file=str(key_file),
        properties=properties(standin, rowset_only=True),
    )
    assert result["committed"] == "999"
    assert standin.ca_file is not None
    # The SQL API now wants a verified JWT too.
    r = httpx.post(
        f"{standin.url}/api/v2/statements",
        json={"statement": f"select count(distinct EVENT_ID) from {TABLE}"},
        headers={
            "Authorization": f"Bearer {mint_jwt(key, 'testacct', 'testuser', now=time.time())}"
        },
        verify=ssl.create_default_context(cafile=str(standin.ca_file)),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"] == [["1000"]]


def test_sdk_reopen_waits_while_data_is_uncommitted(tls_standin: Standin, tmp_path: Path) -> None:
    """The SDK opens with `fail_on_uncommitted_rows: true`: while the first writer's rows are
    received but not committed, the successor's open is refused 409 (and retried by the SDK);
    once they commit, it opens at their offset and nothing was discarded."""
    tls_standin.faults.freeze_commits()
    proc, result_file = start_sdk(
        tls_standin,
        tmp_path,
        "reopen_while_uncommitted",
        channel="handover",
        rows=5000,
        prefix="handover",
        properties=properties(tls_standin, rowset_only=True),
    )
    try:
        deadline = time.monotonic() + DRIVER_TIMEOUT_S
        while tls_standin.state.refused_opens == 0 and proc.poll() is None:
            assert time.monotonic() < deadline, "the successor's open never reached the stand-in"
            time.sleep(0.1)
    finally:
        tls_standin.faults.release_commits()
    result = finish_sdk(proc, result_file)
    assert tls_standin.state.refused_opens >= 1
    assert result["reopen_committed"] == "4999"
    assert table_counts(tls_standin, "handover") == (5000, 5000)
