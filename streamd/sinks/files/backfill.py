"""`streamd backfill --table T PATH...`: load existing NDJSON / JSON-array files (optionally .gz)
through files mode (stage, insertFiles, load history), with progress lines.

Each input is cut into gzip NDJSON files of at most `files.max_file_rows` rows / `max_file_bytes`
bytes, named from the input's content hash and the chunk number
(`backfill/<TABLE>/<input stem>-<sha256[:16]>/<n>.ndjson.gz`). A re-run therefore makes the same
names, Snowpipe skips what it already loaded, and the load history confirms it: re-runs are
idempotent. NDJSON lines are passed through unparsed (Snowpipe reports bad lines per file);
JSON arrays are split into one line per element.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio
import orjson

from streamd.clock import Clock, SystemClock
from streamd.config.model import Config
from streamd.errors import ConfigError, RetryableError, SourceError
from streamd.sinks.files.config import FilesConfig, pipe_name
from streamd.sinks.files.confirm import ConfirmPolicy, FileConfirmer
from streamd.sinks.files.setup import create_objects, effective_files, make_uploader
from streamd.sinks.files.writer import gzip_file
from streamd.sinks.retry import retrying
from streamd.snowflake.auth import KeyPairAuth, load_private_key
from streamd.snowflake.http import target_client
from streamd.snowflake.pipe_ingest import FileReport, PipeIngestClient
from streamd.snowflake.sql_api import SqlApiClient
from streamd.snowflake.stage_upload import StageUploader

HISTORY_S = 14 * 86_400.0
"""Snowpipe's load-history retention: how far back a re-run looks for earlier loads."""
SCAN_AFTER_S = 5.0
"""Unreported files are looked up in the load history this soon (a re-run's files never get a
new insertReport event: Snowpipe skips them)."""
MAX_UNCONFIRMED = 64
"""Files uploaded and not yet confirmed before reading more input (bounded memory and stage)."""


@dataclass
class BackfillSummary:
    """What a backfill did."""

    files: int = 0
    rows_sent: int = 0
    rows_loaded: int = 0
    failed: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        """Loaded rows per second of wall time."""
        return self.rows_loaded / self.seconds if self.seconds > 0 else 0.0


