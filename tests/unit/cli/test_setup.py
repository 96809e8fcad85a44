"""`streamd setup` planning: number order across domains, domain choice, file:line, dry run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamd.cli.app import app
from streamd.cli.setup import plan
from streamd.errors import ConfigError, SqlError


def _tree(root: Path) -> Path:
    (root / "b").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "a" / "01_db.sql").write_text("CREATE DATABASE A;\n")
    (root / "a" / "10_pipe.sql").write_text(
        "-- c\nCREATE TASK t AS BEGIN SELECT 1; END;\nSELECT 2;"
    )
    (root / "b" / "02_tables.sql").write_text("\n\nCREATE TABLE B.S.T (x INT);")
    return root


def test_plan_orders_by_number_across_domains(tmp_path: Path) -> None:
    planned = plan(root=_tree(tmp_path))
    assert [(p.where, p.text) for p in planned] == [
        ("sql/a/01_db.sql:1", "CREATE DATABASE A"),
        ("sql/b/02_tables.sql:3", "CREATE TABLE B.S.T (x INT)"),
        ("sql/a/10_pipe.sql:2", "CREATE TASK t AS BEGIN SELECT 1; END"),
        ("sql/a/10_pipe.sql:3", "SELECT 2"),
    ]
    assert [p.where for p in plan(["b"], root=tmp_path)] == ["sql/b/02_tables.sql:3"]


def test_unknown_domain_and_broken_file(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    with pytest.raises(ConfigError, match="choose from a, b"):
        plan(["nope"], root=root)
    (root / "b" / "03_bad.sql").write_text("SELECT 'open;")
    with pytest.raises(SqlError, match=r"sql/b/03_bad\.sql: unterminated string"):
        plan(["b"], root=root)


def test_shipped_sql_plans_in_dependency_order() -> None:
    wheres = [p.where for p in plan()]
    first = {d: next(i for i, w in enumerate(wheres) if w.startswith(f"sql/{d}/")) for d in
             ("retail", "customers", "cdc", "monitoring")}  # fmt: skip
    assert first["retail"] < first["customers"] < first["cdc"] < first["monitoring"]


def test_dry_run_sends_nothing() -> None:
    result = CliRunner().invoke(app, ["setup", "--dry-run", "--domain", "cdc"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("sql/cdc/30_cdc_exports.sql:")
    assert lines[-1].endswith("statements (dry run: nothing sent)")
