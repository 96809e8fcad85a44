"""Classic Snowpipe REST through `snowflake-ingest` (reference §3): insertFiles, insertReport, loadHistoryScan.

`SimpleIngestManager` is synchronous (requests), so every call runs in a worker thread, one at a
time per client (it keeps insertReport's `beginMark` between calls). It is pointed at any URL
through scheme/host/port (§3.5), which is how it reaches the stand-in. Its own retries (408/5xx and
connection errors, up to 60 s) run first; what is left is mapped onto `streamd.errors`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import requests  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from snowflake.ingest.error import IngestClientError, IngestResponseError

# From the submodule: the snowpipe-streaming package ships its own `snowflake/ingest/__init__.py`
# (empty), which hides these re-exports when both are installed.
from snowflake.ingest.simple_ingest_manager import SimpleIngestManager, StagedFile
from snowflake.ingest.utils.network import SnowflakeRestful

from streamd.errors import AuthError, FatalError, ObjectNotFound, RetryableError

T = TypeVar("T")
MAX_FILES_PER_CALL = 5000
"""insertFiles takes at most 5,000 files per request (§3.1)."""
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class FileReport:
    """One file's load event from insertReport or loadHistoryScan."""

    path: str
    status: str
    rows_inserted: int
    rows_parsed: int
    errors_seen: int
    first_error: str | None = None
    first_error_line: int | None = None
    first_error_column: str | None = None
    last_insert_time: str | None = None

    @property
    def loaded(self) -> bool:
        """Fully loaded."""
        return self.status == "LOADED"

    @property
    def finished(self) -> bool:
        """Snowpipe is done with the file (loaded, partly loaded or failed)."""
        return self.status in ("LOADED", "PARTIALLY_LOADED", "LOAD_FAILED")


def report_of(entry: dict[str, Any]) -> FileReport:
    """A `files[]` entry of insertReport/loadHistoryScan."""
    return FileReport(
        path=str(entry.get("path", "")),
        status=str(entry.get("status", "")),
        rows_inserted=int(entry.get("rowsInserted") or 0),
        rows_parsed=int(entry.get("rowsParsed") or 0),
        errors_seen=int(entry.get("errorsSeen") or 0),
        first_error=entry.get("firstError"),
        first_error_line=entry.get("firstErrorLineNum"),
        first_error_column=entry.get("firstErrorColumnName"),
        last_insert_time=entry.get("lastInsertTime"),
    )


def iso(t: datetime) -> str:
    """ISO-8601 UTC with milliseconds, as loadHistoryScan takes it."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _TimedRestful(SnowflakeRestful):  # type: ignore[misc]
    """The SDK's HTTP wrapper with a per-request timeout (it sets none, so a dead peer would hang
    its worker thread forever)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def _exec_request(
        self,
        url: str,
        method: str,
        headers: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> requests.Response:
        return requests.request(
            method=method, url=url, headers=headers, json=json, timeout=self.timeout_s
        )


class PipeIngestClient:
    """One pipe's classic Snowpipe REST calls, off the event loop."""

    def __init__(
        self,
        *,
        url: str,
        account: str,
        user: str,
        pipe: str,
        private_key: RSAPrivateKey,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme or "https"
        port = parts.port or (443 if scheme == "https" else 80)
        # The SDK wants unencrypted PKCS#8 PEM text; it stays in memory and is never logged.
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.pipe = pipe
        self._manager = SimpleIngestManager(
            account=account, user=user, pipe=pipe, private_key=pem,
            scheme=scheme, host=parts.hostname, port=port,
        )  # fmt: skip
        self._manager.restful = _TimedRestful(timeout_s)
        self._limiter = anyio.CapacityLimiter(1)

    def __repr__(self) -> str:
        return f"<PipeIngestClient {self.pipe}>"

    async def ingest_files(self, files: list[tuple[str, int | None]]) -> None:
        """insertFiles, in calls of at most 5,000 files; 200 means queued, not loaded."""
        for start in range(0, len(files), MAX_FILES_PER_CALL):
            chunk = [StagedFile(p, s) for p, s in files[start : start + MAX_FILES_PER_CALL]]
            body = await self._call(functools.partial(self._manager.ingest_files, chunk))
            code = str(body.get("responseCode") or body.get("status") or "").upper()
            if code != "SUCCESS":
                raise RetryableError(f"insertFiles on pipe {self.pipe} answered {body!r}")

    async def insert_report(self) -> tuple[list[FileReport], bool]:
        """Load events since the last call (insertReport with the kept beginMark), and whether
        the result is complete (events may have been missed otherwise)."""
        body = await self._call(self._manager.get_history)
        files = [report_of(f) for f in body.get("files") or []]
        return files, bool(body.get("completeResult", True))

    async def load_history_scan(
        self, start: datetime, end: datetime | None = None
    ) -> list[FileReport]:
        """Load events in [start, end) (loadHistoryScan), following `rangeEndTime` while the
        result is incomplete."""
        out: list[FileReport] = []
        start_text = iso(start)
        end_text = iso(end) if end is not None else None
        for _ in range(100):  # 100 × 10,000 events is beyond any window we ask for
            body = await self._call(
                functools.partial(self._manager.get_history_range, start_text, end_text)
            )
            out += [report_of(f) for f in body.get("files") or []]
            if body.get("completeResult", True) or not body.get("rangeEndTime"):
                break
            start_text = str(body["rangeEndTime"])
        return out

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await anyio.to_thread.run_sync(fn, limiter=self._limiter)
        except IngestResponseError as err:
            raise _mapped(err, self.pipe) from None
        except IngestClientError as err:
            raise AuthError(
                f"snowflake-ingest refused the private key for pipe {self.pipe} "
                f"({err.message}); check target.private_key"
            ) from None
        except requests.RequestException as err:
            raise RetryableError(
                f"Snowpipe REST call for pipe {self.pipe} failed: {type(err).__name__}"
            ) from None


def _mapped(err: IngestResponseError, pipe: str) -> Exception:
    status = int(err.http_error_code)
    code = str(getattr(err, "code", "") or "") or None
    text = f"Snowpipe REST for pipe {pipe}: {err.message}"
    if status == 429 or status == 408 or status >= 500:
        return RetryableError(text, status=status, code=code)
    if status in (401, 403):
        return AuthError(
            f"{text}; check target.user, target.private_key and the public key on the user",
            status=status,
            code=code,
        )
    if status == 404:
        return ObjectNotFound(
            f"{text}; create the pipe (names are case-sensitive: DB.SCHEMA.PIPE) and grant "
            "OPERATE and MONITOR on it",
            status=status,
            code=code,
        )
    return FatalError(text, status=status, code=code)
