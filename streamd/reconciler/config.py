"""The `[reconciler]` config section: schedule, thresholds, what to watch, and remediation switches."""

from __future__ import annotations

from pydantic import Field

from streamd.config.base import FrozenModel

_FQ_NAME = r"^[^.\s]+\.[^.\s]+\.[^.\s]+$"


class Thresholds(FrozenModel):
    """When a measured lag or age becomes a finding (warning at the limit, critical past
    `critical_factor` times it)."""

    critical_factor: float = Field(default=3.0, ge=1)
    """A lag or age this many times its warning limit is critical instead of a warning."""
    channel_lag_s: float = Field(default=60, gt=0)
    """Age of a channel's oldest uncommitted row that is worth a warning."""
    channel_lag_rows: int = Field(default=100_000, ge=1)
    """Spooled rows of one lane not yet committed that are worth a warning."""
    channel_error_window_s: float = Field(default=900, gt=0)
    """A channel whose Snowflake error count grew within this window has a warning."""
    stream_stale_warning_s: float = Field(default=86_400, gt=0)
    """A stream whose STALE_AFTER is this close has a warning (critical once it is stale)."""
    task_late_factor: float = Field(default=2.0, ge=1)
    """A started task with no successful (or skipped) run for this many schedule intervals is late."""
    dynamic_table_lag_factor: float = Field(default=1.5, ge=1)
    """A dynamic table whose data is older than this many times its TARGET_LAG is behind."""
    pipe_pending_files: int = Field(default=100, ge=1)
    """A classic pipe with more pending files than this has a warning."""
    load_history_window_s: float = Field(default=3600, gt=0)
    """How far back COPY_HISTORY is read for failed or partial loads."""


class FreshnessTarget(FrozenModel):
    """One end-to-end freshness: events a source writes to `table` should be visible in `final`."""

    source: str
    """Name of the source (its `[[sources]]` name) this freshness belongs to."""
    table: str = Field(pattern=_FQ_NAME)
    """The landing table streamd writes (DB.SCHEMA.TABLE); its produced rows mark new events."""
    final: str = Field(pattern=_FQ_NAME)
    """The object at the end of the pipeline (table, dynamic table, view), DB.SCHEMA.NAME."""
    column: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$]*$")
    """Event-time column of `final` (TIMESTAMP_NTZ values are read as UTC)."""
    target_s: float = Field(default=300, gt=0)
    """Freshness worse than this is a warning (critical past thresholds.critical_factor times it)."""


class ExportWatch(FrozenModel):
    """A Parquet export location (COPY INTO @stage) whose newest file should stay young."""

    stage: str = Field(pattern=r"^@\S+$")
    """Stage location as LIST takes it, e.g. `@DB.SCHEMA.STAGE/cdc/orders/`."""
    max_age_s: float = Field(default=900, gt=0)
    """Newest file older than this is a warning (critical past thresholds.critical_factor times it)."""
    stream: str | None = Field(default=None, pattern=_FQ_NAME)
    """The stream the export reads (DB.SCHEMA.STREAM); when set, an old export is reported only
    while that stream has changes waiting (no changes means no new file is due)."""


class IcebergWatch(FrozenModel):
    """An Iceberg table whose newest snapshot should stay young."""

    table: str = Field(pattern=_FQ_NAME)
    """The Iceberg table, DB.SCHEMA.TABLE."""
    max_age_s: float = Field(default=900, gt=0)
    """Newest snapshot older than this is a warning (critical past thresholds.critical_factor times it)."""


class PipeWatch(FrozenModel):
    """A classic Snowpipe whose status and load history are checked."""

    pipe: str = Field(pattern=_FQ_NAME)
    """The pipe, DB.SCHEMA.PIPE (read with SYSTEM$PIPE_STATUS)."""
    table: str | None = Field(default=None, pattern=_FQ_NAME)
    """The table it loads, DB.SCHEMA.TABLE; when set, COPY_HISTORY failures are reported too."""


class Remediation(FrozenModel):
    """What the reconciler may fix by itself; everything is off by default."""

    resume_suspended_tasks: bool = False
    """Run `ALTER TASK … RESUME` on a task found suspended (whatever suspended it)."""
    execute_tasks_near_staleness: bool = False
    """Run `EXECUTE TASK` on the tasks that read a stream close to its STALE_AFTER."""


class ReconcilerConfig(FrozenModel):
    """The reconciler: watches the pipelines behind streamd's tables and reports findings."""

    enabled: bool = True
    """Run the reconciler inside the daemon."""
    interval_s: float = Field(default=60, ge=1)
    """Seconds between the starts of two cycles."""
    cycle_timeout_s: float = Field(default=30, gt=0)
    """A cycle still running after this is cut short; unfinished checks keep their last findings."""
    query_timeout_s: int = Field(default=20, ge=1)
    """Server-side `timeout` of each SQL API statement the checks send."""
    warehouse: str | None = None
    """Warehouse for the INFORMATION_SCHEMA and MAX() queries (SHOW needs none); the user's
    default warehouse when unset."""
    databases: list[str] | None = None
    """Databases whose streams, tasks and dynamic tables are watched; unset means the databases of
    the tables streamd writes, [] means none."""
    ignore: list[str] = Field(default_factory=list)
    """Objects never reported, as DB.SCHEMA.NAME patterns (`*` and `?` wildcards)."""
    thresholds: Thresholds = Thresholds()
    """Limits that turn a lag or age into a finding."""
    freshness: list[FreshnessTarget] = Field(default_factory=list)
    """End-to-end freshness per source, e.g. { source = "manufacturing", table =
    "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW", final = "MANUFACTURING_DEMO.ANALYTICS.FACT_SENSOR",
    column = "EVENT_TIMESTAMP", target_s = 300 }."""
    exports: list[ExportWatch] = Field(default_factory=list)
    """Parquet export locations, e.g. { stage = "@RETAIL_DEMO.CDC.EXPORTS/customers/", max_age_s =
    900, stream = "RETAIL_DEMO.CDC.CUSTOMERS_EXPORT_STREAM" }."""
    iceberg: list[IcebergWatch] = Field(default_factory=list)
    """Iceberg tables, e.g. { table = "RETAIL_DEMO.CDC.CUSTOMERS_ICEBERG", max_age_s = 900 }."""
    pipes: list[PipeWatch] = Field(default_factory=list)
    """Classic pipes, e.g. { pipe = "DB.SCHEMA.ORDERS_PIPE", table = "DB.SCHEMA.ORDERS" }."""
    remediation: Remediation = Remediation()
    """Automatic fixes (off by default)."""
