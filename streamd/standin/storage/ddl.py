"""Snowflake DDL → DuckDB: the start-up schema loader, and the column model ingestion checks.

Only the DDL a landing zone needs is understood: CREATE DATABASE, CREATE SCHEMA and CREATE TABLE.
Anything else is rejected with the file and statement named; nothing is skipped silently, because a
stand-in that quietly ignores a statement lets the real account and the local one drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers

ColumnKind = Literal[
    "text",
    "fixed",
    "real",
    "boolean",
    "date",
    "time",
    "timestamp_ntz",
    "timestamp_ltz",
    "timestamp_tz",
    "variant",
    "object",
    "array",
    "binary",
]
"""Snowflake's logical column types, spelled the way the SQL API's rowType spells them (§4.5)."""


class DdlError(Exception):
    """A DDL statement the stand-in cannot run; the message names the file and the statement."""


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column as Snowflake declared it (lengths and precisions DuckDB would forget are kept)."""

    name: str
    kind: ColumnKind
    nullable: bool = True
    length: int | None = None
    precision: int | None = None
    scale: int | None = None


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table's identity and columns, upper-cased like unquoted Snowflake identifiers."""

    database: str
    schema: str
    name: str
    columns: tuple[ColumnSpec, ...]

    def column(self, key: str) -> ColumnSpec | None:
        """The column a JSON key maps to, case-insensitively (MATCH_BY_COLUMN_NAME, §2.15)."""
        upper = key.upper()
        for col in self.columns:
            if col.name.upper() == upper:
                return col
        return None


@dataclass(frozen=True, slots=True)
class CreateDatabase:
    """`CREATE DATABASE`: the storage attaches `<data_dir>/<name>.duckdb` under this name."""

    name: str


@dataclass(frozen=True, slots=True)
class RunSql:
    """A statement already translated to DuckDB; `table` is set for CREATE TABLE."""

    sql: str
    table: TableSpec | None = None


Action = CreateDatabase | RunSql

_JSON_TYPES = {exp.DataType.Type.VARIANT, exp.DataType.Type.OBJECT, exp.DataType.Type.ARRAY}
_TEXT_TYPES = {
    exp.DataType.Type.VARCHAR,
    exp.DataType.Type.TEXT,
    exp.DataType.Type.CHAR,
    exp.DataType.Type.NCHAR,
    exp.DataType.Type.NVARCHAR,
}
_INT_TYPES = {
    exp.DataType.Type.TINYINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
}
_REAL_TYPES = {exp.DataType.Type.FLOAT, exp.DataType.Type.DOUBLE}


LANDING_MAX_NUMBER = 9
"""Files numbered `01_`…`09_` hold landing DDL (databases, schemas, raw tables), loaded at start so
`streamd run` works without setup; `10_` and up are pipelines (streams, tasks, dynamic tables …)
that `streamd setup` applies through the SQL API."""
_NUMBER_RE = re.compile(r"^(\d+)_")


def sql_files(sql_dirs: Iterable[Path]) -> list[Path]:
    """The landing `.sql` files of the directories, each directory in sorted file order."""
    files: list[Path] = []
    for directory in sql_dirs:
        if not directory.is_dir():
            raise DdlError(f"sql dir {directory} does not exist")
        files.extend(sorted(f for f in directory.glob("*.sql") if _is_landing(f)))
    return files


def _is_landing(path: Path) -> bool:
    number = _NUMBER_RE.match(path.name)
    return number is None or int(number[1]) <= LANDING_MAX_NUMBER


def plan_file(path: Path) -> Iterator[Action]:
    """Translate every statement of one file, raising DdlError naming file and statement."""
    text = path.read_text(encoding="utf-8")
    try:
        statements = sqlglot.parse(text, read="snowflake")
    except SqlglotError as err:
        raise DdlError(f"{path}: cannot parse: {err}") from err
    for stmt in statements:
        if stmt is None:
            continue
        try:
            yield translate(stmt)
        except DdlError as err:
            raise DdlError(f"{path}: {err}") from err


def translate(stmt: exp.Expr) -> Action:
    """One parsed Snowflake statement → what the storage should do with it."""
    shown = _shorten(stmt.sql(dialect="snowflake"))
    if not isinstance(stmt, exp.Create):
        raise DdlError(f"unsupported statement (only CREATE DATABASE/SCHEMA/TABLE): {shown}")
    stmt = normalize_identifiers(stmt.copy(), dialect="snowflake")
    kind = (stmt.kind or "").upper()
    if kind == "DATABASE":
        return CreateDatabase(stmt.this.name)
    if kind == "SCHEMA":
        target = stmt.this
        name = f'"{target.catalog}"."{target.db or target.name}"' if target.catalog else None
        if name is None:
            raise DdlError(f"CREATE SCHEMA must name its database (DB.SCHEMA): {shown}")
        # Always IF NOT EXISTS: start-up re-applies the same files to a persistent data dir.
        return RunSql(f"CREATE SCHEMA IF NOT EXISTS {name}")
    if kind == "TABLE":
        return _translate_table(stmt, shown)
    raise DdlError(
        f"unsupported CREATE {kind or '?'} (stand-in runs DATABASE/SCHEMA/TABLE): {shown}"
    )


