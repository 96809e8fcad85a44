"""Config of files mode (classic Snowpipe): file limits, confirmation timing, the stage and the pipes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from streamd.config.base import FrozenModel


class StageConfig(FrozenModel):
    """Where files are put for the pipes to read."""

    kind: Literal["internal", "s3"] = "internal"
    """`internal`: a named internal stage (written by PUT, or straight into `directory`);
    `s3`: an external stage on S3 (PutObject under `s3_bucket`/`s3_prefix`)."""
    name: str = Field(default="STREAMD_FILES", pattern=r"^[A-Za-z_][A-Za-z0-9_$.]*$")
    """The stage's name: unqualified means one stage per table's DATABASE.SCHEMA."""
    directory: Path | None = None
    """For a stand-in on this machine: its stage directory root (`<data dir>/stages`), written
    directly instead of PUT. Set automatically for the embedded stand-in (target.kind = "local")."""
    s3_bucket: str | None = None
    """Bucket of the external stage (kind = "s3")."""
    s3_prefix: str = ""
    """Key prefix of the external stage's URL inside the bucket."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint (unset: AWS); credentials come from the usual AWS environment."""
    s3_region: str | None = None
    """AWS region of the bucket."""


class FilesConfig(FrozenModel):
    """Files mode: tables with `mode = "files"` are delivered as gzip NDJSON files through classic
    Snowpipe (stage, insertFiles, insertReport/loadHistoryScan) instead of streaming channels."""

    max_file_rows: int = Field(default=100_000, ge=1)
    """Rows per file at most."""
    max_file_bytes: int = Field(default=64_000_000, ge=1024)
    """Uncompressed NDJSON bytes per file at most (Snowflake suggests 100–250 MB compressed)."""
    max_file_age_s: float = Field(default=60, ge=0)
    """How long the first row of a file may wait for company before the file is cut."""
    max_inflight_files: int = Field(default=16, ge=1)
    """Files uploaded but not yet confirmed, per table lane, before rows wait."""
    report_poll_s: float = Field(default=5, gt=0)
    """How often insertReport is read while files are unconfirmed."""
    scan_after_s: float = Field(default=120, gt=0)
    """A file insertReport has not reported by then is looked up with loadHistoryScan."""
    resubmit_after_s: float = Field(default=600, gt=0)
    """A file neither reported nor found in the load history by then is submitted again
    (Snowpipe skips it if it was loaded meanwhile: file names are deterministic)."""
    pipe_suffix: str = Field(default="_STREAMD_FILES", pattern=r"^[A-Za-z0-9_$]*$")
    """Each files-mode table T loads through pipe `DB.SCHEMA.T<suffix>`."""
    create_objects: bool = True
    """At start-up, create the internal stage and each table's pipe if missing
    (CREATE … IF NOT EXISTS through the SQL API; an S3 stage must exist already)."""
    stage: StageConfig = StageConfig()
    """The stage files are written to."""


def pipe_name(table: str, config: FilesConfig) -> str:
    """`DB.SCHEMA.T<suffix>`, the pipe of a files-mode table."""
    return f"{table}{config.pipe_suffix}"


def stage_name(table: str, config: FilesConfig) -> str:
    """The stage's `DB.SCHEMA.STAGE` for a table."""
    if config.stage.name.count(".") == 2:
        return config.stage.name.upper()
    database, schema, _ = table.split(".")
    return f"{database}.{schema}.{config.stage.name.upper()}"


def pipe_ddl(table: str, config: FilesConfig) -> str:
    """CREATE PIPE for a table: JSON keys map onto columns by name; Snowpipe's default
    ON_ERROR = SKIP_FILE, so a file loads whole or not at all and failures are exact."""
    return (
        f"CREATE PIPE IF NOT EXISTS {pipe_name(table, config)} AUTO_INGEST = FALSE AS "
        f"COPY INTO {table} FROM @{stage_name(table, config)} "
        "FILE_FORMAT = (TYPE = JSON) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
    )
