"""Putting files where a pipe reads them (reference §3.4): a local stage directory, a Snowflake
internal stage (PUT), or an S3 external stage. Blocking IO runs in worker threads.

Every uploader overwrites: file names are deterministic (a resubmission after a crash is the same
file with the same bytes), and Snowpipe dedupes by name, so writing a file twice is harmless.

Which one to use:
* `LocalDirStage` — the stand-in's internal stage is a directory (`stages.py`); on the same machine
  the equivalent of PUT is an atomic write into it (temp name, then rename, so the loader never sees
  half a file). A real deployment mirrors this with `InternalStage` (PUT) or `S3Stage`.
* `InternalStage` — `PUT file://… @stage/dir AUTO_COMPRESS = FALSE OVERWRITE = TRUE` through
  snowflake-connector-python (the SQL API cannot PUT, §3.4).
* `S3Stage` — S3 PutObject under the external stage's URL prefix (any S3-compatible endpoint).
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import anyio

from streamd.errors import AuthError, FatalError, RetryableError


class StageUploader(Protocol):
    """Writes a named file onto a stage (paths are relative to the pipe's stage location)."""

    location: str
    """Where files go, for logs (no secrets)."""

    async def upload(self, path: str, data: bytes) -> None:
        """Store `data` as `path`, replacing any earlier file of that name."""
        ...


class LocalDirStage:
    """An internal stage that is a local directory (the stand-in's, on this machine)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.location = str(directory)

    async def upload(self, path: str, data: bytes) -> None:
        """Atomic write: `<name>.tmp`, fsync, rename (the stand-in's loader skips `*.tmp`)."""
        await anyio.to_thread.run_sync(_write_atomic, self.directory / path, data)


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(target)


def put_command(local_file: Path, stage: str, directory: str) -> str:
    """The PUT statement for one already-gzipped file (no second compression, overwrite)."""
    source = str(local_file).replace("\\", "/").replace("'", "\\'")
    where = f"@{stage}/{directory}".rstrip("/").replace("'", "\\'")
    return (
        f"PUT 'file://{source}' '{where}' AUTO_COMPRESS = FALSE SOURCE_COMPRESSION = GZIP "
        "OVERWRITE = TRUE PARALLEL = 1"
    )


class Cursorlike(Protocol):
    """The part of a DB-API cursor PUT needs."""

    def execute(self, command: str) -> Any:
        """Run one statement."""
        ...


class InternalStage:
    """A Snowflake internal stage, written with PUT over one connector connection."""

    def __init__(self, stage: str, connect: Callable[[], Any]) -> None:
        """`stage` is `DB.SCHEMA.STAGE`; `connect()` returns a snowflake.connector connection."""
        self.stage = stage
        self.location = f"@{stage}"
        self._connect = connect
        self._connection: Any = None
        self._limiter = anyio.CapacityLimiter(1)

    async def upload(self, path: str, data: bytes) -> None:
        """PUT the file under its own name (PUT keeps the local file name)."""
        await anyio.to_thread.run_sync(
            functools.partial(self._put, path, data), limiter=self._limiter
        )

    def _put(self, path: str, data: bytes) -> None:
        directory, _, name = path.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="streamd-put-") as tmp:
            local = Path(tmp) / name
            local.write_bytes(data)
            try:
                if self._connection is None:
                    self._connection = self._connect()
                self._connection.cursor().execute(put_command(local, self.stage, directory))
            except Exception as err:
                self._connection = None  # reconnect on the next attempt
                raise _connector_error(err, self.stage) from None


def _connector_error(err: Exception, stage: str) -> Exception:
    errno = getattr(err, "errno", None)
    text = f"PUT to @{stage} failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    if errno in (390100, 390144, 250001):
        return AuthError(f"{text}; check target.user and target.private_key")
    if errno == 2003:
        return FatalError(f"{text}; create the stage and grant READ and WRITE on it")
    return RetryableError(text)


class S3Stage:
    """An S3 external stage: objects under `s3://bucket/prefix/`."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        """`client` is a boto3 S3 client (its endpoint may be any S3-compatible server)."""
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}"

    def key(self, path: str) -> str:
        """The object key of a stage-relative path."""
        return f"{self.prefix}/{path}" if self.prefix else path

    async def upload(self, path: str, data: bytes) -> None:
        """PutObject (overwrites)."""
        await anyio.to_thread.run_sync(functools.partial(self._put, path, data))

    def _put(self, path: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.put_object(Bucket=self.bucket, Key=self.key(path), Body=data)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            text = f"S3 PutObject to {self.location} failed: {code}"
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise AuthError(f"{text}; check the stage's AWS credentials") from None
            if code == "NoSuchBucket":
                raise FatalError(f"{text}; create bucket {self.bucket}") from None
            raise RetryableError(text) from None
        except BotoCoreError as err:
            raise RetryableError(f"S3 PutObject to {self.location} failed: {err}") from None
