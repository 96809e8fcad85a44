"""The default statement path: transactions, landing-zone DDL, and sqlglot → DuckDB for the rest.

DML that reads a stream runs in a transaction that also moves the stream's offset (§5.3), so a
failed or rolled-back statement leaves the offset where it was.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from sqlglot import exp

from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    compilation_error,
    unsupported,
)
from streamd.standin.storage.database import Storage
from streamd.standin.storage.ddl import CreateDatabase, DdlError, TableSpec, translate

_DML_LABELS = {
    exp.Insert: ("number of rows inserted", "numRowsInserted"),
    exp.Update: ("number of rows updated", "numRowsUpdated"),
    exp.Delete: ("number of rows deleted", "numRowsDeleted"),
    exp.Merge: ("number of rows affected", "numRowsUpdated"),
}
_RETENTION_PROPS = ("DATA_RETENTION_TIME_IN_DAYS", "MAX_DATA_EXTENSION_TIME_IN_DAYS")
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Copy, exp.TruncateTable)


def register(
    engine: SqlEngine,
    storage: Storage,
    add_tables: Callable[[list[TableSpec]], None],
    forget_tables: Callable[[], None],
) -> None:
    """Install the default path and the transaction statements on `engine`."""
    engine.register(r"(BEGIN|START\s+TRANSACTION)\s*(TRANSACTION|WORK)?\s*$", _begin)
    engine.register(r"COMMIT\b", _commit)
    engine.register(r"ROLLBACK\b", _rollback)
    engine.default = functools.partial(
        _default, storage=storage, add_tables=add_tables, forget_tables=forget_tables
    )


def _begin(session: Session, stmt: Statement) -> Result:
    session.begin()
    return Result.status("Statement executed successfully.")


def _commit(session: Session, stmt: Statement) -> Result:
    session.commit()
    return Result.status("Statement executed successfully.")


def _rollback(session: Session, stmt: Statement) -> Result:
    session.rollback()
    return Result.status("Statement executed successfully.")


def _default(
    session: Session,
    stmt: Statement,
    *,
    storage: Storage,
    add_tables: Callable[[list[TableSpec]], None],
    forget_tables: Callable[[], None],
) -> Result:
    expr = stmt.expr
    if expr is None:
        raise compilation_error(f"syntax error in '{' '.join(stmt.text.split())[:200]}'")
    if isinstance(expr, exp.Command):
        raise unsupported(stmt.text)
    if isinstance(expr, exp.Use):
        return _use(session, expr)
    if isinstance(expr, exp.Create) and (expr.kind or "").upper() in ("DATABASE", "SCHEMA"):
        return _landing_ddl(session, expr, storage, add_tables)
    if (
        isinstance(expr, exp.Create)
        and (expr.kind or "").upper() == "TABLE"
        and isinstance(expr.this, exp.Schema)
    ):
        return _landing_ddl(session, expr, storage, add_tables)
    if not isinstance(expr, _WRITES):
        sql = session.to_duckdb(expr, consume=False)
        columns, rows = session.execute(sql, session.params)
        if isinstance(expr, exp.Drop | exp.Alter):
            session.after.append(forget_tables)
        return Result(columns, rows)
    with session.transaction():
        sql = session.to_duckdb(expr, consume=True)
        columns, rows = session.execute(sql, session.params)
        for hook in session.engine.after_write:
            hook(session, expr, True)
    if isinstance(expr, exp.Create) and (expr.kind or "").upper() == "TABLE":
        session.after.append(forget_tables)
    return _dml_result(expr, columns, rows)


def _use(session: Session, expr: exp.Use) -> Result:
    kind_node = expr.args.get("kind")
    kind = kind_node.name.upper() if kind_node is not None else ""
    if kind in ("WAREHOUSE", "ROLE", "SECONDARY"):
        return Result.status("Statement executed successfully.")
    target = expr.this
    parts = (
        [p.upper() for p in (target.catalog, target.db, target.name) if p]
        if isinstance(target, exp.Table)
        else []
    )
    if len(parts) == 2:
        session.database, session.schema = parts
    elif len(parts) == 1 and kind == "SCHEMA":
        session.schema = parts[0]
    elif len(parts) == 1:
        session.database, session.schema = parts[0], "PUBLIC"
    else:
        raise compilation_error(f"cannot USE {expr.sql('snowflake')}")
    try:
        session.execute(f'USE "{session.database}"."{session.schema}"')
    except SqlFailure:
        if kind == "SCHEMA" or len(parts) == 2:
            raise
        session.execute(f'USE "{session.database}"')  # no PUBLIC schema in this database
    return Result.status("Statement executed successfully.")


def _landing_ddl(
    session: Session,
    expr: exp.Create,
    storage: Storage,
    add_tables: Callable[[list[TableSpec]], None],
) -> Result:
    try:
        action = translate(expr)
    except DdlError as err:
        raise unsupported(str(err)) from err
    if isinstance(action, CreateDatabase):
        try:
            storage.attach_sync(session.cur, action.name)
        except DdlError as err:
            raise compilation_error(str(err)) from err
        return Result.status(f"Database {action.name.upper()} successfully created.")
    session.execute(action.sql)
    table = action.table
    if table is not None:
        _keep_retention(session, expr, table)
        session.after.append(lambda: add_tables([table]))
        return Result.status(f"Table {table.name} successfully created.")
    return Result.status("Statement executed successfully.")


def _dml_result(
    expr: exp.Expr, columns: list[tuple[str, str]], rows: list[tuple[object, ...]]
) -> Result:
    label = next((v for k, v in _DML_LABELS.items() if isinstance(expr, k)), None)
    if label is not None and rows and len(rows[0]) == 1:
        count = int(str(rows[0][0] or 0))
        return Result([(label[0], "BIGINT")], [(count,)], {label[1]: count})
    if isinstance(expr, exp.Create):
        name = expr.this.name if isinstance(expr.this, exp.Table) else "object"
        return Result.status(
            f"{(expr.kind or 'object').title()} {name.upper()} successfully created."
        )
    return Result(columns, rows)


def _keep_retention(session: Session, expr: exp.Create, table: TableSpec) -> None:
    # DATA_RETENTION_TIME_IN_DAYS / MAX_DATA_EXTENSION_TIME_IN_DAYS decide when streams on the
    # table go stale (§5.1); ddl.translate drops the properties, so they are kept here, through
    # the ALTER TABLE … SET handler that `streams.py` registers.
    values = {
        p.name.upper(): p.args["value"].name
        for p in expr.find_all(exp.Property)
        if p.name.upper() in _RETENTION_PROPS and isinstance(p.args.get("value"), exp.Literal)
    }
    if not values:
        return
    keys = ", ".join(f"{k} = {float(v)}" for k, v in values.items())
    alter = f"ALTER TABLE {table.database}.{table.schema}.{table.name} SET {keys}"
    session.engine.run_statement(session, Statement(alter, None))
