"""Task runs on an in-memory DuckDB: a scheduled run re-reads its task before running."""

from __future__ import annotations

from pathlib import Path

import duckdb

from streamd.standin.objects import streams, task_graph, tasks
from streamd.standin.objects.tasks import body_statements
from streamd.standin.sql import default as sqldefault
from streamd.standin.sql.engine import (
    SqlEngine,
    parse_request,
)
from streamd.standin.storage.catalog import create_sync, now, records
from streamd.standin.storage.database import Storage


def test_task_body_block_is_split_into_statements() -> None:
    stmts = body_statements("BEGIN\n  DELETE FROM a;\n  INSERT INTO a SELECT 1;\nEND;")
    assert [s.text for s in stmts] == ["DELETE FROM a", "INSERT INTO a SELECT 1"]
    assert [s.text for s in body_statements("MERGE INTO a USING b ON a.x = b.x "
                                            "WHEN MATCHED THEN DELETE")] == [
        "MERGE INTO a USING b ON a.x = b.x WHEN MATCHED THEN DELETE"
    ]  # fmt: skip


def _engine(storage: Storage) -> SqlEngine:
    engine = SqlEngine()
    sqldefault.register(engine, storage, lambda _t: None, lambda: None)
    streams.register(engine)
    tasks.register(engine, lambda: None)
    return engine


def test_a_task_suspended_after_planning_does_not_run(tmp_path: Path) -> None:
    cur = duckdb.connect()
    cur.execute("ATTACH ':memory:' AS D")
    cur.execute('CREATE SCHEMA D."_STANDIN"')
    cur.execute("CREATE SCHEMA D.S")
    cur.execute("CREATE TABLE D.S.OUT (X INT)")
    create_sync(cur, "D")
    storage = Storage(tmp_path)  # only CREATE DATABASE would use it
    engine = _engine(storage)
    engine.run(
        cur,
        parse_request(
            "CREATE TASK D.S.T SCHEDULE = '1 minute' AS INSERT INTO D.S.OUT VALUES (1); "
            "ALTER TASK D.S.T RESUME"
        ),
        None,
        None,
        [],
    )
    planned = records(cur, 'SELECT * FROM D."_STANDIN"."TASKS"')[0]  # what the planner saw
    engine.run(cur, parse_request("ALTER TASK D.S.T SUSPEND"), None, None, [])
    when = now()
    assert task_graph.run_graph(engine, cur, "D", planned, when, "SCHEDULE", None) == "NOT_RUN"
    assert cur.execute("SELECT count(*) FROM D.S.OUT").fetchall() == [(0,)]
    assert cur.execute('SELECT count(*) FROM D."_STANDIN"."TASK_HISTORY"').fetchall() == [(0,)]
    # EXECUTE TASK runs a suspended task (Snowflake allows it for a root or standalone task).
    assert (
        task_graph.run_graph(engine, cur, "D", planned, when, "EXECUTE_TASK", None) == "SUCCEEDED"
    )
    assert cur.execute("SELECT count(*) FROM D.S.OUT").fetchall() == [(1,)]
    storage.close()
