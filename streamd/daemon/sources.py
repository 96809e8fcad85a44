"""The daemon's sources: the runtime `Source` each configured `[[sources]]` entry becomes."""

from __future__ import annotations

from typing import assert_never

from streamd.config.model import Config
from streamd.sources.base import Source
from streamd.sources.http_push.source import HttpPushSource, HttpPushSourceConfig
from streamd.sources.mqtt.source import MqttSource, MqttSourceConfig
from streamd.sources.ndjson.config import NdjsonSourceConfig
from streamd.sources.ndjson.source import NdjsonSource
from streamd.sources.rejects import DeadLetter
from streamd.sources.synthetic.manufacturing import ManufacturingSource, ManufacturingSourceConfig
from streamd.sources.synthetic.retail import RetailSource, RetailSourceConfig


def build_sources(config: Config, dead_letter: DeadLetter | None = None) -> list[Source]:
    """Runtime sources for the configured `[[sources]]`, in order."""
    out: list[Source] = []
    for s in config.sources:
        match s:
            case ManufacturingSourceConfig():
                out.append(ManufacturingSource(s))
            case RetailSourceConfig():
                out.append(RetailSource(s))
            case MqttSourceConfig():
                out.append(MqttSource(s, dead_letter))
            case HttpPushSourceConfig():
                out.append(HttpPushSource(s, dead_letter))
            case NdjsonSourceConfig():
                out.append(NdjsonSource(s, config.state_dir / "sources" / s.name, dead_letter))
            case _:
                assert_never(s)
    return out
