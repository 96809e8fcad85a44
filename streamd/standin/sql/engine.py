"""The stand-in's SQL engine: split a request into statements, dispatch each, run it on DuckDB.

Everything runs synchronously on the DuckDB writer thread (`Storage.write(engine.run)`), except a
lone read-only query, which gets a read cursor. Statements Snowflake has and DuckDB lacks (streams,
tasks, dynamic tables, SHOW …, Iceberg, unloads) are claimed by registered handlers; the rest is
translated with sqlglot and executed. A statement nothing can run fails with a Snowflake-style
compilation error; it is never skipped.

Registering a handler (e.g. in `exports/statements.py`)::

    def register(engine: SqlEngine) -> None:
        engine.register(r"CREATE\\s+(OR\\s+REPLACE\\s+)?ICEBERG\\s+TABLE", create_iceberg)

    def create_iceberg(session: Session, stmt: Statement) -> Result:
        ...  # stmt.text is the raw statement, stmt.expr its sqlglot parse (or None)
        return Result.status("Table X successfully created.")

`register` takes a regex (matched case-insensitively at the start of the statement text, comments
stripped) or a predicate `Callable[[Statement], bool]`; the first match in registration order wins.
Handlers run on the writer thread with `session.cur`; raise `SqlFailure` for errors. Then call
`register(engine)` where the engine is built (`runtime.py`). Rewriters
(`engine.register_rewriter`) transform parsed statements before translation (stream references,
table functions, FLATTEN); `engine.after_write` hooks run inside a DML statement's transaction;
`engine.register_table_function` serves an `INFORMATION_SCHEMA.<NAME>(…)` table function.

Consuming a stream inside a DML-like handler (offset advances only if the statement commits)::

    with session.transaction():                       # BEGIN … COMMIT unless already inside one
        sql = session.to_duckdb(select_expr, consume=True)   # stream refs → their pending changes
        columns, rows = session.execute(sql)
        ...                                           # write files etc.; raise to roll back

`to_duckdb(…, consume=True)` replaces every stream reference with its change rows (with
METADATA$ACTION/ISUPDATE/ROW_ID) and registers the streams' offsets to move when the enclosing
transaction commits. With `consume=False` (plain SELECT) the offsets never move.
`session.on_commit(fn)` runs `fn` inside the transaction just before its COMMIT.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from streamd import sqlsplit
from streamd.standin.sql.text import short as _short
from streamd.standin.sql.text import split_top_level_as, strip_comments
from streamd.standin.storage.duck import Cursor, quote

__all__ = ["Handler", "Result", "Rewriter", "Session", "SqlEngine", "SqlFailure", "Statement"]
__all__ += ["split_top_level_as", "strip_comments"]

# sqlglot logs a warning for every statement it can only keep as a Command (CREATE STREAM, SHOW
# TASKS, …); those are exactly the ones our handlers claim, so the warning is noise here.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


class SqlFailure(Exception):
    """A statement that failed: rendered as a 422 QueryFailureStatus (§4.2, §4.6)."""

    def __init__(self, code: str, sql_state: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sql_state = sql_state
        self.message = message
        self.statement_index: int | None = None
        """Which statement of a multi-statement request failed (set by `SqlEngine.run`)."""


def compilation_error(message: str) -> SqlFailure:
    """Snowflake's generic `SQL compilation error` (code 001003, sqlState 42000)."""
    return SqlFailure("001003", "42000", f"SQL compilation error:\n{message}")


def unsupported(text: str) -> SqlFailure:
    """What the stand-in cannot run: Snowflake's `Unsupported feature` (000002, 0A000)."""
    return SqlFailure("000002", "0A000", f"Unsupported feature in the stand-in: {_short(text)}")


def does_not_exist(kind: str, name: str) -> SqlFailure:
    """Snowflake's object-not-found compilation error (002003, 02000)."""
    return SqlFailure(
        "002003",
        "02000",
        f"SQL compilation error:\n{kind} '{name}' does not exist or not authorized.",
    )


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a request: its text and sqlglot's Snowflake parse (None if unparsable)."""

    text: str
    expr: exp.Expr | None


@dataclass(slots=True)
class Result:
    """A statement's outcome: columns as (name, DuckDB type name), rows, and DML stats."""

    columns: list[tuple[str, str]]
    rows: list[tuple[Any, ...]]
    stats: dict[str, int] | None = None

    @classmethod
    def status(cls, message: str) -> Result:
        """The one-row `status` result of DDL and commands."""
        return cls([("status", "VARCHAR")], [(message,)])


Handler = Callable[["Session", Statement], Result]
Rewriter = Callable[["Session", exp.Expr, bool], exp.Expr]
TableFunction = Callable[["Session", str, dict[str, str]], str]
"""`fn(session, db, named_args)` → DuckDB SQL producing the function's rows."""
"""`(session, expr, consume) -> expr`: replaces Snowflake-only pieces before translation."""


