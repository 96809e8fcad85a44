"""Iceberg tables and Parquet unloads: the stand-in's two ways data leaves Snowflake.

`CREATE [OR REPLACE] ICEBERG TABLE … CATALOG='SNOWFLAKE' EXTERNAL_VOLUME=… BASE_LOCATION=…` makes a
real Apache Iceberg table (format v2, pyiceberg `SqlCatalog` on SQLite) in
`<data_dir>/iceberg/<EXTERNAL_VOLUME>/<BASE_LOCATION>/`, plus a DuckDB mirror table of the same name
that queries read. DML on it (INSERT/UPDATE/DELETE/MERGE, e.g. from a task body) runs on the mirror
through the default path, and just before the transaction commits the mirror's current state is
written to Iceberg as one overwrite: one snapshot per transaction, never row-wise upserts
(local-target-notes §4). `SYSTEM$GET_ICEBERG_TABLE_INFORMATION` answers the metadata location
(snowflake-apis §5.8). Any external volume name is accepted (tolerant: the stand-in has no
volumes to check it against).

`COPY INTO @stage[/path] FROM (SELECT …) FILE_FORMAT=(TYPE=PARQUET) …` writes real Parquet files
into the stage (`stages.py`) named like Snowflake's (`data_<query id>_0_0_0.snappy.parquet`), and
consumes any stream it reads when it commits (§5.3, §5.4).
"""

# ruff: noqa: S608 - identifiers go through quote(); values are bound parameters.
from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from streamd.standin.exports.iceberg import IcebergStore
from streamd.standin.exports.parquet import UnloadOptions, unload
from streamd.standin.objects.stages import Stages, parse_stage_ref
from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    compilation_error,
    does_not_exist,
    strip_comments,
    unsupported,
)
from streamd.standin.storage.ddl import DdlError, RunSql, translate
from streamd.standin.storage.duck import HIDDEN_SCHEMA, execute, quote

_CREATE = re.compile(r"CREATE\s+(OR\s+REPLACE\s+)?ICEBERG\s+TABLE\b", re.I)
_PROPERTY = re.compile(r"\b(CATALOG|EXTERNAL_VOLUME|BASE_LOCATION)\s*=\s*'((?:[^']|'')*)'", re.I)
_DROP = re.compile(
    r"DROP\s+(?P<iceberg>ICEBERG\s+)?TABLE\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>[^\s;]+)\s*$", re.I
)
_DML = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_REGISTRY = "ICEBERG_TABLES"


def register(engine: SqlEngine, data_dir: Path) -> None:
    """Install the Iceberg and unload handlers on `engine`."""
    store = IcebergStore(data_dir / "iceberg")
    stages = Stages(data_dir)
    default = engine.default
    engine.register(_CREATE.pattern, functools.partial(create_iceberg, store=store))
    engine.register(
        r"SELECT\s+SYSTEM\$GET_ICEBERG_TABLE_INFORMATION\s*\(",
        functools.partial(iceberg_information, store=store),
    )
    engine.register(_is_dml, functools.partial(iceberg_dml, store=store, default=default))
    engine.register(_DROP.pattern, functools.partial(drop_iceberg, store=store, default=default))
    engine.register(r"COPY\s+INTO\s+@", functools.partial(copy_into_stage, stages=stages))


def _registry(db: str) -> str:
    return f"{quote(db)}.{quote(HIDDEN_SCHEMA)}.{_REGISTRY}"


def _ensure_registry(session: Session, db: str) -> None:
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {_registry(db)} (SCHEMA_NAME VARCHAR NOT NULL, "
        "NAME VARCHAR NOT NULL, EXTERNAL_VOLUME VARCHAR, BASE_LOCATION VARCHAR, "
        "LOCATION VARCHAR NOT NULL, FINGERPRINT VARCHAR, PRIMARY KEY (SCHEMA_NAME, NAME))"
    )


def _iceberg_row(session: Session, db: str, schema: str, name: str) -> tuple[Any, ...] | None:
    found = execute(
        session.cur,
        "SELECT 1 FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ? "
        "AND table_name = ?",
        [db, HIDDEN_SCHEMA, _REGISTRY],
    )
    if not found:
        return None
    rows = execute(
        session.cur,
        f"SELECT LOCATION FROM {_registry(db)} WHERE SCHEMA_NAME = ? AND NAME = ?",
        [schema, name],
    )
    return rows[0] if rows else None


