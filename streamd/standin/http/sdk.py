"""Endpoints only the official `snowpipe-streaming` SDK calls; undocumented, shaped after its wire.

`official-sdk-wire.md` (SDK 1.9.1) recorded what the SDK sends and which answers it accepts:
`:pipe-info` (§4.1, needed before any channel opens), `/telemetry/send/sessionless` (§3 row 4;
the SDK ignores failures there, so it is accepted and counted, nothing more), and file mode's
stage upload and `/filebuffer` registration (§6). These may change with SDK versions.
"""

from __future__ import annotations

import base64
import functools
import logging
import time
import uuid
from dataclasses import dataclass, field

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamd.standin.http.auth import Authenticator, Unauthorized
from streamd.standin.http.responses import (
    attempt_of,
    continuation_token,
    json_body,
    json_response,
    parse_json,
    read_limited,
)
from streamd.standin.sdk.blob_stage import BUCKET, MAX_OBJECT_BYTES, BlobStageError, Stage, Upload
from streamd.standin.sdk.counters import SdkCounters
from streamd.standin.sdk.filebuffer import (
    ENCRYPTION_VERSION,
    PIPE_KEY_ID,
    consume,
    fragment_loader,
    parse_fragments,
    pipe_key,
)
from streamd.standin.streaming.channels import StandinState
from streamd.standin.streaming.errors import StreamingError
from streamd.standin.streaming.ids import ChannelId
from streamd.standin.streaming.parse_rows import InvalidRowsBody

log = logging.getLogger("streamd.standin")

STAGE_EXPIRY_MS = 4_102_444_800_000
"""2100-01-01: the SDK re-fetches pipe-info an hour ahead regardless (wire §4.1)."""
FAKE_CREDS = {"AWS_KEY_ID": "STANDINFAKEKEYID", "AWS_SECRET_KEY": "standin", "AWS_TOKEN": "standin"}
"""The SDK insists on S3 creds even in rowset mode (wire §4.1); nothing checks them."""


def _s3_error(err: BlobStageError) -> Response:
    # S3's XML error shape, which the SDK's S3 client parses.
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{err.code}</Code><Message>{err.message}</Message></Error>"
    )
    return Response(xml, status_code=err.status, media_type="application/xml")


@dataclass(frozen=True, slots=True)
class SdkApi:
    """Handlers for the SDK-only calls, bound to the live state and this server's address."""

    state: StandinState
    auth: Authenticator
    stage: Stage
    storage_endpoint: str
    """`host:port` of this stand-in, no scheme: where the SDK's S3 client uploads (wire §4.1)."""
    counters: SdkCounters = field(default_factory=SdkCounters)

    def routes(self) -> list[Route]:
        """Routes outside /v2/streaming (that prefix is dispatched by `StreamingApi`)."""
        return [
            Route("/telemetry/send/sessionless", self.telemetry, methods=["POST"]),
            Route(f"/{BUCKET}/{{key:path}}", self.put_object, methods=["PUT"]),
        ]

    async def telemetry(self, request: Request) -> Response:
        """Accept and count the SDK's metrics posts (sent with the key-pair JWT)."""
        try:
            self.auth.check_control(request.headers.get("authorization"))
        except Unauthorized as err:
            return json_response({"code": "390303", "message": str(err), "success": False}, 401)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = {}
        logs = body.get("logs") if isinstance(body, dict) else None
        self.counters.telemetry_posts += 1
        self.counters.telemetry_logs += len(logs) if isinstance(logs, list) else 0
        # `data` is required by the SDK's parser (wire §3 row 4).
        return json_response({"data": "ok", "code": None, "message": None, "success": True})

    async def put_object(self, request: Request) -> Response:
        """S3 PutObject onto the stage; answers 200 with the ETag the SDK requires (wire §6)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_OBJECT_BYTES:
            return _s3_error(
                BlobStageError(400, "EntityTooLarge", "object exceeds the stage's cap")
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_OBJECT_BYTES:
                return _s3_error(BlobStageError(400, "EntityTooLarge", "object exceeds the cap"))
            chunks.append(chunk)
        raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
        key = raw.decode("latin-1").split("?", 1)[0].removeprefix(f"/{BUCKET}/")
        upload = Upload(
            key=key,
            body=b"".join(chunks),
            content_encoding=request.headers.get("content-encoding"),
            decoded_length=request.headers.get("x-amz-decoded-content-length"),
        )
        try:
            etag = await anyio.to_thread.run_sync(self.stage.put_sync, upload)
        except BlobStageError as err:
            return _s3_error(err)
        self.counters.stage_uploads += 1
        return Response(status_code=200, headers={"ETag": f'"{etag}"'})

    async def pipe_info(self, request: Request, db: str, schema: str, pipe: str) -> Response:
        """`POST …/pipes/{pipe}:pipe-info`: stage locations, fake creds and the pipe's key."""
        self.auth.check_ingest(request.headers.get("authorization"))
        spec = await self.state.resolve_pipe(db, schema, pipe)
        version = (await json_body(request)).get("encryption_version")
        if version not in (None, ENCRYPTION_VERSION):
            raise StreamingError(
                400, "ERR_INVALID_REQUEST", f"encryption_version {version!r} is not supported"
            )
        # A fresh prefix per call: the SDK names its blobs 0.ndjson, 1.ndjson … per client, so
        # clients sharing a prefix would overwrite each other's blobs (wire §4.1 [REC]).
        prefix = f"{spec.database}/{spec.schema}/{spec.name}/{uuid.uuid4().hex}/"
        location = {
            "expiry_time_ms": STAGE_EXPIRY_MS,
            "location_type": "S3",
            "use_s3_regional_url": False,
            "location": f"{BUCKET}/{prefix}",
            "region": "us-west-2",
            "creds": FAKE_CREDS,
            "storage_endpoint": self.storage_endpoint,
        }
        key = pipe_key(self.auth.secret, db.upper(), schema.upper(), pipe.upper())
        return json_response(
            {
                "rowset_stage_location": location,
                "durable_stage_location": location,
                "encryption_info": {
                    "pipe_key": base64.b64encode(key).decode("ascii"),
                    "pipe_key_id": PIPE_KEY_ID,
                    "diversifier": "streamd-standin",
                },
                "parameter_overrides": {},
            }
        )

    async def filebuffer(self, request: Request, cid: ChannelId) -> Response:
        """`POST /v2/streaming/data/…/channels/{ch}/filebuffer`: commit registered fragments."""
        self.auth.check_ingest(request.headers.get("authorization"))
        token = continuation_token(request)
        try:
            fragments = parse_fragments(parse_json(await read_limited(request)))
        except InvalidRowsBody as err:
            raise StreamingError(400, err.code, err.message) from err
        key = pipe_key(self.auth.secret, cid.db, cid.schema, cid.pipe)
        started = time.monotonic()
        next_token = await self.state.append_loaded(
            cid,
            token,
            fragment_loader(self.stage, key, fragments),
            fragments[0].start_offset,
            fragments[-1].end_offset,
            attempt_of(request),
        )
        self.counters.file_fragments += len(fragments)
        await anyio.to_thread.run_sync(functools.partial(consume, self.stage, fragments))
        log.debug(
            "filebuffer %s: %d fragments in %.3f s",
            cid.channel,
            len(fragments),
            time.monotonic() - started,
        )
        return json_response({"next_continuation_token": next_token})
