"""The SQL engine: requests split into statements, dispatch order, commit hooks, name qualification."""

from __future__ import annotations

import duckdb
import pytest

from streamd import sqlsplit
from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    parse_request,
)


def texts(request: str) -> list[str]:
    return [stmt.text for stmt in parse_request(request)]


def test_split_keeps_blocks_case_and_strings_whole() -> None:
    text = (
        "CREATE TASK t AS BEGIN INSERT INTO x SELECT CASE WHEN a THEN 1 END FROM s; "
        "DELETE FROM y; END; SELECT 'a;b'; -- c;\nBEGIN; SELECT 2; COMMIT;"
    )
    assert texts(text) == [
        "CREATE TASK t AS BEGIN INSERT INTO x SELECT CASE WHEN a THEN 1 END FROM s; "
        "DELETE FROM y; END",
        "SELECT 'a;b'",
        "BEGIN",  # a statement starts at its first token; the comment before it is not part of it
        "SELECT 2",
        "COMMIT",
    ]
    assert texts("  ;; -- only a comment\n") == []


def test_end_if_inside_a_block_splits_as_the_client_splits() -> None:
    """The stand-in splits requests with the client's splitter: `END IF` closes the IF, not the
    BEGIN, so the task body stays one statement."""
    text = (
        "CREATE TASK t SCHEDULE = '1 minute' AS BEGIN\n"
        "  IF (EXISTS (SELECT 1 FROM s)) THEN\n    INSERT INTO x SELECT 1;\n  END IF;\n"
        "  DELETE FROM y;\nEND;\nSELECT 2;"
    )
    client = [stmt.text for stmt in sqlsplit.split_statements(text)]
    assert texts(text) == client
    assert len(client) == 2
    assert client[0].endswith("DELETE FROM y;\nEND")


def test_an_unterminated_block_is_a_compilation_error() -> None:
    with pytest.raises(SqlFailure, match="cannot split the request"):
        parse_request("CREATE TASK t SCHEDULE = '1 minute' AS BEGIN SELECT 1;")


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
