"""StreamingAuth and StreamingClient against httpx.MockTransport (snowflake-apis.md §2.3–§2.9)."""

from __future__ import annotations

import gc
import gzip
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx
import jwt
import orjson
import pytest
import zstandard
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.errors import (
    AuthError,
    FatalError,
    ObjectNotFound,
    PayloadTooLarge,
    ReopenChannel,
    RetryableError,
)
from streamd.rows import ChannelKey
from streamd.snowflake.auth import KeyPairAuth, StreamingAuth
from streamd.snowflake.streaming import (
    MAX_APPEND_WIRE_BYTES,
    ChannelStatus,
    Compression,
    StreamingClient,
)
from streamd.testing import ManualClock

KEY = ChannelKey("MANUFACTURING_DEMO", "RAW_DATA", "SENSOR_DATA_RAW-STREAMING", "streamd_SENSOR")
STATUS = {
    "database_name": "MANUFACTURING_DEMO",
    "schema_name": "RAW_DATA",
    "pipe_name": "SENSOR_DATA_RAW-STREAMING",
    "channel_name": "streamd_SENSOR",
    "channel_status_code": "SUCCESS",
    "last_committed_offset_token": "00000000000000000041",
    "created_on_ms": 1_763_000_000_000,
    "rows_inserted": 40,
    "rows_parsed": 42,
    "rows_error_count": 2,
    "last_error_offset_upper_bound": "00000000000000000030",
    "last_error_message": "bad row",
    "last_error_timestamp": 1_763_000_001_000,
    "snowflake_avg_processing_latency_ms": 120,
}
Ingest = Callable[[httpx.Request], httpx.Response]


class FakeSnowflake:
    """Control host (hostname, token) plus a per-test ingest handler; records every request."""

    def __init__(self, clock: ManualClock, scoped_jwt: Callable[..., str]) -> None:
        self.clock = clock
        self.scoped_jwt = scoped_jwt
        self.requests: list[httpx.Request] = []
        self.hostname = httpx.Response(200, text="acct_1.ingest.example.com")
        self.token_lifetime = 3600.0
        self.token_response: Callable[[], httpx.Response] | None = None
        self.tokens: list[str] = []
        self.ingest: Ingest = lambda _req: httpx.Response(200, json={})

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/v2/streaming/hostname":
            return self.hostname
        if request.url.path == "/oauth/token":
            if self.token_response is not None:
                return self.token_response()
            token = self.scoped_jwt(
                iat=self.clock.wall(), lifetime=self.token_lifetime, marker=str(len(self.tokens))
            )
            self.tokens.append(token)
            return httpx.Response(200, text=token)
        return self.ingest(request)

    def calls(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]

    def ingest_calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host != "control.example.com"]


@pytest.fixture
def fake(clock: ManualClock, scoped_jwt: Callable[..., str]) -> FakeSnowflake:
    return FakeSnowflake(clock, scoped_jwt)


@pytest.fixture
def http(fake: FakeSnowflake) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(fake.handler))


def _auth(
    http: httpx.AsyncClient,
    rsa_key: RSAPrivateKey,
    clock: ManualClock,
    control: str = "https://control.example.com",
) -> StreamingAuth:
    return StreamingAuth(http, KeyPairAuth(rsa_key, "myorg-acct", "svc", clock), control, clock)


def _client(
    auth: StreamingAuth, http: httpx.AsyncClient, compression: Compression = "zstd"
) -> StreamingClient:
    return StreamingClient(http, auth, compression=compression, user_agent="streamd/test")