def chunks(path: Path, max_rows: int, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    """(NDJSON body, rows) pieces of one input file, in order; a damaged gzip is a SourceError."""
    try:
        yield from _chunks(path, max_rows, max_bytes)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise SourceError(
            f"{path}: the gzip data is damaged ({err}); no row after the damage was sent; "
            "repair or re-create the file and run backfill again (what loaded is skipped)"
        ) from None


def _chunks(path: Path, max_rows: int, max_bytes: int) -> Iterator[tuple[bytes, int]]:
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as f:
        head = f.read(4096)
        first = head.lstrip()[:1]
        rest = f.read() if first == b"[" else None
        if rest is not None:
            lines: Iterator[bytes] = (orjson.dumps(v) for v in _array(head + rest, path))
        else:
            lines = _lines(head, f)
        body: list[bytes] = []
        size = 0
        for line in lines:
            if body and (len(body) >= max_rows or size + len(line) + 1 > max_bytes):
                yield b"\n".join([*body, b""]), len(body)
                body, size = [], 0
            body.append(line)
            size += len(line) + 1
        if body:
            yield b"\n".join([*body, b""]), len(body)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _array(data: bytes, path: Path) -> list[object]:
    try:
        values = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise ConfigError(f"{path}: not a JSON array or NDJSON ({err}); fix the file") from None
    return values if isinstance(values, list) else [values]


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def _lines(head: bytes, f: _Readable) -> Iterator[bytes]:
    pending = b""
    block = head
    while block:
        *complete, pending = (pending + block).split(b"\n")
        yield from (line.rstrip(b"\r") for line in complete if line.strip())
        block = f.read(1 << 20)
    if pending.strip():
        yield pending.rstrip(b"\r")


def digest(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256 (names follow content, not file times)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


async def run_backfill(
    config: Config,
    table: str,
    paths: list[Path],
    *,
    url: str,
    pem: bytes,
    passphrase: bytes | None,
    echo: Callable[[str], None],
    clock: Clock | None = None,
) -> BackfillSummary:
    """Backfill `paths` into `table` on the target at `url`."""
    clock = clock or SystemClock()
    files = effective_files(config)
    key = load_private_key(pem, passphrase, source="target.private_key")
    target = config.target
    if files.create_objects:
        async with target_client(
            ca_file=config.target.ca_file, proxy=config.target.proxy_url(), timeout=60
        ) as http:
            sql = SqlApiClient(
                http, KeyPairAuth(key, target.account, target.user, clock, target.role), url, clock
            )
            await create_objects(sql, files, [table], clock)
    client = PipeIngestClient(
        url=url,
        account=target.account,
        user=target.user,
        pipe=pipe_name(table, files),
        private_key=key,
    )
    uploader = make_uploader(
        files, table, account=target.account, user=target.user, key=key, role=target.role
    )

    def on_retry(exc: RetryableError, attempt: int) -> None:
        echo(f"retrying after {exc.code or exc.status} (attempt {attempt})")

    confirmer = FileConfirmer(
        client,
        clock,
        ConfirmPolicy(
            min(files.report_poll_s, 1.0),
            min(files.scan_after_s, SCAN_AFTER_S),
            files.resubmit_after_s,
        ),
        on_retry=on_retry,
        on_resubmit=lambda p: echo(f"resubmitting {p}"),
    )
    run = _Run(table, files, uploader, confirmer, clock, echo)
    async with anyio.create_task_group() as tg:
        tg.start_soon(confirmer.run)
        async with anyio.create_task_group() as waits:
            for path in paths:
                await run.send_input(path, waits)
        tg.cancel_scope.cancel()
    run.summary.seconds = time.monotonic() - run.started
    return run.summary


class _Run:
    """One backfill: cuts inputs into files, uploads and submits them, reports confirmations."""

    def __init__(
        self,
        table: str,
        files: FilesConfig,
        uploader: StageUploader,
        confirmer: FileConfirmer,
        clock: Clock,
        echo: Callable[[str], None],
    ) -> None:
        self.table = table
        self.files = files
        self.uploader = uploader
        self.confirmer = confirmer
        self.clock = clock
        self.echo = echo
        self.summary = BackfillSummary()
        self.started = time.monotonic()
        self.window = anyio.Semaphore(MAX_UNCONFIRMED)

    async def send_input(self, path: Path, waits: anyio.abc.TaskGroup) -> None:
        """Cut one input into files; upload and submit each; its confirmation runs in `waits`."""
        name = self.table.rsplit(".", 1)[-1]
        stem = path.name.split(".")[0] or "input"
        base = f"backfill/{name}/{stem}-{await anyio.to_thread.run_sync(digest, path)}"
        pieces = chunks(path, self.files.max_file_rows, self.files.max_file_bytes)
        n = 0
        while (piece := await anyio.to_thread.run_sync(next, pieces, None)) is not None:
            body, rows = piece
            n += 1
            data = await anyio.to_thread.run_sync(gzip_file, body)
            stage_path = f"{base}/{n:06d}.ndjson.gz"
            await self.window.acquire()
            upload = functools.partial(self.uploader.upload, stage_path, data)
            await retrying(upload, self.clock, self._on_retry)
            # A re-run's files may have loaded days ago: search the whole 14-day load history.
            await self.confirmer.submit([(stage_path, len(data), time.time() - HISTORY_S)])
            self.summary.files += 1
            self.summary.rows_sent += rows
            waits.start_soon(self._confirm, stage_path, rows)
        self.echo(f"{path}: {n} files, all submitted")

    def _on_retry(self, exc: RetryableError, attempt: int) -> None:
        self.echo(f"upload retried after {exc.code or exc.status} (attempt {attempt})")

    async def _confirm(self, stage_path: str, rows: int) -> None:
        try:
            report = await self.confirmer.wait(stage_path)
        finally:
            self.window.release()
        summary = self.summary
        summary.rows_loaded += report.rows_inserted
        elapsed = max(time.monotonic() - self.started, 1e-9)
        if report.loaded:
            self.echo(
                f"loaded {stage_path} ({report.rows_inserted} rows); {summary.rows_loaded} rows "
                f"so far, {summary.rows_loaded / elapsed:,.0f} rows/s"
            )
        else:
            summary.failed.append(report)
            self.echo(
                f"FAILED {stage_path}: {report.status}, {report.rows_inserted} of {rows} rows "
                f"loaded; first error at line {report.first_error_line}: {report.first_error}"
            )


async def backfill(
    config: Config, table: str, paths: list[Path], echo: Callable[[str], None]
) -> BackfillSummary:
    """Resolve the target (a running daemon's stand-in, a fresh embedded one, or the account)
    and backfill."""
    if table.count(".") != 2:
        raise ConfigError(f"--table {table}: name it as DATABASE.SCHEMA.TABLE")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}; check the paths")
    table = table.upper()
    if config.target.kind == "local":
        from streamd.cli.target import local_target
        from streamd.snowflake.keys import local_key_pair

        private_pem, _ = local_key_pair(Path(config.state_dir) / "local")
        async with local_target(config, "streamd backfill on the local target") as url:
            return await run_backfill(
                config, table, paths, url=url, pem=private_pem, passphrase=None, echo=echo
            )
    if config.target.private_key is None:
        raise ConfigError('target.private_key: required for kind = "snowflake"')
    pw = config.target.private_key_passphrase
    return await run_backfill(
        config,
        table,
        paths,
        url=config.target.control_url(),
        pem=config.target.private_key.get_secret_value().encode(),
        passphrase=pw.get_secret_value().encode() if pw else None,
        echo=echo,
    )