def create_iceberg(session: Session, stmt: Statement, *, store: IcebergStore) -> Result:
    """CREATE [OR REPLACE] ICEBERG TABLE [IF NOT EXISTS] name (cols) CATALOG=… EXTERNAL_VOLUME=…."""
    text = strip_comments(stmt.text)
    props = {k.upper(): v.replace("''", "'") for k, v in _PROPERTY.findall(text)}
    if props.get("CATALOG", "SNOWFLAKE").upper() != "SNOWFLAKE":
        raise unsupported("Iceberg tables with an external catalog (only CATALOG = 'SNOWFLAKE')")
    # Parse the column list as a plain CREATE TABLE: strip ICEBERG and the Iceberg properties.
    plain = _CREATE.sub(lambda m: f"CREATE {m.group(1) or ''}TABLE", text, count=1)
    plain = _PROPERTY.sub("", plain)
    try:
        expr = sqlglot.parse_one(plain, read="snowflake")
    except SqlglotError as err:
        raise compilation_error(f"cannot parse Iceberg table definition: {err}") from err
    if not isinstance(expr, exp.Create) or not isinstance(expr.this, exp.Schema):
        raise unsupported("CREATE ICEBERG TABLE without a column list (AS SELECT, FROM …)")
    db, schema, name = session.qualify(expr.this.this)
    replace, if_not_exists = bool(expr.args.get("replace")), bool(expr.args.get("exists"))
    with session.transaction():
        _ensure_registry(session, db)
        if _iceberg_row(session, db, schema, name) is not None:
            if if_not_exists:
                return Result.status(f"{name} already exists, statement succeeded.")
            if not replace:
                raise SqlFailure("002002", "42710", f"Object '{name}' already exists.")
        volume = props.get("EXTERNAL_VOLUME", "SNOWFLAKE_MANAGED")
        base = props.get("BASE_LOCATION", f"{db}/{schema}/{name}".lower())
        expr.set("replace", True)
        expr.set("exists", False)
        try:
            action = translate(expr)
        except DdlError as err:
            raise unsupported(str(err)) from err
        if not isinstance(action, RunSql):
            raise unsupported(stmt.text)
        session.execute(action.sql)
        columns = session.cur.sql(f"SELECT * FROM {_table(db, schema, name)} LIMIT 0")
        location = store.create((db, schema, name), columns.to_arrow_table().schema, volume, base)
        session.execute(
            f"INSERT OR REPLACE INTO {_registry(db)} VALUES (?, ?, ?, ?, ?, ?)",
            [schema, name, volume, base, location, _fingerprint(session, (db, schema, name))],
        )
    return Result.status(f"Table {name} successfully created.")


def drop_iceberg(
    session: Session,
    stmt: Statement,
    *,
    store: IcebergStore,
    default: Callable[[Session, Statement], Result] | None,
) -> Result:
    """DROP [ICEBERG] TABLE: an Iceberg table loses its mirror, registry row and files."""
    match = _DROP.match(strip_comments(stmt.text).rstrip(";").strip())
    if match is None or default is None:
        raise unsupported(stmt.text)
    db, schema, name = session.qualify(match["name"])
    if _iceberg_row(session, db, schema, name) is None:
        if match["iceberg"] and not match["ie"]:
            raise does_not_exist("Iceberg table", f"{db}.{schema}.{name}")
        return default(session, stmt)
    with session.transaction():
        session.execute(f"DROP TABLE IF EXISTS {_table(db, schema, name)}")
        session.execute(
            f"DELETE FROM {_registry(db)} WHERE SCHEMA_NAME = ? AND NAME = ?", [schema, name]
        )
        store.drop((db, schema, name))
    return Result.status(f"{name} successfully dropped.")


def _table(db: str, schema: str, name: str) -> str:
    return f"{quote(db)}.{quote(schema)}.{quote(name)}"