class Session:
    """One request's execution context on one cursor: default namespace and transaction state."""

    def __init__(
        self, engine: SqlEngine, cur: Cursor, database: str | None, schema: str | None
    ) -> None:
        self.engine = engine
        self.cur = cur
        self.database = database.upper() if database else None
        self.schema = schema.upper() if schema else None
        self.params: list[object] = []
        self.explicit_txn = False
        self.txn_cache: dict[str, Any] = {}
        """Per-transaction memo (e.g. a stream's change rows, so every read sees one snapshot)."""
        self._on_commit: list[Callable[[], None]] = []
        self._splices: dict[str, str] = {}
        self.after: list[Callable[[], None]] = []
        """Effects to apply on the event loop once the request is done (e.g. table cache)."""

    # ---- names -------------------------------------------------------------------------

    def qualify(self, name: str | exp.Table) -> tuple[str, str, str]:
        """(DATABASE, SCHEMA, NAME) of a 1–3 part name, defaults from the request."""
        parts = _name_parts(name)
        while len(parts) < 3:
            default = self.schema if len(parts) == 1 else self.database
            if default is None:
                raise compilation_error(
                    f"Cannot perform operation. This session does not have a current "
                    f"{'schema' if len(parts) == 1 else 'database'}. Qualify {'.'.join(parts)}."
                )
            parts.insert(0, default)
        return parts[0], parts[1], parts[2]

    # ---- execution -----------------------------------------------------------------------

    def execute(
        self, sql: str, params: list[object] | None = None
    ) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
        """Run DuckDB SQL on this session's cursor; DuckDB errors become `SqlFailure`."""
        try:
            result = self.cur.execute(sql, params) if params else self.cur.execute(sql)
            description = result.description or []
            rows = result.fetchall() if description else []
        except duckdb.Error as err:
            raise failure_of(err) from err
        return [(d[0], str(d[1])) for d in description], rows

    def to_duckdb(self, expr: exp.Expr, *, consume: bool) -> str:
        """Apply the registered rewriters (streams, table functions, SYSTEM$…) and translate."""
        expr = expr.copy()
        for rewrite in self.engine.rewriters:
            expr = rewrite(self, expr, consume)
        sql = translate_expr(expr)
        for placeholder, raw in self._splices.items():
            sql = sql.replace(placeholder, f"({raw})")
        self._splices.clear()
        return sql

    def splice(self, duckdb_sql: str, alias: str | None) -> exp.Table:
        """A table reference that `to_duckdb` renders as `(duckdb_sql) AS alias`.

        For rewriters: raw DuckDB SQL goes in verbatim instead of round-tripping through sqlglot.
        """
        placeholder = f"__splice_{len(self._splices)}__"
        self._splices[placeholder] = duckdb_sql
        ref = exp.to_table(placeholder)
        if alias:
            ref.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        return ref

    def on_commit(self, fn: Callable[[], None]) -> None:
        """Run `fn` (on the cursor, inside the transaction) just before the next COMMIT."""
        self._on_commit.append(fn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN … COMMIT around the block (rolled back on error); a no-op inside BEGIN … COMMIT."""
        if self.explicit_txn:
            yield
            return
        self.execute("BEGIN")
        try:
            yield
            self._run_commit_hooks()
            self.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        finally:
            self.txn_cache.clear()

    def begin(self) -> None:
        """Explicit `BEGIN`."""
        if not self.explicit_txn:
            self.execute("BEGIN")
            self.explicit_txn = True

    def commit(self) -> None:
        """Explicit `COMMIT` (stream offsets read in the transaction move with it)."""
        if not self.explicit_txn:
            return
        try:
            self._run_commit_hooks()
            self.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        finally:
            self.explicit_txn = False
            self.txn_cache.clear()

    def rollback(self) -> None:
        """`ROLLBACK`; pending offset moves are dropped."""
        self._on_commit.clear()
        self.txn_cache.clear()
        self.explicit_txn = False
        with contextlib.suppress(duckdb.Error):
            self.cur.execute("ROLLBACK")

    def _run_commit_hooks(self) -> None:
        hooks, self._on_commit = self._on_commit, []
        for hook in hooks:
            hook()


@dataclass
class SqlEngine:
    """Statement dispatcher: registered handlers first, then the default sqlglot → DuckDB path."""

    default: Handler | None = None
    """Runs statements no handler claims (set by `sql/default.py`)."""
    rewriters: list[Rewriter] = field(default_factory=list)
    after_write: list[Rewriter] = field(default_factory=list)
    """Called inside a DML statement's transaction once it ran (e.g. stream bookkeeping)."""
    table_functions: dict[str, TableFunction] = field(default_factory=dict)
    """INFORMATION_SCHEMA table functions by upper-case name."""
    _handlers: list[tuple[Callable[[Statement], bool], Handler]] = field(default_factory=list)

    def register(self, match: str | Callable[[Statement], bool], handler: Handler) -> None:
        """Claim statements whose text starts with regex `match` (or for which it returns True)."""
        if isinstance(match, str):
            pattern = re.compile(match, re.I | re.S)
            self._handlers.append((lambda s: pattern.match(strip_comments(s.text)) is not None,
                                   handler))  # fmt: skip
        else:
            self._handlers.append((match, handler))

    def register_rewriter(self, rewriter: Rewriter) -> None:
        """Add an expression rewriter applied by `Session.to_duckdb`."""
        self.rewriters.append(rewriter)

    def register_table_function(self, name: str, fn: TableFunction) -> None:
        """Serve `INFORMATION_SCHEMA.<name>(…)` with `fn`."""
        self.table_functions[name.upper()] = fn

    def handler_for(self, stmt: Statement) -> Handler | None:
        """The handler claiming `stmt`, or None for the default path."""
        return next((h for match, h in self._handlers if match(stmt)), None)

    def is_plain_read(self, stmt: Statement) -> bool:
        """True for a query the default path can run on a read cursor (no side effects)."""
        if self.handler_for(stmt) is not None or stmt.expr is None:
            return False
        if "SYSTEM$" in stmt.text.upper():  # SYSTEM$STREAM_HAS_DATA refreshes staleness
            return False
        return isinstance(stmt.expr, exp.Query)

    def run(
        self,
        cur: Cursor,
        statements: list[Statement],
        database: str | None,
        schema: str | None,
        params: list[object],
    ) -> tuple[list[Result], list[Callable[[], None]]]:
        """Run statements in order on `cur`; stops at the first failure (§4.7).

        Returns each statement's result and the effects to apply on the event loop. An explicit
        transaction still open at the end is rolled back.
        """
        session = Session(self, cur, database, schema)
        session.params = params
        results: list[Result] = []
        try:
            if session.database:
                target = quote(session.database)
                if session.schema:
                    target += "." + quote(session.schema)
                session.execute(f"USE {target}")
            for index, stmt in enumerate(statements):
                try:
                    results.append(self.run_statement(session, stmt))
                except SqlFailure as err:
                    err.statement_index = index
                    raise
        finally:
            if session.explicit_txn:
                session.rollback()
        return results, session.after

    def run_statement(self, session: Session, stmt: Statement) -> Result:
        """Dispatch one statement within `session` (used for task bodies too)."""
        handler = self.handler_for(stmt) or self.default
        if handler is None:
            raise unsupported(stmt.text)
        try:
            return handler(session, stmt)
        except duckdb.Error as err:  # a handler's bookkeeping query failed
            raise failure_of(err) from err


def parse_request(text: str) -> list[Statement]:
    """Split a request into statements as Snowflake's clients do (`streamd/sqlsplit.py`) and
    parse each (a parse failure keeps `expr` None)."""
    out: list[Statement] = []
    try:
        parts = [s.text for s in sqlsplit.split_statements(text)]
    except sqlsplit.SplitError as err:
        raise compilation_error(f"cannot split the request into statements: {err}") from err
    for part in parts:
        expr: exp.Expr | None
        try:
            parsed = [e for e in sqlglot.parse(part, read="snowflake") if e is not None]
            expr = parsed[0] if len(parsed) == 1 else None
        except SqlglotError:
            expr = None
        out.append(Statement(part, expr))
    return out


def translate_expr(expr: exp.Expr) -> str:
    """A Snowflake expression as DuckDB SQL (with the fixes raw sqlglot needs)."""

    def fix(node: exp.Expr) -> exp.Expr:
        # `col:path::STRING` must yield the unquoted text (sqlglot keeps JSON quotes,
        # local-target-notes §5.2): a text cast of a JSON extract becomes `->>`.
        if (
            isinstance(node, exp.Cast)
            and isinstance(node.this, exp.JSONExtract)
            and node.to.is_type(*exp.DataType.TEXT_TYPES)
        ):
            inner = node.this
            return exp.JSONExtractScalar(this=inner.this, expression=inner.expression)
        return node

    return expr.transform(fix).sql(dialect="duckdb")


def failure_of(err: duckdb.Error) -> SqlFailure:
    """A DuckDB error as the nearest Snowflake error (code, sqlState)."""
    text = str(err).splitlines()[0]
    if isinstance(err, duckdb.ParserException):
        return SqlFailure("001003", "42000", f"SQL compilation error: {text}")
    if isinstance(err, duckdb.CatalogException):
        return SqlFailure("002003", "42S02", f"SQL compilation error: {text}")
    if isinstance(err, duckdb.BinderException):
        return SqlFailure("000904", "42000", f"SQL compilation error: {text}")
    if isinstance(err, duckdb.ConstraintException):
        return SqlFailure("100072", "22000", text)
    return SqlFailure("100000", "22000", text)


def _name_parts(name: str | exp.Table) -> list[str]:
    if isinstance(name, exp.Table):
        raw = [p for p in (name.catalog, name.db, name.name) if p]
        quoted = [
            bool(i.args.get("quoted"))
            for i in (name.args.get("catalog"), name.args.get("db"), name.this)
            if isinstance(i, exp.Identifier)
        ]
        if len(quoted) == len(raw):
            return [p if q else p.upper() for p, q in zip(raw, quoted, strict=True)]
        return [p.upper() for p in raw]
    parts = []
    for piece in re.findall(r'"((?:[^"]|"")*)"|([^.\s]+)', name.strip()):
        parts.append(piece[0].replace('""', '"') if piece[0] else piece[1].upper())
    return parts
