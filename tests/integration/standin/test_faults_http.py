"""Fault injection and documented limits, observed by a raw httpx client against a served stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import orjson
import pytest

from streamd.standin.faults import FaultRule, parse_fault_spec
from streamd.standin.server import Standin
from tests.conftest import StandinFactory
from tests.helpers import eventually

from .conftest import connect

_PATH = "databases/manufacturing_demo/schemas/raw_data/pipes/SENSOR_DATA_RAW-STREAMING"
PIPE = f"/v2/streaming/{_PATH}"
ROWS = f"/v2/streaming/data/{_PATH}"
TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
RESET_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError)


def ndjson(*ids: str) -> bytes:
    return b"".join(
        orjson.dumps(
            {"event_id": i, "event_timestamp": "2024-05-01T10:00:00", "equipment_id": "EQ-1"}
        )
        + b"\n"
        for i in ids
    )


@pytest.fixture
async def client(standin: Standin) -> AsyncIterator[httpx.AsyncClient]:
    async with connect(standin) as c:
        yield c


async def open_channel(c: httpx.AsyncClient, name: str) -> str:
    r = await c.put(f"{PIPE}/channels/{name}", json={})
    assert r.status_code == 200, r.text
    return str(r.json()["next_continuation_token"])


async def append(c: httpx.AsyncClient, name: str, token: str, *ids: str) -> httpx.Response:
    return await c.post(
        f"{ROWS}/channels/{name}/rows",
        params={"continuationToken": token, "endOffsetToken": ids[-1]},
        content=ndjson(*ids),
    )


async def status(c: httpx.AsyncClient, name: str) -> dict[str, Any]:
    r = await c.post(f"{PIPE}:bulk-channel-status", json={"channel_names": [name]})
    assert r.status_code == 200, r.text
    return dict(r.json()["channel_statuses"][name])


async def wait_offset(c: httpx.AsyncClient, name: str, offset: str) -> dict[str, Any]:
    return await eventually(
        lambda: status(c, name),
        lambda st: st["last_committed_offset_token"] == offset,
        interval=0.05,
        what=f"channel {name} committed up to {offset}",
    )


async def count_rows(c: httpx.AsyncClient) -> int:
    r = await c.post("/api/v2/statements", json={"statement": f"SELECT count(*) FROM {TABLE}"})
    assert r.status_code == 200, r.text
    return int(r.json()["data"][0][0])


async def test_429_with_and_without_retry_after(
    standin: Standin, client: httpx.AsyncClient
) -> None:
    token = await open_channel(client, "c")
    standin.faults.add(FaultRule("append", "429", retry_after=2, count=1))
    standin.faults.add(FaultRule("append", "429", count=1))
    first = await append(client, "c", token, "a")
    assert first.status_code == 429
    assert first.headers["retry-after"] == "2"
    assert first.json()["code"] == "ERR_TOO_MANY_REQUESTS"
    second = await append(client, "c", token, "a")
    assert second.status_code == 429
    assert "retry-after" not in second.headers
    # Not applied: the same token still chains.
    assert (await append(client, "c", token, "a")).status_code == 200
    assert standin.faults.counts() == {("append", "429"): 2}


async def test_500_503_409_410_per_endpoint(standin: Standin, client: httpx.AsyncClient) -> None:
    plan = standin.faults
    for rule in ("status:500", "hostname:503", "open:409", "drop:410", "sql:500"):
        endpoint, kind = rule.split(":")
        plan.add(FaultRule(endpoint, kind, count=1))
    r = await client.put(f"{PIPE}/channels/c", json={})
    assert (r.status_code, r.json()["code"]) == (409, "ERR_CHANNEL_HAS_UNCOMMITTED_DATA")
    await open_channel(client, "c")  # count=1: the next open goes through
    r = await client.post(f"{PIPE}:bulk-channel-status", json={"channel_names": ["c"]})
    assert (r.status_code, r.json()["code"]) == (500, "ERR_INTERNAL_ERROR")
    assert (await client.get("/v2/streaming/hostname")).status_code == 503
    r = await client.delete(f"{PIPE}/channels/c")
    assert (r.status_code, r.json()["code"]) == (410, "ERR_PIPE_FAILED_OVER")
    assert (await status(client, "c"))["channel_name"] == "C"  # the drop was not applied
    r = await client.post("/api/v2/statements", json={"statement": "SELECT 1"})
    assert r.status_code == 500
    assert plan.injected() == 5
    assert plan.injected("open", "409") == plan.injected("drop", "410") == 1


async def test_reset_before_is_a_transport_error_and_applies_nothing(
    standin: Standin, client: httpx.AsyncClient
) -> None:
    token = await open_channel(client, "c")
    standin.faults.add(FaultRule("append", "reset_before", count=1))
    with pytest.raises(RESET_ERRORS):
        await append(client, "c", token, "a")
    assert standin.faults.injected("append", "reset_before") == 1
    assert await count_rows(client) == 0
    assert standin.state.uncommitted_batches() == 0
    # The token was never consumed, so it still chains; once "b" has committed, a batch "a"
    # applied before it would have committed too (a channel commits in append order).
    assert (await append(client, "c", token, "b")).status_code == 200
    committed = await wait_offset(client, "c", "b")
    assert committed["rows_inserted"] == 1
    assert await count_rows(client) == 1


async def test_reset_after_applies_the_rows_but_the_client_sees_a_transport_error(
    standin: Standin, client: httpx.AsyncClient
) -> None:
    token = await open_channel(client, "c")
    standin.faults.add(FaultRule("append", "reset_after", count=1))
    with pytest.raises(RESET_ERRORS):
        await append(client, "c", token, "a", "b")
    committed = await wait_offset(client, "c", "b")
    assert committed["rows_inserted"] == 2
    assert await count_rows(client) == 2
    # The request was applied, so its token is used up: retrying with it is a row-seq gap.
    retry = await append(client, "c", token, "a", "b")
    assert retry.status_code == 400
    assert retry.json()["code"] == "ERR_CHANNEL_MUST_BE_REOPENED_DUE_TO_ROW_SEQ_GAP"


async def test_slow_delays_the_response(standin: Standin, client: httpx.AsyncClient) -> None:
    """The slowed request answers after a request sent later (count=1: only the first is slow)."""
    await open_channel(client, "c")
    rule = standin.faults.add(FaultRule("*", "slow", delay_s=3, count=1))
    answered: list[str] = []

    async def ask(label: str) -> None:
        await status(client, "c")
        answered.append(label)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask, "slowed")
        await eventually(lambda: rule.fired, lambda n: n == 1, what="the slow rule fired")
        await ask("later")
    assert answered == ["later", "slowed"]
    assert standin.faults.injected("status", "slow") == 1


async def test_invalidate_shows_in_status_fails_appends_until_reopen(
    standin: Standin, client: httpx.AsyncClient
) -> None:
    token = await open_channel(client, "c")
    standin.faults.freeze_commits()
    r = await append(client, "c", token, "a")
    assert r.status_code == 200
    token = r.json()["next_continuation_token"]
    standin.faults.add(FaultRule("append", "invalidate", count=1))
    r = await append(client, "c", token, "b")
    assert (r.status_code, r.json()["code"]) == (400, "ERR_CHANNEL_MUST_BE_REOPENED")
    assert (await status(client, "c"))["channel_status_code"] == "ERR_CHANNEL_MUST_BE_REOPENED"
    r = await append(client, "c", token, "b")  # the rule is spent; the channel stays invalid
    assert (r.status_code, r.json()["code"]) == (400, "ERR_CHANNEL_MUST_BE_REOPENED")
    assert standin.state.uncommitted_batches() == 0  # "a" was discarded with the channel
    standin.faults.release_commits()
    token = await open_channel(client, "c")
    assert (await status(client, "c"))["channel_status_code"] == "SUCCESS"
    assert (await append(client, "c", token, "b")).status_code == 200
    await wait_offset(client, "c", "b")
    assert await count_rows(client) == 1


async def test_every_nth_is_exact_over_http(standin: Standin, client: httpx.AsyncClient) -> None:
    await open_channel(client, "c")
    standin.faults.add(FaultRule("status", "503", every=3))
    codes = []
    for _ in range(9):
        r = await client.post(f"{PIPE}:bulk-channel-status", json={"channel_names": ["c"]})
        codes.append(r.status_code)
    assert codes == [200, 200, 503] * 3
    assert standin.faults.injected("status", "503") == 3


async def test_freeze_holds_commits_until_release(
    standin: Standin, client: httpx.AsyncClient
) -> None:
    token = await open_channel(client, "c")
    standin.faults.freeze_commits()
    r = await append(client, "c", token, "a")
    assert r.status_code == 200
    await anyio.sleep(0.8)  # four commit delays
    assert (await status(client, "c"))["last_committed_offset_token"] is None
    assert standin.state.uncommitted_batches() == 1
    standin.faults.release_commits()
    await wait_offset(client, "c", "a")
    assert await count_rows(client) == 1


async def test_commit_jitter_keeps_channel_order(
    standin: Standin, client: httpx.AsyncClient
) -> None:
    standin.faults.seed(5)
    standin.faults.set_commit_delay(0.05, 0.6)
    token = await open_channel(client, "c")
    for i in range(8):
        r = await append(client, "c", token, f"r{i}")
        assert r.status_code == 200
        token = r.json()["next_continuation_token"]
    await eventually(
        standin.state.uncommitted_batches, lambda n: n == 0, what="every batch committed"
    )
    # Batches commit in append order, so the last committed offset is the last batch's.
    assert (await status(client, "c"))["last_committed_offset_token"] == "r7"


async def test_rate_limit_429_after_ten_quick_appends(
    standin: Standin, client: httpx.AsyncClient
) -> None:
    token = await open_channel(client, "c")
    for i in range(10):
        r = await append(client, "c", token, f"r{i}")
        assert r.status_code == 200, r.text
        token = r.json()["next_continuation_token"]
    r = await append(client, "c", token, "r10")
    assert r.status_code == 429
    assert r.json()["code"] == "ERR_TOO_MANY_REQUESTS"
    assert int(r.headers["retry-after"]) >= 1
    other = await open_channel(client, "other")
    assert (await append(client, "other", other, "x")).status_code == 200
    await anyio.sleep(1.05)
    assert (await append(client, "c", token, "r10")).status_code == 200


async def test_rate_limit_switch_off(make_standin: StandinFactory) -> None:
    standin = make_standin(enforce_rate_limits=False)
    async with connect(standin) as c:
        token = await open_channel(c, "c")
        for i in range(15):
            r = await append(c, "c", token, f"r{i}")
            assert r.status_code == 200, r.text
            token = r.json()["next_continuation_token"]


async def test_channel_limit_per_pipe(make_standin: StandinFactory) -> None:
    standin = make_standin(max_channels_per_pipe=2)
    async with connect(standin) as c:
        await open_channel(c, "a")
        await open_channel(c, "b")
        r = await c.put(f"{PIPE}/channels/third", json={})
        assert (r.status_code, r.json()["code"]) == (400, "ERR_TOO_MANY_CHANNELS")
        await open_channel(c, "a")  # reopening an existing channel is not a new one
        assert (await c.delete(f"{PIPE}/channels/b")).status_code == 200
        await open_channel(c, "third")


async def test_spec_plan_from_settings_is_the_live_handle(make_standin: StandinFactory) -> None:
    plan = parse_fault_spec("open:409:count=2,seed=1")
    standin = make_standin(faults=plan)
    assert standin.faults is plan
    async with connect(standin) as c:
        codes = [(await c.put(f"{PIPE}/channels/c", json={})).status_code for _ in range(3)]
    assert codes == [409, 409, 200]
    assert plan.rules[0].fired == 2