def iceberg_information(session: Session, stmt: Statement, *, store: IcebergStore) -> Result:
    """SYSTEM$GET_ICEBERG_TABLE_INFORMATION('<db>.<schema>.<table>') → metadata location JSON."""
    match = re.search(r"\(\s*'((?:[^']|'')*)'\s*\)", stmt.text)
    if match is None:
        raise compilation_error("SYSTEM$GET_ICEBERG_TABLE_INFORMATION takes one table name")
    db, schema, name = session.qualify(match[1])
    if _iceberg_row(session, db, schema, name) is None:
        raise does_not_exist("Iceberg table", f"{db}.{schema}.{name}")
    ident = (db, schema, name)
    # Like Snowflake, generate metadata for changes not yet in it (§5.8): rows that reached the
    # table some other way than SQL DML (e.g. Snowpipe Streaming) are published here.
    with session.transaction():
        stored = execute(
            session.cur,
            f"SELECT FINGERPRINT FROM {_registry(db)} WHERE SCHEMA_NAME = ? AND NAME = ?",
            [schema, name],
        )
        if not stored or stored[0][0] != _fingerprint(session, ident):
            _publish(session, store, ident)
    info = {"metadataLocation": store.metadata_location(ident), "status": "success"}
    column = f"SYSTEM$GET_ICEBERG_TABLE_INFORMATION('{match[1]}')"
    return Result([(column, "VARCHAR")], [(orjson.dumps(info).decode(),)])


def _fingerprint(session: Session, ident: tuple[str, str, str]) -> str:
    """Row count and an order-independent hash of the mirror's rows."""
    alias = quote("_t")
    count, digest = execute(
        session.cur, f"SELECT COUNT(*), BIT_XOR(HASH({alias})) FROM {_table(*ident)} AS {alias}"
    )[0]
    return f"{count}:{digest}"


def _publish(session: Session, store: IcebergStore, ident: tuple[str, str, str]) -> None:
    """Write the mirror's state to Iceberg and remember what was written."""
    data = session.cur.sql(f"SELECT * FROM {_table(*ident)}").to_arrow_table()
    store.publish(ident, data)
    execute(
        session.cur,
        f"UPDATE {_registry(ident[0])} SET FINGERPRINT = ? WHERE SCHEMA_NAME = ? AND NAME = ?",
        [_fingerprint(session, ident), ident[1], ident[2]],
    )


def _is_dml(stmt: Statement) -> bool:
    return isinstance(stmt.expr, _DML)


def _dml_target(expr: exp.Expr) -> exp.Table | None:
    target = expr.this
    if isinstance(target, exp.Schema):
        target = target.this
    return target if isinstance(target, exp.Table) else None


def iceberg_dml(
    session: Session,
    stmt: Statement,
    *,
    store: IcebergStore,
    default: Callable[[Session, Statement], Result] | None,
) -> Result:
    """DML: on an Iceberg table, also write the mirror to Iceberg when the transaction commits."""
    if default is None:
        raise unsupported(stmt.text)
    target = _dml_target(stmt.expr) if stmt.expr is not None else None
    if target is not None:
        db, schema, name = session.qualify(target)
        key = f"iceberg:{db}.{schema}.{name}"
        if key not in session.txn_cache and _iceberg_row(session, db, schema, name) is not None:
            session.txn_cache[key] = True

            # Runs just before the DuckDB COMMIT: if the Iceberg commit fails, the DML rolls back
            # too; if DuckDB's COMMIT then failed, Iceberg would be one snapshot ahead until the
            # next publish (the fingerprint check in GET_ICEBERG_TABLE_INFORMATION repairs it).
            session.on_commit(functools.partial(_publish, session, store, (db, schema, name)))
    return default(session, stmt)


def copy_into_stage(session: Session, stmt: Statement, *, stages: Stages) -> Result:
    """COPY INTO @stage[/path] FROM (SELECT …) | table, unloading Parquet files."""
    expr = stmt.expr
    if not isinstance(expr, exp.Copy) or not expr.args.get("files"):
        raise compilation_error(f"cannot parse COPY INTO <location>: {stmt.text[:120]}")
    location = expr.this.name if isinstance(expr.this, exp.Table) else expr.this.sql()
    ref = parse_stage_ref(location, session.database, session.schema)
    stages.require(ref)
    source = expr.args["files"][0]
    query: exp.Expr
    if isinstance(source, exp.Subquery):
        query = source.this
    elif isinstance(source, exp.Table):
        query = exp.select("*").from_(source)
    else:
        raise compilation_error("COPY INTO <location> needs FROM (SELECT …) or FROM <table>")
    options = UnloadOptions.from_params(expr.args.get("params") or [])
    query_id = str(uuid.uuid4())
    with session.transaction():
        sql = session.to_duckdb(query, consume=True)
        return unload(session, sql, stages, ref, options, query_id)
