"""Drive Snowflake's official `snowpipe-streaming` SDK through one scenario; run as a subprocess.

The SDK's Rust core reads its trust roots (`SSL_CERT_FILE`) and log settings from the process
environment when the package is imported, so each run gets a fresh interpreter with that
environment (see `test_official_sdk.py`). Usage: `python sdk_driver.py SCENARIO.json`; the
scenario names the stand-in URL, the channel, how many rows, the SDK properties and where to
write the JSON result. Nothing here is specific to the stand-in but the URL: it is what a user's
own application does.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

DB, SCHEMA, TABLE = "MANUFACTURING_DEMO", "RAW_DATA", "SENSOR_DATA_RAW"
PIPE = f"{TABLE}-STREAMING"
BATCH = 1000
COMMIT_TIMEOUT_S = 45


def private_key_pem() -> str:
    """Any RSA key, for a stand-in started without a public key (it then checks none)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def row(i: int, prefix: str) -> dict[str, Any]:
    """One sensor row with a unique EVENT_ID."""
    return {
        "EVENT_ID": f"{prefix}-{i}",
        "EVENT_TIMESTAMP": f"2026-11-23T10:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}",
        "EQUIPMENT_ID": f"EQ-{i % 20:04d}",
        "LINE_ID": f"LINE-{i % 4}",
        "TEMPERATURE": 70.0 + i % 97 / 10,
        "STATUS": "RUNNING",
        "IS_ANOMALY": i % 100 == 0,
        "RAW_PAYLOAD": {"seq": i, "source": "sdk"},
    }


def append_all(channel: Any, rows: int, prefix: str, first: int = 0) -> None:
    """Append rows `first`..`rows-1` in batches; offset token = index of a batch's last row."""
    for start in range(first, rows, BATCH):
        end = min(start + BATCH, rows)
        batch = [row(i, prefix) for i in range(start, end)]
        channel.append_rows(batch, str(start), str(end - 1))


def committed_at_least(target: int) -> Any:
    """A token checker for `wait_for_commit`: the committed offset token reached `target`."""
    return lambda token: token is not None and int(token) >= target


def full_lifecycle(spec: dict[str, Any]) -> dict[str, Any]:
    """Open, append, wait for commit, read the token back, reopen elsewhere, status, drop."""
    from snowflake.ingest.streaming import StreamingIngestClient, StreamingIngestError

    props = spec["properties"]
    name, rows, prefix = spec["channel"], int(spec["rows"]), spec["prefix"]
    out: dict[str, Any] = {}
    first = StreamingIngestClient("sdk-first", DB, SCHEMA, PIPE, properties=props)
    channel, opened = first.open_channel(name)
    out["open_committed"] = opened.latest_committed_offset_token
    out["open_status"] = opened.status_code
    started = time.monotonic()
    append_all(channel, rows, prefix)
    channel.wait_for_commit(committed_at_least(rows - 1), timeout_seconds=COMMIT_TIMEOUT_S)
    out["seconds_to_commit"] = round(time.monotonic() - started, 2)
    out["committed"] = channel.get_latest_committed_offset_token()
    out["committed_by_client"] = first.get_latest_committed_offset_tokens([name])[name]

    # A second client opens the same channel: Snowflake bumps the client sequencer, so the
    # first opener's next append is refused and its channel becomes invalid (wire §7).
    second = StreamingIngestClient("sdk-second", DB, SCHEMA, PIPE, properties=props)
    reopened, status = second.open_channel(name)
    out["reopen_committed"] = status.latest_committed_offset_token
    out["fenced_error"] = None
    try:
        channel.append_row(row(rows, prefix), str(rows))
        channel.wait_for_flush(20)
        channel.append_row(row(rows + 1, prefix), str(rows + 1))  # invalid by now
    except StreamingIngestError as err:
        out["fenced_error"] = str(err.error_code)
    except TimeoutError as err:
        out["fenced_error"] = f"timeout: {err}"

    st = second.get_channel_statuses([name])[name]
    out["status"] = {
        "status_code": st.status_code,
        "committed": st.latest_committed_offset_token,
        "rows_inserted": st.rows_inserted_count,
        "rows_parsed": st.rows_parsed_count,
        "rows_error_count": st.rows_error_count,
    }
    reopened.close(drop=False, wait_for_flush=False)
    second.drop_channel(name)
    # Statuses come from a client-side cache refreshed about once a second (wire §3).
    deadline = time.monotonic() + 15
    while True:
        out["after_drop"] = second.get_latest_committed_offset_tokens([name]).get(name)
        if out["after_drop"] is None or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for client in (first, second):
        try:
            client.close(wait_for_flush=False)
        except StreamingIngestError as err:
            out.setdefault("close_errors", []).append(str(err.error_code))
    return out


def append_and_commit(spec: dict[str, Any]) -> dict[str, Any]:
    """Open, append, wait for the last offset to commit, close (for the fault tests)."""
    from snowflake.ingest.streaming import StreamingIngestClient

    props = spec["properties"]
    name, rows, prefix = spec["channel"], int(spec["rows"]), spec["prefix"]
    client = StreamingIngestClient("sdk-faults", DB, SCHEMA, PIPE, properties=props)
    channel, _ = client.open_channel(name)
    append_all(channel, rows, prefix)
    channel.wait_for_commit(committed_at_least(rows - 1), timeout_seconds=COMMIT_TIMEOUT_S)
    committed = channel.get_latest_committed_offset_token()
    channel.close()
    client.close()
    return {"committed": committed}


def reopen_while_uncommitted(spec: dict[str, Any]) -> dict[str, Any]:
    """Append and flush (the test holds commits back), then reopen from a second client: its
    open (always `fail_on_uncommitted_rows: true`) is refused 409 until the data commits."""
    from snowflake.ingest.streaming import StreamingIngestClient

    props = spec["properties"]
    name, rows, prefix = spec["channel"], int(spec["rows"]), spec["prefix"]
    first = StreamingIngestClient("sdk-writer", DB, SCHEMA, PIPE, properties=props)
    channel, _ = first.open_channel(name)
    append_all(channel, rows, prefix)
    channel.wait_for_flush(30)  # received by the stand-in, not committed
    second = StreamingIngestClient("sdk-successor", DB, SCHEMA, PIPE, properties=props)
    started = time.monotonic()
    reopened, status = second.open_channel(name)  # retried by the SDK through the 409s
    out = {
        "reopen_committed": status.latest_committed_offset_token,
        "reopen_seconds": round(time.monotonic() - started, 2),
    }
    reopened.close(wait_for_flush=False)
    for client in (first, second):
        client.close(wait_for_flush=False)
    return out


SCENARIOS = {
    "full_lifecycle": full_lifecycle,
    "append_and_commit": append_and_commit,
    "reopen_while_uncommitted": reopen_while_uncommitted,
}


def main() -> None:
    """Run the scenario named in the spec file and write its result where the spec says."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    key_file = spec.get("private_key_file")
    spec["properties"]["private_key"] = (
        Path(key_file).read_text() if key_file else private_key_pem()
    )
    result = SCENARIOS[spec["scenario"]](spec)
    Path(spec["result"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
