"""SqlEngine dispatch on an in-memory DuckDB: handler precedence, refusals, commit hooks."""

from __future__ import annotations

import duckdb
import pytest

from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    parse_request,
)


def _engine(calls: list[str]) -> SqlEngine:
    engine = SqlEngine()

    def default(session: Session, stmt: Statement) -> Result:
        assert stmt.expr is not None
        with session.transaction():
            columns, rows = session.execute(session.to_duckdb(stmt.expr, consume=True))
        return Result(columns, rows)

    engine.default = default
    engine.register(r"CREATE\s+STREAM\b", lambda s, t: calls.append("first") or Result.status("1"))
    engine.register(r"CREATE\s+STREAM\b", lambda s, t: calls.append("second") or Result.status("2"))
    engine.register(lambda t: "MAGIC" in t.text, lambda s, t: Result([("n", "BIGINT")], [(42,)]))
    return engine


def test_first_registered_handler_wins_and_predicates_work() -> None:
    calls: list[str] = []
    cur = duckdb.connect()
    results, _ = _engine(calls).run(
        cur, parse_request("/* c */ CREATE STREAM s ON TABLE t; SELECT 'MAGIC'; SELECT 1 + 1 AS x"),
        None, None, [],
    )  # fmt: skip
    assert calls == ["first"]
    assert [r.rows for r in results] == [[("1",)], [(42,)], [(2,)]]


def test_unclaimed_snowflake_only_statement_is_refused() -> None:
    engine = SqlEngine()
    with pytest.raises(SqlFailure) as err:
        engine.run(duckdb.connect(), parse_request("CREATE ALERT a"), None, None, [])
    assert (err.value.code, err.value.sql_state) == ("000002", "0A000")


def test_commit_hooks_run_only_when_the_transaction_commits() -> None:
    cur = duckdb.connect()
    cur.execute("CREATE TABLE t (x INT)")
    session = Session(SqlEngine(), cur, None, None)
    with session.transaction():
        session.on_commit(lambda: session.execute("INSERT INTO t VALUES (1)") and None)

    def failing() -> None:
        with session.transaction():
            session.on_commit(lambda: session.execute("INSERT INTO t VALUES (2)") and None)
            session.execute("SELECT * FROM missing")

    with pytest.raises(SqlFailure):
        failing()
    assert cur.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_qualify_uses_session_defaults_and_keeps_quoted_case() -> None:
    session = Session(SqlEngine(), duckdb.connect(), "db", "sch")
    assert session.qualify("t") == ("DB", "SCH", "T")
    assert session.qualify('other."MiXed"') == ("DB", "OTHER", "MiXed")
    with pytest.raises(SqlFailure):
        Session(SqlEngine(), duckdb.connect(), None, None).qualify("t")
