"""Internal named stages: CREATE [OR REPLACE] STAGE, DROP STAGE, LIST @stage, REMOVE @stage.

Directory layout (other stand-in modules read and write stages through this module):

    <data_dir>/stages/<DB>/<SCHEMA>/<STAGE>/        the stage's files; a file's stage path is its
                                                     path relative to this directory
    <data_dir>/stages/<DB>/<SCHEMA>/<STAGE>.json    the stage's definition (kept beside, not
                                                     inside, so LIST never shows it)

Names are upper-cased like unquoted Snowflake identifiers. A stage exists when its `.json` exists.
Files are written as `<name>.tmp` and renamed (`write_file`), and LIST skips `*.tmp` and dot
files, so a reader never sees half a file. Only internal stages are run: external stages (URL=,
STORAGE_INTEGRATION=), the user stage `@~` and table stages `@%t` are refused with Snowflake's
kind of error rather than faked.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import orjson

from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    strip_comments,
)
from streamd.standin.storage.duck import Cursor, execute

STAGES_DIR = "stages"
Columns = list[tuple[str, str]]
"""Result columns as (name, DuckDB type name), the shape `http/sql_api.py` renders."""
Rows = list[tuple[Any, ...]]

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_STAGE_REF = re.compile(rf"^@(?P<name>{_IDENT}(?:\.{_IDENT}){{0,2}})(?P<path>/[^\s;]*)?$")
_PART = re.compile(_IDENT)
_PATTERN = re.compile(r"\bPATTERN\s*=\s*'(?P<re>(?:[^']|'')*)'", re.IGNORECASE)
_CREATE = re.compile(
    rf"^CREATE\s+(?P<replace>OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?STAGE\s+"
    rf"(?P<exists>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT}(?:\.{_IDENT}){{0,2}})(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_DROP = re.compile(
    rf"^DROP\s+STAGE\s+(?P<exists>IF\s+EXISTS\s+)?(?P<name>{_IDENT}(?:\.{_IDENT}){{0,2}})\s*$",
    re.IGNORECASE,
)
_LIST = re.compile(r"^(?:LIST|LS)\s+(?P<ref>@\S+)(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_REMOVE = re.compile(r"^(?:REMOVE|RM)\s+(?P<ref>@\S+)(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_EXTERNAL = re.compile(r"\b(URL|STORAGE_INTEGRATION|CREDENTIALS)\s*=", re.IGNORECASE)


class NamedStageError(SqlFailure):
    """A stage statement or path Snowflake would refuse (code and sqlState as Snowflake's)."""


@dataclass(frozen=True, slots=True)
class StageRef:
    """`@DB.SCHEMA.STAGE/path`: which stage, and the path prefix inside it ('' for the root)."""

    database: str
    schema: str
    name: str
    path: str = ""

    @property
    def qualified(self) -> str:
        """`DB.SCHEMA.STAGE`."""
        return f"{self.database}.{self.schema}.{self.name}"


def _ident(part: str) -> str:
    return part[1:-1].replace('""', '"') if part.startswith('"') else part.upper()


def _split_name(text: str, database: str | None, schema: str | None) -> tuple[str, str, str]:
    parts = [_ident(p) for p in _PART.findall(text)]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2 and database:
        return database.upper(), parts[0], parts[1]
    if len(parts) == 1 and database and schema:
        return database.upper(), schema.upper(), parts[0]
    raise NamedStageError(
        "090105",
        "22000",
        f"Cannot perform operation on stage {text}. This session does not have a current "
        "database and schema. Call 'USE DATABASE/SCHEMA', or use a qualified name.",
    )


def parse_stage_ref(text: str, database: str | None = None, schema: str | None = None) -> StageRef:
    """Parse `@[db.][schema.]stage[/path]`, resolving short names against the request's namespace."""
    text = text.strip().rstrip(";")
    if text.startswith(("@~", "@%")):
        raise NamedStageError(
            "000002",
            "0A000",
            f"Unsupported feature in the stand-in: user and table stages ({text.split('/')[0]}); "
            "create a named internal stage",
        )
    match = _STAGE_REF.match(text)
    if match is None:
        raise NamedStageError(
            "001003", "42000", f"SQL compilation error: invalid stage location {text}"
        )
    db, sch, name = _split_name(match["name"], database, schema)
    path = (match["path"] or "").lstrip("/")
    return StageRef(db, sch, name, path)


class Stages:
    """The stage files under `<data_dir>/stages/` (see the module docstring for the layout)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / STAGES_DIR

    def directory(self, ref: StageRef) -> Path:
        """The stage's directory (whether or not the stage exists)."""
        return self.root / ref.database / ref.schema / ref.name

    def _marker(self, ref: StageRef) -> Path:
        return self.root / ref.database / ref.schema / f"{ref.name}.json"

    def exists(self, ref: StageRef) -> bool:
        """Whether the stage has been created."""
        return self._marker(ref).is_file()

    def require(self, ref: StageRef) -> Path:
        """The directory of an existing stage; Snowflake's 'does not exist' error otherwise."""
        if not self.exists(ref):
            raise NamedStageError(
                "002003",
                "02000",
                f"SQL compilation error: Stage '{ref.qualified}' does not exist or not authorized.",
            )
        return self.directory(ref)

    def create(
        self, ref: StageRef, *, replace: bool, if_not_exists: bool, definition: dict[str, Any]
    ) -> str:
        """Create the stage (OR REPLACE empties it, as replacing an internal stage drops its files)."""
        name = ref.name
        if self.exists(ref):
            if if_not_exists:
                return f"{name} already exists, statement succeeded."
            if not replace:
                raise NamedStageError(
                    "002002", "42710", f"SQL compilation error: Object '{name}' already exists."
                )
            shutil.rmtree(self.directory(ref), ignore_errors=True)
        self.directory(ref).mkdir(parents=True, exist_ok=True)
        _write_atomic(self._marker(ref), orjson.dumps(definition))
        return f"Stage area {name} successfully created."

    def drop(self, ref: StageRef, *, if_exists: bool) -> str:
        """Drop the stage and its files."""
        if not self.exists(ref):
            if if_exists:
                return f"Drop statement executed successfully ({ref.name} already dropped)."
            self.require(ref)
        shutil.rmtree(self.directory(ref), ignore_errors=True)
        self._marker(ref).unlink(missing_ok=True)
        return f"{ref.name} successfully dropped."

    def files(self, ref: StageRef, pattern: str | None = None) -> Iterator[tuple[str, Path]]:
        """(stage path, file) of every complete file under the ref's path, sorted, PATTERN-filtered.

        PATTERN is matched against the whole listed name (`stage/path`) as Snowflake documents,
        and, tolerantly, also against the path inside the stage.
        """
        base = self.require(ref)
        regex = re.compile(pattern) if pattern is not None else None
        for file in sorted(p for p in base.rglob("*") if p.is_file()):
            rel = file.relative_to(base).as_posix()
            if file.name.startswith(".") or file.name.endswith(".tmp"):
                continue
            if not rel.startswith(ref.path):
                continue
            listed = f"{ref.name.lower()}/{rel}"
            if regex is not None and not (regex.fullmatch(listed) or regex.fullmatch(rel)):
                continue
            yield rel, file

    def list(self, ref: StageRef, pattern: str | None = None) -> tuple[Columns, Rows]:
        """LIST @stage: name, size, md5, last_modified (an RFC 1123 GMT string, like Snowflake)."""
        rows: Rows = []
        for rel, file in self.files(ref, pattern):
            stat = file.stat()
            digest = hashlib.md5(file.read_bytes(), usedforsecurity=False).hexdigest()
            modified = formatdate(stat.st_mtime, usegmt=True)
            rows.append((f"{ref.name.lower()}/{rel}", stat.st_size, digest, modified))
        columns = [
            ("name", "VARCHAR"),
            ("size", "BIGINT"),
            ("md5", "VARCHAR"),
            ("last_modified", "VARCHAR"),
        ]
        return columns, rows

    def remove(self, ref: StageRef, pattern: str | None = None) -> tuple[Columns, Rows]:
        """REMOVE @stage: delete the matching files; one (name, result) row per file."""
        rows: Rows = []
        for rel, file in list(self.files(ref, pattern)):
            file.unlink(missing_ok=True)
            rows.append((f"{ref.name.lower()}/{rel}", "removed"))
        return [("name", "VARCHAR"), ("result", "VARCHAR")], rows

    def write_file(self, ref: StageRef, rel_path: str, write: Callable[[Path], None]) -> Path:
        """Write one file into an existing stage: `write(tmp)` then an atomic rename."""
        target = self.require(ref) / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        write(tmp)
        os.replace(tmp, target)
        return target


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _schema_exists(cur: Cursor, database: str, schema: str) -> bool:
    rows = execute(
        cur,
        "SELECT 1 FROM information_schema.schemata WHERE catalog_name = ? AND schema_name = ?",
        [database, schema],
    )
    return bool(rows)


def _pattern(rest: str) -> str | None:
    match = _PATTERN.search(rest)
    return match["re"].replace("''", "'") if match else None


def is_stage_statement(text: str) -> bool:
    """Whether `text` is one of the statements `run_stage_statement` handles."""
    flat = text.strip()
    return bool(_LIST.match(flat) or _REMOVE.match(flat) or _DROP.match(flat.rstrip(";"))) or bool(
        _CREATE.match(flat)
    )


def run_stage_statement(
    cur: Cursor, stages: Stages, text: str, database: str | None, schema: str | None
) -> tuple[Columns, Rows]:
    """Run CREATE/DROP STAGE, LIST or REMOVE (sync: file IO; call from a worker thread)."""
    flat = text.strip().rstrip(";").strip()
    if match := _LIST.match(flat):
        return stages.list(parse_stage_ref(match["ref"], database, schema), _pattern(match["rest"]))
    if match := _REMOVE.match(flat):
        ref = parse_stage_ref(match["ref"], database, schema)
        return stages.remove(ref, _pattern(match["rest"]))
    if match := _DROP.match(flat):
        ref = StageRef(*_split_name(match["name"], database, schema))
        return _status(stages.drop(ref, if_exists=bool(match["exists"])))
    if match := _CREATE.match(flat):
        rest = match["rest"].strip()
        if _EXTERNAL.search(rest):
            raise NamedStageError(
                "000002",
                "0A000",
                "Unsupported feature in the stand-in: external stages (URL/STORAGE_INTEGRATION); "
                "create an internal stage",
            )
        ref = StageRef(*_split_name(match["name"], database, schema))
        if not _schema_exists(cur, ref.database, ref.schema):
            raise NamedStageError(
                "002003",
                "02000",
                f"SQL compilation error: Schema '{ref.database}.{ref.schema}' does not exist or "
                "not authorized.",
            )
        message = stages.create(
            ref,
            replace=bool(match["replace"]),
            if_not_exists=bool(match["exists"]),
            definition={"name": ref.qualified, "properties": " ".join(rest.split())},
        )
        return _status(message)
    raise NamedStageError(
        "001003", "42000", f"SQL compilation error: not a stage statement: {flat[:80]}"
    )


def register(engine: SqlEngine, data_dir: Path) -> None:
    """Install CREATE/DROP STAGE, LIST and REMOVE on the stand-in's SQL engine."""
    stages = Stages(data_dir)

    def handle(session: Session, stmt: Statement) -> Result:
        columns, rows = run_stage_statement(
            session.cur, stages, strip_comments(stmt.text), session.database, session.schema
        )
        return Result(columns, rows)

    engine.register(
        r"(CREATE\s+(OR\s+REPLACE\s+)?(TEMP(ORARY)?\s+)?STAGE|DROP\s+STAGE|LIST|LS|REMOVE|RM)\b",
        handle,
    )


def _status(message: str) -> tuple[Columns, Rows]:
    return [("status", "VARCHAR")], [(message,)]