def _translate_table(stmt: exp.Create, shown: str) -> RunSql:
    schema = stmt.this
    if not isinstance(schema, exp.Schema) or not isinstance(schema.this, exp.Table):
        raise DdlError(
            f"CREATE TABLE without a column list (CTAS/LIKE/CLONE) is unsupported: {shown}"
        )
    table = schema.this
    if not (table.catalog and table.db):
        raise DdlError(f"CREATE TABLE must use a 3-part name DB.SCHEMA.TABLE: {shown}")
    columns: list[ColumnSpec] = []
    for coldef in schema.expressions:
        if not isinstance(coldef, exp.ColumnDef):
            # Table constraints (PRIMARY KEY …) are informational in Snowflake and not enforced, so
            # enforcing them here would reject rows Snowflake accepts: drop them.
            coldef.pop()
            continue
        dtype = coldef.args.get("kind")
        if not isinstance(dtype, exp.DataType):
            raise DdlError(f"column {coldef.name} has no type: {shown}")
        columns.append(column_spec(coldef.name, dtype, _nullable(coldef)))
        if dtype.this in _JSON_TYPES:
            # VARIANT/OBJECT/ARRAY → DuckDB JSON: it ingests several times faster than DuckDB's
            # VARIANT (local-target-notes §1.1), and fakesnow makes the same choice.
            dtype.replace(exp.DataType.build("JSON"))
        elif dtype.this in _TEXT_TYPES:
            # VARCHAR(n) → VARCHAR: DuckDB ignores lengths anyway; the length check is done at
            # ingest from ColumnSpec.length, so it is not lost.
            dtype.set("expressions", [])
    # CLUSTER BY, COMMENT, DATA_RETENTION, CHANGE_TRACKING, ERROR_LOGGING … have no DuckDB
    # counterpart and change no query result, so they are dropped (error logging is always on here).
    stmt.set("properties", None)
    spec = TableSpec(table.catalog, table.db, table.name, tuple(columns))
    return RunSql(stmt.sql(dialect="duckdb"), table=spec)


def _nullable(coldef: exp.ColumnDef) -> bool:
    for constraint in coldef.args.get("constraints") or []:
        if isinstance(constraint.args.get("kind"), exp.NotNullColumnConstraint):
            return bool(constraint.args["kind"].args.get("allow_null"))
        if isinstance(constraint.args.get("kind"), exp.PrimaryKeyColumnConstraint):
            return False
    return True


def column_spec(name: str, dtype: exp.DataType, nullable: bool) -> ColumnSpec:
    """The Snowflake column model of one sqlglot data type."""
    t = dtype.this
    params = [int(p.this.this) for p in dtype.expressions if isinstance(p, exp.DataTypeParam)]
    if t in _TEXT_TYPES:
        return ColumnSpec(name, "text", nullable, length=params[0] if params else None)
    if t == exp.DataType.Type.DECIMAL:
        precision = params[0] if params else 38
        scale = params[1] if len(params) > 1 else 0
        return ColumnSpec(name, "fixed", nullable, precision=precision, scale=scale)
    if t in _INT_TYPES:
        return ColumnSpec(name, "fixed", nullable, precision=38, scale=0)
    if t in _REAL_TYPES:
        return ColumnSpec(name, "real", nullable)
    simple: dict[exp.DType, ColumnKind] = {
        exp.DataType.Type.BOOLEAN: "boolean",
        exp.DataType.Type.DATE: "date",
        exp.DataType.Type.TIME: "time",
        exp.DataType.Type.TIMESTAMP: "timestamp_ntz",
        exp.DataType.Type.TIMESTAMPNTZ: "timestamp_ntz",
        exp.DataType.Type.DATETIME: "timestamp_ntz",
        exp.DataType.Type.TIMESTAMPLTZ: "timestamp_ltz",
        exp.DataType.Type.TIMESTAMPTZ: "timestamp_tz",
        exp.DataType.Type.VARIANT: "variant",
        exp.DataType.Type.JSON: "variant",
        exp.DataType.Type.OBJECT: "object",
        exp.DataType.Type.ARRAY: "array",
        exp.DataType.Type.BINARY: "binary",
        exp.DataType.Type.VARBINARY: "binary",
    }
    kind = simple.get(t)
    if kind is None:
        raise DdlError(f"column {name}: type {dtype.sql('snowflake')} is not supported")
    return ColumnSpec(name, kind, nullable)


def spec_from_duckdb(
    database: str, schema: str, table: str, rows: Iterable[tuple[str, str, str]]
) -> TableSpec:
    """A TableSpec from `information_schema.columns` rows (name, data_type, is_nullable).

    Used for tables created after start-up (e.g. through the SQL API), whose Snowflake DDL was
    not kept: lengths are unknown, JSON columns count as VARIANT.
    """
    cols: list[ColumnSpec] = []
    for name, data_type, is_nullable in rows:
        try:
            dtype = exp.DataType.build(data_type, dialect="duckdb")
        except SqlglotError:
            dtype = exp.DataType.build("VARCHAR")
        if dtype.this == exp.DataType.Type.TIMESTAMPTZ:
            dtype = exp.DataType.build("TIMESTAMPLTZ", dialect="snowflake")
        try:
            spec = column_spec(name, dtype, is_nullable == "YES")
        except DdlError:
            spec = ColumnSpec(name, "text", is_nullable == "YES")
        cols.append(spec)
    return TableSpec(database, schema, table, tuple(cols))


def _shorten(sql: str, limit: int = 160) -> str:
    one_line = " ".join(sql.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
