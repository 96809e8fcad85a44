"""What the daemon is made of, from config: its sources, its tables, and the summary of a run."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamd.config.model import Config
from streamd.sources.base import Source
from streamd.sources.http_push.source import HttpPushSource, HttpPushSourceConfig
from streamd.sources.mqtt.source import MqttSource, MqttSourceConfig
from streamd.sources.ndjson.source import NdjsonSource
from streamd.sources.rejects import DeadLetter
from streamd.sources.synthetic.manufacturing import ManufacturingSource, ManufacturingSourceConfig
from streamd.sources.synthetic.retail import RetailSource, RetailSourceConfig


@dataclass
class TableSummary:
    """Per-table counts for this run, and what is still waiting."""

    produced: int
    """Rows sources produced in this run."""
    committed: int
    """Rows committed in this run (including rows an earlier run had spooled)."""
    rejected: int
    """Rows dead-lettered in this run."""
    uncommitted: int = 0
    """Rows produced (this run or before) and not committed yet: in lanes or in the spool."""


@dataclass
class RunSummary:
    """What a run did, per table."""

    tables: dict[str, TableSummary] = field(default_factory=dict)
    retries: int = 0
    reopens: int = 0

    @property
    def uncommitted(self) -> int:
        return sum(t.uncommitted for t in self.tables.values())


def split_table(name: str) -> tuple[str, str, str]:
    """`DB.SCHEMA.TABLE` into its parts."""
    parts = name.split(".")
    if len(parts) != 3:
        raise ValueError(f"table {name!r} must be fully qualified as DATABASE.SCHEMA.TABLE")
    return parts[0], parts[1], parts[2]


def build_sources(config: Config, dead_letter: DeadLetter | None = None) -> list[Source]:
    """Runtime sources for the configured `[[sources]]`."""
    out: list[Source] = []
    for s in config.sources:
        if isinstance(s, ManufacturingSourceConfig):
            out.append(ManufacturingSource(s))
        elif isinstance(s, RetailSourceConfig):
            out.append(RetailSource(s))
        elif isinstance(s, MqttSourceConfig):
            out.append(MqttSource(s, dead_letter))
        elif isinstance(s, HttpPushSourceConfig):
            out.append(HttpPushSource(s, dead_letter))
        else:
            out.append(NdjsonSource(s, config.state_dir / "sources" / s.name, dead_letter))
    return out
