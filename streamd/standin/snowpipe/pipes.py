"""Classic Snowpipe objects: parsing `CREATE PIPE … AS COPY INTO … FROM @stage` into a PipeSpec.

Reference §3 and §5.7. Where pipes and their load history are kept: `pipe_history.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamd.standin.objects.stages import NamedStageError, parse_stage_ref
from streamd.standin.sql.engine import SqlFailure

_IDENT = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)'
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}}"
_CREATE_RE = re.compile(
    rf"^\s*CREATE\s+(?P<replace>OR\s+REPLACE\s+)?PIPE\s+(?P<ifnot>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_NAME})(?P<props>.*?)\s+AS\s+COPY\s+INTO\s+(?P<table>{_NAME})\s*"
    rf"(?P<columns>\([^)]*\)\s*)?FROM\s+(?P<source>\S+)(?P<options>.*?);?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_OPTION_RE = re.compile(
    r"(?P<key>[A-Za-z_]+)\s*=\s*(?P<value>\([^)]*\)|'(?:[^']|'')*'|[^\s,()]+)", re.DOTALL
)


class PipeError(SqlFailure):
    """A pipe statement the stand-in refuses; carries Snowflake's code and SQLSTATE."""


@dataclass(frozen=True, slots=True)
class PipeSpec:
    """What a pipe loads and how (the parts of COPY INTO the stand-in implements)."""

    database: str
    schema: str
    name: str
    table: tuple[str, str, str]
    stage: tuple[str, str, str]
    prefix: str
    """Path under the stage named in `FROM @stage/prefix`; submitted paths are relative to it."""
    strip_outer_array: bool
    match_by_column_name: str | None
    """CASE_INSENSITIVE or CASE_SENSITIVE; None loads the whole object into one VARIANT column."""
    on_error: str
    """SKIP_FILE (Snowpipe's default) or CONTINUE."""
    pattern: str | None
    definition: str

    @property
    def qualified(self) -> str:
        """`DB.SCHEMA.PIPE`, the name used in REST paths (case-sensitive, §3)."""
        return f"{self.database}.{self.schema}.{self.name}"

    @property
    def stage_location(self) -> str:
        """What insertReport's `stageLocation` says for an internal stage."""
        return f"@{'.'.join(self.stage)}/{self.prefix}".rstrip("/") + "/"


@dataclass(frozen=True, slots=True)
class CreatePipe:
    """A parsed CREATE PIPE statement."""

    spec: PipeSpec
    or_replace: bool
    if_not_exists: bool


def _ident(part: str) -> str:
    part = part.strip()
    return part[1:-1] if part.startswith('"') else part.upper()


def qualify(name: str, database: str | None, schema: str | None, what: str) -> tuple[str, ...]:
    parts = [_ident(p) for p in re.findall(_IDENT, name)]
    if len(parts) == 3:
        return tuple(parts)
    if len(parts) == 2 and database:
        return (database.upper(), *parts)
    if len(parts) == 1 and database and schema:
        return (database.upper(), schema.upper(), parts[0])
    raise PipeError(
        "090105",
        "22000",
        f"Cannot resolve {what} {name!r}: qualify it as DATABASE.SCHEMA.NAME "
        "or set database and schema on the request.",
    )


def parse_create_pipe(text: str, database: str | None, schema: str | None) -> CreatePipe | None:
    """A CREATE PIPE statement, or None when `text` is not one."""
    if not re.match(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?PIPE\b", text, re.IGNORECASE):
        return None
    found = _CREATE_RE.match(text)
    if found is None:
        raise PipeError(
            "001003",
            "42000",
            "SQL compilation error: the stand-in understands CREATE [OR REPLACE] PIPE [IF NOT "
            "EXISTS] p [AUTO_INGEST = FALSE] AS COPY INTO t FROM @stage[/path] FILE_FORMAT = "
            "(TYPE = JSON …) [MATCH_BY_COLUMN_NAME = …] [ON_ERROR = …] [PATTERN = '…']",
        )
    props = {k.upper(): v for k, v in _options(found["props"]).items()}
    if props.get("AUTO_INGEST", "FALSE").upper() == "TRUE":
        raise PipeError(
            "000002",
            "0A000",
            "Unsupported feature in the stand-in: AUTO_INGEST = TRUE needs cloud event "
            "notifications; use AUTO_INGEST = FALSE and insertFiles",
        )
    if found["columns"] or found["source"].startswith("("):
        raise PipeError(
            "000002",
            "0A000",
            "Unsupported feature in the stand-in: COPY transformations; map JSON keys with "
            "MATCH_BY_COLUMN_NAME instead",
        )
    pipe = qualify(found["name"], database, schema, "pipe")
    table = qualify(found["table"], database, schema, "table")
    source = found["source"]
    if not source.startswith("@"):
        raise PipeError("001003", "42000", f"SQL compilation error: {source!r} is not a stage")
    try:
        ref = parse_stage_ref(source, database, schema)
    except NamedStageError as err:
        raise PipeError(err.code, err.sql_state, err.message) from None
    stage, prefix = (ref.database, ref.schema, ref.name), ref.path
    options = {k.upper(): v for k, v in _options(found["options"]).items()}
    file_format = {
        k.upper(): v.upper() for k, v in _options(options.get("FILE_FORMAT", "")).items()
    }
    if file_format.get("TYPE", "").strip("'") != "JSON":
        raise PipeError(
            "000002",
            "0A000",
            "Unsupported feature in the stand-in: only FILE_FORMAT = (TYPE = JSON) is loaded",
        )
    match = options.get("MATCH_BY_COLUMN_NAME", "NONE").upper()
    on_error = options.get("ON_ERROR", "SKIP_FILE").upper().strip("'")
    if on_error == "ABORT_STATEMENT":
        on_error = "SKIP_FILE"  # Snowpipe treats ABORT_STATEMENT as SKIP_FILE (a file at a time)
    if on_error not in ("SKIP_FILE", "CONTINUE"):
        raise PipeError("000002", "0A000", f"Unsupported ON_ERROR = {on_error} in the stand-in")
    pattern = options.get("PATTERN")
    spec = PipeSpec(
        database=pipe[0],
        schema=pipe[1],
        name=pipe[2],
        table=(table[0], table[1], table[2]),
        stage=stage,
        prefix=prefix.strip("/"),
        strip_outer_array=file_format.get("STRIP_OUTER_ARRAY") == "TRUE",
        match_by_column_name=None if match == "NONE" else match,
        on_error=on_error,
        pattern=pattern[1:-1].replace("''", "'") if pattern else None,
        definition=text.strip().rstrip(";"),
    )
    return CreatePipe(spec, bool(found["replace"]), bool(found["ifnot"]))


def _options(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _OPTION_RE.finditer(text or ""):
        value = m["value"]
        out[m["key"].upper()] = value[1:-1] if value.startswith("(") else value
    return out


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds and Z, as Snowpipe writes times."""
    if ms is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