# --- StreamingAuth -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "control", "expected"),
    [
        (httpx.Response(200, text="acct_1.ingest.example.com\n"), "https://control.example.com",
         "https://acct-1.ingest.example.com"),
        (httpx.Response(200, json={"hostname": "acct_1.ingest.example.com"}),
         "https://control.example.com", "https://acct-1.ingest.example.com"),
        (httpx.Response(200, text="my_acct.ingest.example.com"), "https://control.example.com:8443",
         "https://my-acct.ingest.example.com:8443"),
        (httpx.Response(200, text="127.0.0.1"), "http://control.example.com:18080",
         "http://127.0.0.1:18080"),
        (httpx.Response(200, json={"hostname": "127.0.0.1:9999"}), "http://control.example.com:18080",
         "http://127.0.0.1:9999"),
    ],
)  # fmt: skip
async def test_ingest_url_from_text_or_json(
    fake: FakeSnowflake,
    http: httpx.AsyncClient,
    rsa_key: RSAPrivateKey,
    clock: ManualClock,
    response: httpx.Response,
    control: str,
    expected: str,
) -> None:
    """Hostname answers may be JSON or text; `_` becomes `-`; a bare host gets the control port."""
    fake.hostname = response
    auth = _auth(http, rsa_key, clock, control)
    assert await auth.ingest_url() == expected
    assert await auth.ingest_url() == expected
    assert len(fake.calls("/v2/streaming/hostname")) == 1


