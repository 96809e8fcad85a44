"""The root config model and `load()`: one TOML file, validated at load, errors that name key and line."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from streamd.config.base import FrozenModel
from streamd.config.lines import key_lines, locate
from streamd.config.sections import AdminConfig, DeliveryConfig, LogConfig, TargetConfig
from streamd.config.tables import TableRules
from streamd.errors import ConfigError
from streamd.reconciler.config import ReconcilerConfig
from streamd.sinks.files.config import FilesConfig
from streamd.sources.http_push.source import HttpPushSourceConfig
from streamd.sources.mqtt.source import MqttSourceConfig
from streamd.sources.ndjson.config import NdjsonSourceConfig
from streamd.sources.synthetic.config import SyntheticTablesConfig
from streamd.sources.synthetic.manufacturing import ManufacturingSourceConfig
from streamd.sources.synthetic.retail import RetailSourceConfig
from streamd.spool import SpoolConfig

SourceConfig = Annotated[
    ManufacturingSourceConfig
    | RetailSourceConfig
    | HttpPushSourceConfig
    | NdjsonSourceConfig
    | MqttSourceConfig,
    Field(discriminator="kind"),
]


class Config(FrozenModel):
    """The whole daemon configuration."""

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
    def _unique_names(cls, value: list[SourceConfig]) -> list[SourceConfig]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; rename {', '.join(dupes)}")
        seen: dict[tuple[str, str], str] = {}
        for source in value:
            if not isinstance(source, SyntheticTablesConfig):
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
