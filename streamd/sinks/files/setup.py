"""Opening files mode from config: stage uploader, pipes (created if asked), one writer per lane."""

from __future__ import annotations

import functools
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.clock import Clock
from streamd.config.model import Config
from streamd.errors import ConfigError, RetryableError, SqlError
from streamd.logs import get_logger
from streamd.metrics import Metrics
from streamd.pipeline.dead_letters import DeadLetters
from streamd.pipeline.lanes import Lane
from streamd.sinks.base import BatchSource, Sink
from streamd.sinks.files.config import FilesConfig, pipe_ddl, pipe_name, stage_name
from streamd.sinks.files.confirm import ConfirmPolicy, FileConfirmer
from streamd.sinks.files.manifest import Manifest
from streamd.sinks.files.writer import FileWriter
from streamd.sinks.retry import retrying
from streamd.snowflake.pipe_ingest import PipeIngestClient
from streamd.snowflake.sql_api import SqlApiClient
from streamd.snowflake.stage_upload import InternalStage, LocalDirStage, S3Stage, StageUploader


def effective_files(config: Config) -> FilesConfig:
    """`config.files`, with the embedded stand-in's stage directory filled in for local targets."""
    files = config.files
    if (
        config.target.kind == "local"
        and files.stage.kind == "internal"
        and not files.stage.directory
    ):
        directory = Path(config.state_dir) / "standin" / "stages"
        files = files.model_copy(
            update={"stage": files.stage.model_copy(update={"directory": directory})}
        )
    return files


def make_uploader(
    files: FilesConfig,
    table: str,
    *,
    account: str,
    user: str,
    key: RSAPrivateKey,
    role: str | None = None,
) -> StageUploader:
    """The uploader for a table's stage, as configured."""
    stage = files.stage
    if stage.kind == "s3":
        if not stage.s3_bucket:
            raise ConfigError('files.stage.s3_bucket: required for kind = "s3"; name the bucket')
        import boto3

        client = boto3.client("s3", endpoint_url=stage.s3_endpoint_url, region_name=stage.s3_region)
        return S3Stage(client, stage.s3_bucket, stage.s3_prefix)
    qualified = stage_name(table, files)
    if stage.directory is not None:
        return LocalDirStage(stage.directory.joinpath(*qualified.split(".")))

    def connect() -> Any:
        # Imported on first use: the connector is heavy and only PUT needs it.
        import snowflake.connector

        extra = {"role": role} if role else {}
        return snowflake.connector.connect(account=account, user=user, private_key=key, **extra)

    return InternalStage(qualified, connect)


async def create_objects(
    sql: SqlApiClient, files: FilesConfig, tables: list[str], clock: Clock
) -> None:
    """CREATE STAGE (internal) and CREATE PIPE … IF NOT EXISTS for every files-mode table."""
    log = get_logger()

    def on_retry(exc: RetryableError, attempt: int) -> None:
        log.warning("request_retried", reason=exc.code or str(exc.status), attempt=attempt)

    stages = sorted({stage_name(t, files) for t in tables})
    statements = [f"CREATE STAGE IF NOT EXISTS {s}" for s in stages if files.stage.kind != "s3"]
    statements += [pipe_ddl(t, files) for t in tables]
    for statement in statements:
        try:
            await retrying(functools.partial(sql.execute, statement), clock, on_retry)
        except SqlError as err:
            raise ConfigError(
                f"files mode: `{statement[:80]}…` failed ({err}); create the stage and pipe "
                "yourself and set files.create_objects = false"
            ) from None
        log.info("files_object_ready", statement=statement.split(" AS ")[0])


async def open_files_mode(
    config: Config,
    lanes: Mapping[str, Lane],
    batchers: Mapping[str, BatchSource],
    sql: SqlApiClient,
    *,
    url: str,
    key: RSAPrivateKey,
    clock: Clock,
    metrics: Metrics,
    dead_letters: DeadLetters,
    writers: MutableMapping[str, Sink],
) -> None:
    """Files-mode lanes: their stage and pipes (with `files.create_objects`), then their writers."""
    tables = set(config.files_tables())
    chosen = [lane for lane in lanes.values() if lane.table in tables]
    if not chosen:
        return
    files = effective_files(config)
    if files.create_objects:
        await create_objects(sql, files, sorted(tables), clock)
    await open_file_writers(
        files,
        chosen,
        batchers,
        state_dir=config.state_dir,
        url=url,
        account=config.target.account,
        user=config.target.user,
        key=key,
        role=config.target.role,
        clock=clock,
        metrics=metrics,
        dead_letters=dead_letters,
        writers=writers,
    )


async def open_file_writers(
    files: FilesConfig,
    lanes: list[Lane],
    batchers: Mapping[str, BatchSource],
    *,
    state_dir: Path,
    url: str,
    account: str,
    user: str,
    key: RSAPrivateKey,
    role: str | None,
    clock: Clock,
    metrics: Metrics,
    dead_letters: DeadLetters,
    writers: MutableMapping[str, Sink],
) -> None:
    """A FileWriter per files-mode lane (registered in `writers` before it opens)."""
    policy = ConfirmPolicy(files.report_poll_s, files.scan_after_s, files.resubmit_after_s)
    for lane in lanes:
        table = lane.table
        client = PipeIngestClient(
            url=url, account=account, user=user, pipe=pipe_name(table, files), private_key=key
        )
        confirmer = _confirmer(client, clock, policy, metrics, table)
        manifest = await Manifest.open(state_dir / "files" / lane.name)
        writer = FileWriter(
            table=table,
            shard=lane.shard,
            batches=batchers[lane.name],
            manifest=manifest,
            uploader=make_uploader(files, table, account=account, user=user, key=key, role=role),
            confirmer=confirmer,
            clock=clock,
            metrics=metrics,
            dead_letters=dead_letters,
            max_inflight_files=files.max_inflight_files,
        )
        writers[lane.name] = writer
        await writer.open()


def _confirmer(
    client: PipeIngestClient, clock: Clock, policy: ConfirmPolicy, metrics: Metrics, table: str
) -> FileConfirmer:
    log = get_logger(table=table)

    def on_retry(exc: RetryableError, attempt: int) -> None:
        metrics.retries.labels(table, exc.code or str(exc.status)).inc()
        log.warning("request_retried", reason=exc.code or str(exc.status), attempt=attempt)

    def on_resubmit(path: str) -> None:
        metrics.files.labels(table, "resubmitted").inc()
        log.warning("file_resubmitted", file=path)

    return FileConfirmer(client, clock, policy, on_retry=on_retry, on_resubmit=on_resubmit)