async def test_hostname_and_token_calls_carry_the_key_pair_jwt(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Both control calls send the JWT as KEYPAIR_JWT; the exchange scope is the normalised host."""
    auth = _auth(http, rsa_key, clock)
    token = await auth.scoped_token()
    assert token == fake.tokens[0]
    hostname_req, token_req = fake.requests
    for req in (hostname_req, token_req):
        assert req.headers["X-Snowflake-Authorization-Token-Type"] == "KEYPAIR_JWT"
        bearer = req.headers["Authorization"].removeprefix("Bearer ")
        claims = jwt.decode(
            bearer, rsa_key.public_key(), algorithms=["RS256"], options={"verify_exp": False}
        )
        assert claims["sub"] == "MYORG-ACCT.SVC"
    assert token_req.method == "POST"
    assert token_req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token_req.content.decode())
    assert form == {
        "grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
        "scope": ["acct-1.ingest.example.com"],
    }


async def test_token_accepted_as_json(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """A documented JSON `{"token": …}` answer works as well as plain text."""
    fake.token_response = lambda: httpx.Response(200, json={"token": "opaque-token"})
    assert await _auth(http, rsa_key, clock).scoped_token() == "opaque-token"


async def test_scoped_token_refreshed_60s_before_exp(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """A token whose JWT says one hour is reused for 59 minutes, then exchanged again."""
    auth = _auth(http, rsa_key, clock)
    first = await auth.scoped_token()
    clock.advance(3540 - 1)
    assert await auth.scoped_token() == first
    clock.advance(1)
    second = await auth.scoped_token()
    assert second != first
    assert len(fake.tokens) == 2
    assert len(fake.calls("/v2/streaming/hostname")) == 1


async def test_scoped_token_exp_in_ms_and_short_lifetimes(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """A short-lived token is used for half its life instead of being re-exchanged every call."""
    fake.token_lifetime = 100
    auth = _auth(http, rsa_key, clock)
    first = await auth.scoped_token()
    clock.advance(49)
    assert await auth.scoped_token() == first
    clock.advance(1)
    assert await auth.scoped_token() != first


async def test_opaque_scoped_token_assumed_to_live_an_hour(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """A token that is not a JWT is assumed to live one hour."""
    fake.token_response = lambda: httpx.Response(200, text="opaque")
    auth = _auth(http, rsa_key, clock)
    await auth.scoped_token()
    clock.advance(3539)
    await auth.scoped_token()
    assert len(fake.calls("/oauth/token")) == 1
    clock.advance(1)
    await auth.scoped_token()
    assert len(fake.calls("/oauth/token")) == 2


async def test_concurrent_callers_share_one_exchange(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Many channels asking at once cause one hostname call and one exchange."""
    auth = _auth(http, rsa_key, clock)
    seen: list[str] = []

    async def ask() -> None:
        seen.append(await auth.scoped_token())

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(ask)
    assert len(set(seen)) == 1
    assert len(fake.calls("/oauth/token")) == 1
    assert len(fake.calls("/v2/streaming/hostname")) == 1


async def test_invalidate_only_the_stale_token(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Invalidating a token that was already replaced does not force another exchange."""
    auth = _auth(http, rsa_key, clock)
    first = await auth.scoped_token()
    auth.invalidate_scoped_token(first)
    second = await auth.scoped_token()
    auth.invalidate_scoped_token(first)
    assert await auth.scoped_token() == second
    auth.invalidate_scoped_token()
    assert await auth.scoped_token() != second
    assert len(fake.tokens) == 3


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(401, json={"code": "390144", "message": "JWT invalid"}), AuthError),
        (httpx.Response(503), RetryableError),
        (httpx.Response(200, text="<html><body>hello</body></html>"), FatalError),
    ],
)
async def test_hostname_failures(
    fake: FakeSnowflake,
    http: httpx.AsyncClient,
    rsa_key: RSAPrivateKey,
    clock: ManualClock,
    response: httpx.Response,
    expected: type[Exception],
) -> None:
    """Control-host failures are typed; messages name the identity and fingerprint, not the JWT."""
    fake.hostname = response
    auth = _auth(http, rsa_key, clock)
    with pytest.raises(expected) as info:
        await auth.ingest_url()
    assert type(info.value) is expected
    message = str(info.value)
    assert "MYORG-ACCT.SVC" in message
    assert "SHA256:" in message
    assert "eyJ" not in message


async def test_auth_repr_hides_the_token(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Secrets never show in a repr."""
    auth = _auth(http, rsa_key, clock)
    token = await auth.scoped_token()
    assert token not in repr(auth)
    assert token not in repr(_client(auth, http))


# --- StreamingClient -----------------------------------------------------------------------


async def test_open_channel_put_path_body_and_result(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Open sends `{}` to the encoded channel path with the scoped token and parses the status."""
    fake.ingest = lambda _r: httpx.Response(
        200, json={"next_continuation_token": "ct-1", "channel_status": STATUS}
    )
    auth = _auth(http, rsa_key, clock)
    result = await _client(auth, http).open_channel(KEY)
    assert result.continuation_token == "ct-1"
    assert result.status.last_committed_offset_token == "00000000000000000041"
    assert result.status.rows_error_count == 2
    assert result.status.healthy
    (req,) = fake.ingest_calls()
    assert req.method == "PUT"
    assert req.url.host == "acct-1.ingest.example.com"
    assert req.url.raw_path == (
        b"/v2/streaming/databases/MANUFACTURING_DEMO/schemas/RAW_DATA"
        b"/pipes/SENSOR_DATA_RAW-STREAMING/channels/streamd_SENSOR"
    )
    assert orjson.loads(req.content) == {}
    assert req.headers["Authorization"] == f"Bearer {fake.tokens[0]}"
    assert req.headers["User-Agent"] == "streamd/test"


async def test_open_channel_options_and_segment_encoding(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Options go in the body; every path segment is percent-encoded and keeps its case."""
    fake.ingest = lambda _r: httpx.Response(
        200, json={"next_continuation_token": "ct", "channel_status": {}}
    )
    key = ChannelKey("Db 1", "s/x", "P%Q", "ch a/b")
    client = _client(_auth(http, rsa_key, clock), http)
    result = await client.open_channel(key, offset_token="7", fail_on_uncommitted_rows=True)
    (req,) = fake.ingest_calls()
    assert req.url.raw_path == (
        b"/v2/streaming/databases/Db%201/schemas/s%2Fx/pipes/P%25Q/channels/ch%20a%2Fb"
    )
    assert orjson.loads(req.content) == {"offset_token": "7", "fail_on_uncommitted_rows": True}
    assert result.status.channel_name == "ch a/b"
    assert result.status.last_committed_offset_token is None
    assert not result.status.healthy


async def test_open_channel_without_status_is_retryable(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Without channel_status there is no committed offset to replay from: open again."""
    fake.ingest = lambda _r: httpx.Response(200, json={"next_continuation_token": "ct"})
    with pytest.raises(RetryableError):
        await _client(_auth(http, rsa_key, clock), http).open_channel(KEY)


def _decompress(req: httpx.Request) -> bytes:
    encoding = req.headers.get("Content-Encoding")
    if encoding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(req.content)
    if encoding == "gzip":
        return gzip.decompress(req.content)
    assert encoding is None
    return req.content


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
async def test_append_rows_query_headers_and_body(
    fake: FakeSnowflake,
    http: httpx.AsyncClient,
    rsa_key: RSAPrivateKey,
    clock: ManualClock,
    compression: Compression,
) -> None:
    """Append posts NDJSON (compressed as configured) with token and offsets in the query."""
    fake.ingest = lambda _r: httpx.Response(200, json={"next_continuation_token": "ct-2"})
    body = b"".join(orjson.dumps({"ID": i, "V": "x" * 50}) + b"\n" for i in range(200))
    client = _client(_auth(http, rsa_key, clock), http, compression)
    token = await client.append_rows(
        KEY, "ct/1+=&?", body, start_offset_token="00000000000000000042",
        end_offset_token="00000000000000000241",
    )  # fmt: skip
    assert token == "ct-2"
    (req,) = fake.ingest_calls()
    assert req.method == "POST"
    assert req.url.path == (
        "/v2/streaming/data/databases/MANUFACTURING_DEMO/schemas/RAW_DATA"
        "/pipes/SENSOR_DATA_RAW-STREAMING/channels/streamd_SENSOR/rows"
    )
    query = parse_qs(req.url.query.decode(), keep_blank_values=True)
    assert query["continuationToken"] == ["ct/1+=&?"]
    assert query["startOffsetToken"] == ["00000000000000000042"]
    assert query["endOffsetToken"] == ["00000000000000000241"]
    assert len(query["requestId"][0]) == 36
    assert set(query) == {"continuationToken", "startOffsetToken", "endOffsetToken", "requestId"}
    assert req.headers["Content-Type"] == "application/x-ndjson"
    assert _decompress(req) == body
    if compression != "none":
        assert len(req.content) < len(body)


async def test_an_append_response_is_freed_without_the_cyclic_collector(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """httpx leaves each response in a cycle with its stream; ours are cut loose once read, so an
    append's response (and the request body it holds) goes when the last reference does."""
    fake.ingest = lambda _r: httpx.Response(200, json={"next_continuation_token": "ct-2"})
    client = _client(_auth(http, rsa_key, clock), http)
    await client.append_rows(
        KEY, "ct-1", b'{"ID":1}\n', start_offset_token="1", end_offset_token="1"
    )
    seen: list[weakref.ref[httpx.Response]] = []

    async def remember(response: httpx.Response) -> None:
        seen.append(weakref.ref(response))

    http.event_hooks["response"] = [remember]
    gc.disable()
    try:
        await client.append_rows(
            KEY, "ct-2", b'{"ID":2}\n', start_offset_token="2", end_offset_token="2"
        )
        assert len(seen) == 1
        assert seen[0]() is None
    finally:
        gc.enable()


@pytest.mark.parametrize(
    "response", [httpx.Response(200, json={"message": "OK"}), httpx.Response(200, text="ok")]
)
async def test_append_200_without_token_reopens(
    fake: FakeSnowflake,
    http: httpx.AsyncClient,
    rsa_key: RSAPrivateKey,
    clock: ManualClock,
    response: httpx.Response,
) -> None:
    """A 200 lacking next_continuation_token (or JSON) leaves the channel unusable."""
    client = _client(_auth(http, rsa_key, clock), http)
    fake.ingest = lambda _r: response
    with pytest.raises(ReopenChannel):
        await client.append_rows(KEY, "ct", b"{}\n", start_offset_token="1", end_offset_token="1")


async def test_append_stale_sequencer_is_reopen_not_fenced(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """A stale continuation token is ReopenChannel; the sink decides about fencing."""
    fake.ingest = lambda _r: httpx.Response(
        400, json={"code": "STALE_CONTINUATION_TOKEN_SEQUENCER", "message": "stale"}
    )
    client = _client(_auth(http, rsa_key, clock), http)
    with pytest.raises(ReopenChannel) as info:
        await client.append_rows(KEY, "ct", b"{}\n", start_offset_token="1", end_offset_token="1")
    assert type(info.value) is ReopenChannel
    assert str(KEY) in str(info.value)
    assert len(fake.ingest_calls()) == 1


async def test_append_429_carries_retry_after(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Throttling is retryable and carries the server's hint; nothing is retried here."""
    fake.ingest = lambda _r: httpx.Response(429, headers={"Retry-After": "4"})
    client = _client(_auth(http, rsa_key, clock), http)
    with pytest.raises(RetryableError) as info:
        await client.append_rows(KEY, "ct", b"{}\n", start_offset_token="1", end_offset_token="1")
    assert info.value.retry_after == 4.0
    assert len(fake.ingest_calls()) == 1


async def test_401_refreshes_token_and_resends_once(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """One 401 triggers one new exchange and one resend of the same body and token."""
    answers = iter(
        [httpx.Response(401), httpx.Response(200, json={"next_continuation_token": "n"})]
    )
    fake.ingest = lambda _r: next(answers)
    client = _client(_auth(http, rsa_key, clock), http)
    assert await client.append_rows(
        KEY, "ct", b"{}\n", start_offset_token="1", end_offset_token="1"
    ) == "n"  # fmt: skip
    first, second = fake.ingest_calls()
    assert first.headers["Authorization"] == f"Bearer {fake.tokens[0]}"
    assert second.headers["Authorization"] == f"Bearer {fake.tokens[1]}"
    assert first.content == second.content
    assert first.url.params["continuationToken"] == second.url.params["continuationToken"]


async def test_second_401_is_auth_error(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """A 401 that a fresh token does not cure is AuthError after exactly two attempts."""
    fake.ingest = lambda _r: httpx.Response(401, json={"code": "390303", "message": "expired"})
    client = _client(_auth(http, rsa_key, clock), http)
    with pytest.raises(AuthError, match="RSA_PUBLIC_KEY"):
        await client.bulk_channel_status("D", "S", "P", ["C"])
    assert len(fake.ingest_calls()) == 2
    assert len(fake.tokens) == 2


async def test_a_403_that_persists_after_a_token_refresh_names_the_grant(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """A 403 gets one resend with a fresh scoped token, as the SDK does; a second is fatal."""
    fake.ingest = lambda _r: httpx.Response(403)
    client = _client(_auth(http, rsa_key, clock), http)
    with pytest.raises(AuthError, match="INSERT grant"):
        await client.open_channel(KEY)
    assert len(fake.ingest_calls()) == 2
    assert len(fake.tokens) == 2


async def test_a_single_403_is_cured_by_a_fresh_token(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """One 403 (a token that lost its role, say) is retried with a fresh token and goes through."""
    ok = httpx.Response(200, json={"next_continuation_token": "ct-1", "channel_status": STATUS})
    answers = iter([httpx.Response(403), ok])
    fake.ingest = lambda _r: next(answers)
    client = _client(_auth(http, rsa_key, clock), http)
    assert (await client.open_channel(KEY)).continuation_token == "ct-1"
    assert len(fake.ingest_calls()) == 2
    assert len(fake.tokens) == 2


async def test_410_reopens_and_rediscovers_the_host(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """After a pipe failover the next call asks for the hostname again."""
    fake.ingest = lambda _r: httpx.Response(410)
    client = _client(_auth(http, rsa_key, clock), http)
    with pytest.raises(ReopenChannel):
        await client.open_channel(KEY)
    fake.ingest = lambda _r: httpx.Response(200, json={})
    await client.drop_channel(KEY)
    assert len(fake.calls("/v2/streaming/hostname")) == 2


@pytest.mark.parametrize(
    ("exc", "expected"),
    [(httpx.ReadTimeout, ReopenChannel), (httpx.ConnectError, RetryableError)],
)
async def test_append_transport_errors(
    fake: FakeSnowflake,
    http: httpx.AsyncClient,
    rsa_key: RSAPrivateKey,
    clock: ManualClock,
    exc: type[httpx.TransportError],
    expected: type[Exception],
) -> None:
    """A timed-out append has an unknown outcome (reopen); a refused connection sent nothing."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)

    fake.ingest = fail
    client = _client(_auth(http, rsa_key, clock), http)
    with pytest.raises(expected) as info:
        await client.append_rows(KEY, "ct-x", b"{}\n", start_offset_token="1", end_offset_token="1")
    assert type(info.value) is expected
    assert "ct-x" not in str(info.value)


async def test_status_transport_timeout_is_retryable(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Status calls are idempotent: a timeout is simply retryable."""

    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    fake.ingest = fail
    with pytest.raises(RetryableError):
        await _client(_auth(http, rsa_key, clock), http).bulk_channel_status("D", "S", "P", ["C"])


async def test_oversized_payload_is_refused_before_sending(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """A body over the 4 MB wire limit raises PayloadTooLarge without a request."""
    client = _client(_auth(http, rsa_key, clock), http, "none")
    with pytest.raises(PayloadTooLarge):
        await client.append_rows(
            KEY, "ct", b"x" * (MAX_APPEND_WIRE_BYTES + 1), start_offset_token="1",
            end_offset_token="1",
        )  # fmt: skip
    assert fake.ingest_calls() == []


async def test_bulk_status_matches_keys_case_insensitively(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Keys come back under the requested spelling; absent channels are absent."""
    bodies: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(orjson.loads(request.content))
        return httpx.Response(
            200,
            json={
                "channel_statuses": {
                    "STREAMD_SENSOR": {**STATUS, "rows_error_count": None, "rows_errors": 5},
                    "Other": {"channel_status_code": "SUCCESS", "row_error_count": "7"},
                    "exact": {"channel_status_code": "ERR", "rows_error_count": 1},
                    "EXACT": {"channel_status_code": "SUCCESS", "rows_error_count": 9},
                }
            },
        )

    fake.ingest = answer
    client = _client(_auth(http, rsa_key, clock), http)
    names = ["streamd_SENSOR", "other", "exact", "missing"]
    result = await client.bulk_channel_status("DB", "SC", "P-STREAMING", names)
    assert bodies == [{"channel_names": names}]
    (req,) = fake.ingest_calls()
    assert (
        req.url.raw_path
        == b"/v2/streaming/databases/DB/schemas/SC/pipes/P-STREAMING:bulk-channel-status"
    )
    assert set(result) == {"streamd_SENSOR", "other", "exact"}
    assert result["streamd_SENSOR"].rows_error_count == 5
    assert result["other"].rows_error_count == 7
    assert result["exact"].status_code == "ERR"  # an exact key wins over a case-folded one
    assert result["exact"].rows_error_count == 1


async def test_bulk_status_of_nothing_sends_nothing(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """No names, no request."""
    assert (
        await _client(_auth(http, rsa_key, clock), http).bulk_channel_status("D", "S", "P", [])
        == {}
    )
    assert fake.requests == []


@pytest.mark.parametrize("field", ["rows_error_count", "rows_errors", "row_error_count"])
def test_channel_status_reads_all_error_count_names(field: str) -> None:
    """The error counter is read under each of its three documented names (§2.8)."""
    status = ChannelStatus.from_json({field: 3}, channel_name="C")
    assert status.rows_error_count == 3
    assert status.channel_name == "C"


def test_channel_status_fields() -> None:
    """Every field of the documented status object lands in the dataclass."""
    status = ChannelStatus.from_json(STATUS, channel_name="ignored")
    assert status == ChannelStatus(
        channel_name="streamd_SENSOR",
        status_code="SUCCESS",
        last_committed_offset_token="00000000000000000041",
        rows_inserted=40,
        rows_parsed=42,
        rows_error_count=2,
        last_error_offset_upper_bound="00000000000000000030",
        last_error_message="bad row",
        last_error_timestamp=1_763_000_001_000,
        created_on_ms=1_763_000_000_000,
        avg_processing_latency_ms=120.0,
    )
    assert not ChannelStatus.from_json({"channel_status_code": "ACTIVE"}, channel_name="c").healthy


async def test_drop_channel(
    fake: FakeSnowflake, http: httpx.AsyncClient, rsa_key: RSAPrivateKey, clock: ManualClock
) -> None:
    """Drop is a DELETE on the channel path; a 404 names the object."""
    client = _client(_auth(http, rsa_key, clock), http)
    await client.drop_channel(KEY)
    (req,) = fake.ingest_calls()
    assert req.method == "DELETE"
    assert req.url.path.endswith("/channels/streamd_SENSOR")
    fake.ingest = lambda _r: httpx.Response(404)
    with pytest.raises(ObjectNotFound, match="drop channel MANUFACTURING_DEMO"):
        await client.drop_channel(KEY)
