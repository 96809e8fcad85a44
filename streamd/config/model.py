"""The root config model and `load()`: one TOML file, validated at load, errors that name key and line."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from streamd.config.lines import key_lines, locate
from streamd.config.secrets import resolve_secret
from streamd.errors import ConfigError
from streamd.pipeline.validation import TableRules
from streamd.reconciler.config import ReconcilerConfig
from streamd.sinks.files.config import FilesConfig
from streamd.sources.http_push.source import HttpPushSourceConfig
from streamd.sources.mqtt.source import MqttSourceConfig
from streamd.sources.ndjson.source import NdjsonSourceConfig
from streamd.sources.synthetic.manufacturing import ManufacturingSourceConfig
from streamd.sources.synthetic.retail import RetailSourceConfig
from streamd.spool import SpoolConfig

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

MAX_REQUEST_BYTES = 4_000_000
"""Uncompressed NDJSON bytes per append; Snowflake allows 4 MB on the wire after compression (§2.2)."""


class StandinConfig(BaseModel):
    """The embedded local stand-in, started in-process for `target.kind = "local"`."""

    model_config = _MODEL

    host: str = "127.0.0.1"
    """Loopback address the stand-in listens on."""
    port: int = Field(default=0, ge=0, le=65535)
    """TCP port; 0 lets the OS pick a free one."""
    commit_delay_ms: float = Field(default=1000, ge=0)
    """How long after an append the stand-in commits it (Snowflake commits asynchronously too)."""
    task_minute_s: float = Field(default=60.0, gt=0)
    """Seconds a minute of a task SCHEDULE or dynamic-table TARGET_LAG lasts in the stand-in; a
    demo can set 1 to see the `sql/` pipelines run every second."""


class TargetConfig(BaseModel):
    """Where rows go: the embedded stand-in (`local`) or a real Snowflake account (`snowflake`)."""

    model_config = _MODEL

    kind: Literal["local", "snowflake"] = "local"
    """`local` runs the embedded stand-in on loopback; `snowflake` talks to a real account."""
    account: str = "LOCAL"
    """Account identifier, preferably ORGNAME-ACCOUNTNAME (used in the JWT and the default URL)."""
    user: str = "STREAMD"
    """Snowflake user that owns the key pair."""
    role: str | None = None
    """Role for SQL API calls; the user's default role when unset."""
    url: str | None = None
    """Control-host URL; defaults to https://<account>.snowflakecomputing.com for `snowflake`."""
    private_key: SecretStr | None = None
    """PKCS#8 PEM private key: `file:/path/rsa_key.p8`, `env:NAME`, or the PEM text itself."""
    private_key_passphrase: SecretStr | None = None
    """Passphrase of an encrypted private key: `env:NAME` or `file:/path`."""
    standin: StandinConfig = StandinConfig()
    """Settings of the embedded stand-in (used only when kind = "local")."""

    @field_validator("private_key", "private_key_passphrase", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            if info.field_name == "private_key" and value.startswith("file:"):
                # Imported here: keeps cryptography out of plain config loading.
                from streamd.cli.keygen import check_private_key_file

                try:
                    check_private_key_file(Path(value[5:]).expanduser())
                except ConfigError as exc:
                    raise ValueError(str(exc)) from None
            return resolve_secret(value, key=f"target.{info.field_name}")
        return value

    def control_url(self) -> str:
        """The control host URL for a real account."""
        if self.url:
            return self.url.rstrip("/")
        return f"https://{self.account.lower().replace('_', '-')}.snowflakecomputing.com"


class DeliveryConfig(BaseModel):
    """Batching, channels and the shutdown drain."""

    model_config = _MODEL

    channel_prefix: str = Field(default="streamd", pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    """This daemon's identity: channels are named `<prefix>_<TABLE>`; two daemons must differ."""
    channels_per_table: int = Field(default=1, ge=1, le=64)
    """Channels (and lanes) per table; rows of one producer always share a channel, so stay in
    order. Raise it when one channel's 10 requests/s or 20 MB/s is not enough."""
    lane_capacity: int = Field(default=10_000, ge=1)
    """Rows a table lane holds before sources wait (backpressure)."""
    max_rows: int = Field(default=10_000, ge=1)
    """Rows per append request at most."""
    max_bytes: int = Field(default=MAX_REQUEST_BYTES, ge=1024, le=MAX_REQUEST_BYTES)
    """Uncompressed NDJSON bytes per append at most (≤ 4,000,000 keeps the request under 4 MB)."""
    linger_ms: float = Field(default=200, ge=0)
    """How long the first row of a batch may wait for company before the batch is sent."""
    max_inflight_batches: int = Field(default=16, ge=1)
    """Batches appended but not yet committed, per channel, before the writer waits."""
    status_poll_ms: float = Field(default=25, ge=10)
    """Commit progress is read (one Bulk Channel Status call per pipe) from 3/4 of Snowflake's
    reported processing latency after each append, then again this often while the commit is
    not there yet (a tenth of that latency if longer); never two reads closer than this."""
    status_poll_max_ms: float = Field(default=2000, ge=10)
    """Once a commit is more than eight of Snowflake's latencies late, the wait between reads grows
    (a fifth of the further delay) up to this; rows in flight are looked for at least this often."""
    idle_status_interval_s: float = Field(default=60, gt=0)
    """How often idle channels are checked, so an expired or dropped channel is reopened early."""
    pace_requests_per_s: float = Field(default=10, gt=0)
    """Appends per second per channel at most (Snowflake's soft limit is 10)."""
    pace_bytes_per_s: float = Field(default=20_000_000, gt=0)
    """Uncompressed bytes per second per channel at most (Snowflake's soft limit is 20 MB/s)."""
    compression: Literal["zstd", "gzip", "none"] = "zstd"
    """Content-Encoding of append bodies."""
    request_timeout_s: float = Field(default=30, gt=0)
    """Per-request HTTP timeout."""
    startup_timeout_s: float = Field(default=60, gt=0)
    """How long to keep trying to open the channels at start-up before giving up with an error."""
    drain_timeout_s: float = Field(default=30, gt=0)
    """On shutdown, how long to wait for in-flight rows to commit."""


class AdminConfig(BaseModel):
    """The admin HTTP endpoint that `streamd inspect` talks to."""

    model_config = _MODEL

    enabled: bool = True
    """Serve /status, /healthz and /metrics."""
    host: str = "127.0.0.1"
    """Listen address; keep it on loopback unless a proxy guards it."""
    port: int = Field(default=8765, ge=0, le=65535)
    """TCP port (0 picks a free one and writes it to <state_dir>/admin.url)."""


class LogConfig(BaseModel):
    """Log output."""

    model_config = _MODEL

    format: Literal["auto", "json", "console"] = "auto"
    """`auto` writes JSON lines unless stdout is a terminal."""
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level written."""


SourceConfig = Annotated[
    ManufacturingSourceConfig
    | RetailSourceConfig
    | HttpPushSourceConfig
    | NdjsonSourceConfig
    | MqttSourceConfig,
    Field(discriminator="kind"),
]


class Config(BaseModel):
    """The whole daemon configuration."""

    model_config = _MODEL

    state_dir: Path = Path(".streamd")
    """Directory for all daemon state: sequences, stand-in data, dead letters, local keys."""
    target: TargetConfig = TargetConfig()
    """Where rows are delivered."""
    delivery: DeliveryConfig = DeliveryConfig()
    """Batching, channels and draining."""
    spool: SpoolConfig = SpoolConfig()
    """The durable local spool every row passes through (one per lane, under state_dir/spool)."""
    spool_total_max_bytes: int | None = Field(default=None, ge=1)
    """Disk all lanes' spools may use together, shared evenly (each lane also stays within
    spool.max_bytes); unset means only the per-lane limit applies."""
    admin: AdminConfig = AdminConfig()
    """Admin endpoint for `streamd inspect`."""
    log: LogConfig = LogConfig()
    """Logging."""
    reconciler: ReconcilerConfig = ReconcilerConfig()
    """Health checks of the Snowflake side (channels, streams, tasks, dynamic tables, exports,
    pipes, end-to-end freshness), run inside the daemon."""
    sources: list[SourceConfig] = Field(default_factory=list)
    """Producers; each `[[sources]]` table has a `kind`."""
    files: FilesConfig = FilesConfig()
    """Files mode (classic Snowpipe) for tables with `mode = "files"`: file limits, stage, pipes."""
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """The event loop `streamd run` uses: "auto" takes uvloop when installed (it comes with
    uvicorn[standard]) and asyncio's own loop otherwise."""
    tables: dict[str, TableRules] = Field(default_factory=dict)
    """Row rules per fully qualified table, e.g. [tables."DB.SCHEMA.T".columns.TEMPERATURE] with
    type, required, min, max, allowed; rows that break them go to the dead-letter file."""

    @field_validator("sources")
    @classmethod
    def _unique_names(
        cls, value: list[ManufacturingSourceConfig]
    ) -> list[ManufacturingSourceConfig]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; rename {', '.join(dupes)}")
        seen: dict[tuple[str, str], str] = {}
        for source in value:
            if not isinstance(source, ManufacturingSourceConfig | RetailSourceConfig):
                continue
            for table in source.tables():
                other = seen.setdefault((table, source.id_prefix), source.name)
                if other != source.name:
                    raise ValueError(
                        f"sources {other} and {source.name} would write the same EVENT_IDs to "
                        f"{table}; give one of them a different id_prefix"
                    )
        return value

    @model_validator(mode="after")
    def _spool_share_fits(self) -> Config:
        if self.spool_total_max_bytes is not None:
            lanes = max(1, len(self.target_tables()) * self.delivery.channels_per_table)
            share = self.spool_total_max_bytes // lanes
            if share < self.spool.segment_bytes:
                raise ValueError(
                    f"spool_total_max_bytes gives each of {lanes} lanes {share} bytes, less than one "
                    f"segment (spool.segment_bytes = {self.spool.segment_bytes}); raise it or lower "
                    "spool.segment_bytes"
                )
        return self

    @model_validator(mode="after")
    def _freshness_sources_exist(self) -> Config:
        names = {s.name for s in self.sources}
        for target in self.reconciler.freshness:
            if names and target.source not in names:
                raise ValueError(
                    f"reconciler.freshness: source {target.source!r} is not one of the "
                    f"[[sources]] ({', '.join(sorted(names))}); fix its name"
                )
        return self

    def files_tables(self) -> list[str]:
        """Tables delivered as files through classic Snowpipe (`mode = "files"`)."""
        return [t for t, rules in self.tables.items() if rules.mode == "files"]

    def target_tables(self) -> list[str]:
        """Every fully qualified table some source writes, in a stable order."""
        seen: dict[str, None] = {}
        for source in self.sources:
            for table in source.tables():
                seen.setdefault(table, None)
        return list(seen)


def sql_dirs() -> tuple[Path, ...]:
    """Every domain folder of the shipped `sql/`, in order (what the stand-in loads at start)."""
    return tuple(sorted(p for p in embedded_path("sql").iterdir() if p.is_dir()))


def embedded_path(name: str) -> Path:
    """A file shipped with streamd (`local.toml`, `sql/...`), from the wheel or the source tree."""
    packaged = resources.files("streamd").joinpath("_embedded", name)
    if packaged.is_file() or packaged.is_dir():
        return Path(str(packaged))
    tree = Path(__file__).resolve().parents[2]
    return tree / ("config" if name == "local.toml" else "") / name


def parse(text: str, *, path: str) -> Config:
    """Validate TOML text; every problem becomes one `PATH:LINE: key: message` line in ConfigError."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's tomllib puts the position only in the message text.
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(found.group(1)) if found else 1
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"{path}:{line}: invalid TOML: {reason}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = key_lines(text)
        located = []
        for err in exc.errors(include_url=False):
            dotted, line = locate(err["loc"], lines)
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown key; remove it or check its spelling"
            located.append((line, f"{path}:{line}: {dotted}: {message}"))
        problems = [text for _, text in sorted(located, key=lambda item: item[0])]
        raise ConfigError(problems[0], problems) from None


def load(path: Path | None) -> Config:
    """Load `path`, or the embedded default (local stand-in, synthetic manufacturing) when None."""
    source = path if path is not None else embedded_path("local.toml")
    try:
        text = source.read_text()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}; check --config") from None
    return parse(text, path=str(source))
