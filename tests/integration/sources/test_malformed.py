"""Malformed input per source, through the real daemon: each gets its documented answer or
dead-letter entry, and every valid row of the same request or file lands (mqtt: see
`test_mqtt_daemon.py`)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson

from streamd.config.model import Config
from streamd.daemon.run import Daemon
from streamd.snowflake.keys import generate_key_pair
from streamd.sources.http_push.source import HttpPushSource
from streamd.standin.server import Standin
from streamd.testing import standin_query
from tests.helpers import eventually

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
KEY, _ = generate_key_pair()
RULES = {SENSOR: {"columns": {"TEMPERATURE": {"type": "number", "max": 500}}}}


def _config(standin: Standin, state: Path, source: dict[str, Any]) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(state),
            "target": {"kind": "snowflake", "url": standin.url, "private_key": KEY.decode()},
            "delivery": {"linger_ms": 20, "status_poll_ms": 50},
            "admin": {"enabled": False},
            "log": {"level": "warning"},
            "sources": [source],
            "tables": RULES,
        }
    )


def row(event_id: str, temperature: Any = 20.5, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "EVENT_ID": event_id,
            "EVENT_TIMESTAMP": "2026-11-23T10:00:00",
            "EQUIPMENT_ID": "EQ-0001",
            "TEMPERATURE": temperature,
            **extra,
        }
    )


def dead_letters(state: Path) -> list[dict[str, Any]]:
    path = state / "dead_letters" / f"{SENSOR}.ndjson"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def landed(standin: Standin) -> list[str | None]:
    return sorted(r[0] for r in standin_query(standin.url, f"select EVENT_ID from {SENSOR}"))


async def test_http_push_malformed_requests(standin: Standin, tmp_path: Path) -> None:
    state = tmp_path / "state"
    daemon = Daemon(
        _config(
            standin,
            state,
            {
                "kind": "http_push",
                "name": "push",
                "port": 0,
                "tokens": ["s3cret"],
                "tables": {"sensors": SENSOR},
                "max_row_bytes": 200,
                "max_body_bytes": 4096,
            },
        )
    )
    source = daemon.sources[0]
    assert isinstance(source, HttpPushSource)
    ndjson = {"Authorization": "Bearer s3cret", "Content-Type": "application/x-ndjson"}
    answers: dict[str, httpx.Response] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(30):
            await daemon.ready.wait()
            await eventually(lambda: source.url is not None)  # reported once it listens
        url = f"{source.url}/v1/tables/sensors/rows"
        async with httpx.AsyncClient(timeout=30) as http:

            async def post(case: str, body: bytes, headers: dict[str, str], to: str = url) -> None:
                answers[case] = await http.post(to, content=body, headers=headers)

            await post("no token", row("x:1"), {"Content-Type": "application/x-ndjson"})
            await post("bad token", row("x:2"), {**ndjson, "Authorization": "Bearer nope"})
            await post("unknown table", row("x:3"), ndjson, f"{source.url}/v1/tables/nope/rows")
            await post("wrong content type", row("x:4"), {**ndjson, "Content-Type": "text/csv"})
            await post("body too large", b"\n".join([row("x:5")] * 60), ndjson)
            await post("bad gzip", b"not gzip", {**ndjson, "Content-Encoding": "gzip"})
            await post(
                "invalid JSON array",
                b"[" + row("x:6"),
                {**ndjson, "Content-Type": "application/json"},
            )
            await post(
                "bad lines",
                b"\n".join([row("ok:1"), b"{not json", b"[1, 2]", row("ok:2")]),
                ndjson,
            )
            await post(
                "oversize row",
                gzip.compress(b"\n".join([row("ok:3", PAD="x" * 300), row("ok:4")])),
                {**ndjson, "Content-Encoding": "gzip"},
            )
            await post("rule broken", b"\n".join([row("ok:5"), row("hot:1", 900.0)]), ndjson)
        await eventually(lambda: daemon.summary().tables[SENSOR].committed >= 4, within=60)
        daemon.stop()

    status = {case: r.status_code for case, r in answers.items()}
    assert status == {
        "no token": 401,
        "bad token": 403,
        "unknown table": 404,
        "wrong content type": 415,
        "body too large": 413,
        "bad gzip": 400,
        "invalid JSON array": 400,
        "bad lines": 400,
        "oversize row": 413,
        "rule broken": 507,
    }
    assert answers["no token"].headers["WWW-Authenticate"].startswith("Bearer")
    assert "'nope'" in answers["unknown table"].json()["error"]
    assert "text/csv" in answers["wrong content type"].json()["error"]
    assert "4096" in answers["body too large"].json()["error"]
    bad = answers["bad lines"].json()
    assert bad["accepted"] == 2
    assert [(e["line"], e["rule"]) for e in bad["errors"]] == [
        (2, "invalid_json"),
        (3, "not_an_object"),
    ]
    big = answers["oversize row"].json()
    assert (big["accepted"], [(e["line"], e["rule"]) for e in big["errors"]]) == (
        1,
        [(1, "row_too_large")],
    )
    hot = answers["rule broken"].json()
    assert (hot["accepted"], hot["refused"]) == (1, [2])
    assert answers["rule broken"].headers["Retry-After"] == "1"
    # Every valid row of the partly bad requests landed, nothing of the refused requests did.
    assert landed(standin) == ["ok:1", "ok:2", "ok:4", "ok:5"]
    dead = sorted((d["rule"], d["position"]) for d in dead_letters(state))
    assert dead == [
        ("TEMPERATURE.max", "push"),
        ("invalid_json", "push:sensors:line 2"),
        ("not_an_object", "push:sensors:line 3"),
        ("row_too_large", "push:sensors:line 1"),
    ]


async def test_ndjson_bad_lines(standin: Standin, tmp_path: Path) -> None:
    state = tmp_path / "state"
    log = tmp_path / "in.ndjson"
    lines = [
        row("ok:1"),
        b"{not json",
        b'"a string"',
        row("ok:2", PAD="x" * 300),
        b"",
        row("hot:1", "warm"),
        row("ok:3"),
    ]
    log.write_bytes(b"\n".join(lines) + b"\n")
    offsets = [sum(len(x) + 1 for x in lines[:i]) for i in range(len(lines))]
    config = _config(
        standin,
        state,
        {
            "kind": "ndjson",
            "name": "files",
            "paths": [str(log)],
            "table": SENSOR,
            "poll_interval_ms": 20,
            "max_line_bytes": 200,
        },
    )
    summary = await Daemon(config).run(duration=3)

    assert summary.tables[SENSOR].committed == 2
    assert landed(standin) == ["ok:1", "ok:3"]
    dead = sorted((d["rule"], d["position"]) for d in dead_letters(state))
    assert dead == sorted(
        [
            ("invalid_json", f"{log}:{offsets[1]}"),
            ("not_an_object", f"{log}:{offsets[2]}"),
            ("row_too_large", f"{log}:{offsets[3]}"),
            ("TEMPERATURE.type", "files"),
        ]
    )
