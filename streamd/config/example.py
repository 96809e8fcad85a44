"""Render `config/streamd.example.toml` from the config models' field docstrings (one source of truth)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from streamd.config.model import Config

_EXAMPLES: dict[str, object] = {
    "private_key": "file:/etc/streamd/rsa_key.p8",
    "private_key_passphrase": "env:STREAMD_KEY_PASSPHRASE",
    "role": "STREAMD_ROLE",
    "url": "https://myorg-myaccount.snowflakecomputing.com",
    "spool_total_max_bytes": 8 * 1024**3,
    "warehouse": "STREAMD_WH",
    "databases": ["MANUFACTURING_DEMO", "RETAIL_DEMO"],
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fields(
    model: type[BaseModel], instance: BaseModel, lines: list[str], commented: bool
) -> list[str]:
    nested: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        value = getattr(instance, name)
        if isinstance(value, BaseModel) or name in ("sources", "tables"):
            nested.append(name)
            continue
        for doc_line in (field.description or "").splitlines():
            lines.append(f"# {doc_line}")
        prefix = "# " if commented or value is None or isinstance(value, SecretStr) else ""
        if value is None or isinstance(value, SecretStr):
            shown = _EXAMPLES.get(name, "")
            lines.append(f"{prefix}{key} = {_toml_value(shown)}")
        else:
            lines.append(f"{prefix}{key} = {_toml_value(value)}")
        lines.append("")
    return nested


def _section(path: str, model: type[BaseModel], instance: BaseModel, lines: list[str]) -> None:
    lines.append(f"[{path}]")
    for name in _fields(model, instance, lines, commented=False):
        sub = getattr(instance, name)
        _section(f"{path}.{name}", type(sub), sub, lines)


def render_example() -> str:
    """Every key with its documentation and default, as a TOML file."""
    from streamd.sources.http_push.source import HttpPushSourceConfig
    from streamd.sources.ndjson.config import NdjsonSourceConfig
    from streamd.sources.synthetic.manufacturing import ManufacturingSourceConfig

    config = Config()
    lines = [
        "# streamd configuration: every key, its meaning and its default.",
        "# Generated from the config models by `streamd config example`; do not edit by hand.",
        "# Secrets may be written as env:NAME or file:/path.",
        "",
    ]
    for name in _fields(Config, config, lines, commented=False):
        if name in ("sources", "tables"):
            continue
        sub = getattr(config, name)
        _section(name, type(sub), sub, lines)
    lines += [
        "# Row rules per table (`tables`): a row breaking one goes to the dead-letter file,",
        "# counted per table and rule. Keys: required, type, min, max, allowed.",
        '# [tables."MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW".columns.TEMPERATURE]',
        '# type = "number"',
        "# min = -50",
        "# max = 500",
        '# [tables."MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW".columns.STATUS]',
        '# allowed = ["RUNNING", "IDLE", "WARNING", "ERROR", "MAINTENANCE"]',
        "",
    ]
    lines.append("# One [[sources]] table per producer; `kind` selects the source.")
    lines.append("[[sources]]")
    source = ManufacturingSourceConfig()
    _fields(ManufacturingSourceConfig, source, lines, commented=False)
    # The other kinds need values only a deployment has (tokens, paths): shown commented out.
    examples: list[tuple[type[BaseModel], BaseModel]] = [
        (
            HttpPushSourceConfig,
            HttpPushSourceConfig.model_construct(
                name="push",
                tokens=["env:STREAMD_PUSH_TOKEN"],
                table_map={"orders": "RETAIL_DEMO.RAW_DATA.ORDERS_RAW"},
            ),
        ),
        (
            NdjsonSourceConfig,
            NdjsonSourceConfig.model_construct(
                name="files",
                paths=["/var/log/app/events-*.ndjson"],
                table="RETAIL_DEMO.RAW_DATA.CLICKSTREAM_RAW",
            ),
        ),
    ]
    for model, instance in examples:
        lines.append("# [[sources]]")
        _fields(model, instance, lines, commented=True)
    lines += [
        "# [[sources]]",
        '# kind = "retail"          # synthetic POS, clickstream, e-commerce and customer changes',
        '# name = "retail"          # every key of the kind: see streamd/sources/synthetic/retail.py',
        "",
        "# [[sources]]",
        '# kind = "mqtt"',
        '# name = "plant-mqtt"',
        '# host = "127.0.0.1"',
        "# port = 1883",
        '# client_id = "streamd-plant-1"   # unique per daemon (persistent session, QoS 1)',
        "# [[sources.subscriptions]]",
        '# topic = "$share/streamd/factory/+/telemetry"',
        '# table = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"',
        '# format = "json"                  # or "sparkplug_b"',
        '# columns = { "+1" = "EQUIPMENT_ID" }',
    ]
    return "\n".join(lines).rstrip() + "\n"
