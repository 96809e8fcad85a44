"""The statement splitter: strings, comments, $$ blocks and BEGIN … END task bodies."""

from __future__ import annotations

import pytest

from streamd.sqlsplit import SplitError, split_statements


def texts(script: str) -> list[str]:
    return [s.text for s in split_statements(script)]


def test_plain_statements_and_lines() -> None:
    script = "-- header; not a statement\nCREATE TABLE a (x INT);\n\nSELECT 1;\nSELECT 2"
    statements = split_statements(script)
    assert [s.text for s in statements] == ["CREATE TABLE a (x INT)", "SELECT 1", "SELECT 2"]
    assert [s.line for s in statements] == [2, 4, 5]


def test_semicolons_inside_strings_identifiers_and_comments() -> None:
    script = (
        "SELECT 'a;b', 'it''s;', 'back\\';slash' AS \"x;y\"; /* c; d */ SELECT 2 // e; f\n;"
        "SELECT 3 -- g;\n;"
    )
    assert texts(script) == [
        "SELECT 'a;b', 'it''s;', 'back\\';slash' AS \"x;y\"",
        "SELECT 2 // e; f",
        "SELECT 3 -- g;",
    ]


def test_dollar_blocks() -> None:
    script = "CREATE FUNCTION f() RETURNS INT AS $$ a; b; $$;\nSELECT 1;"
    assert texts(script) == ["CREATE FUNCTION f() RETURNS INT AS $$ a; b; $$", "SELECT 1"]


def test_task_body_begin_end_with_nested_blocks() -> None:
    script = """
CREATE OR REPLACE TASK t
  SCHEDULE = '1 MINUTE'
  WHEN SYSTEM$STREAM_HAS_DATA('s')
AS
BEGIN
  BEGIN TRANSACTION;
  DELETE FROM x WHERE id IN (SELECT id FROM s WHERE METADATA$ACTION = 'DELETE');
  IF (1 = 1) THEN
    SELECT CASE WHEN a THEN 1 ELSE 2 END FROM y;
  END IF;
  CREATE TABLE IF NOT EXISTS z (a INT);
  FOR i IN 1 TO 3 DO
    SELECT 1;
  END FOR;
  COMMIT;
END;
ALTER TASK t RESUME;
"""
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[0].text.startswith("CREATE OR REPLACE TASK t")
    assert statements[0].text.endswith("COMMIT;\nEND")
    assert statements[0].line == 2
    assert statements[1].text == "ALTER TASK t RESUME"
    assert statements[1].line == 18


def test_transaction_begin_is_not_a_block() -> None:
    assert texts("BEGIN; INSERT INTO a VALUES (1); COMMIT;") == [
        "BEGIN",
        "INSERT INTO a VALUES (1)",
        "COMMIT",
    ]
    assert texts("BEGIN TRANSACTION; SELECT 1; COMMIT") == [
        "BEGIN TRANSACTION",
        "SELECT 1",
        "COMMIT",
    ]


def test_declare_block_and_sql_case() -> None:
    script = "DECLARE n INT; BEGIN n := 1; RETURN n; END; SELECT CASE WHEN 1=1 THEN 'a' END;"
    assert texts(script) == [
        "DECLARE n INT; BEGIN n := 1; RETURN n; END",
        "SELECT CASE WHEN 1=1 THEN 'a' END",
    ]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("SELECT 'open", "string literal at line 1"),
        ("SELECT 1;\n/* open", "comment at line 2"),
        ("SELECT $$ x", r"\$\$ block"),
        ("CREATE TASK t AS BEGIN SELECT 1;", "BEGIN"),
    ],
)
def test_unterminated(script: str, message: str) -> None:
    with pytest.raises(SplitError, match=message):
        split_statements(script)
