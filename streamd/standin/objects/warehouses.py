"""Warehouses: CREATE/ALTER/DROP WAREHOUSE and SHOW WAREHOUSES.

The stand-in has one compute, DuckDB's writer, so a warehouse is only a name: setup scripts that
create one for their tasks and dynamic tables (`sql/medallion/`) run unchanged. Names persist in
`<data_dir>/warehouses.json`, so DROP and ALTER of an unknown warehouse fail as on Snowflake, and
size, suspend and resume settings are accepted and kept as text without effect (tolerant: there
is nothing to size).
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import orjson

from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    does_not_exist,
    strip_comments,
)

_NAME = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE = re.compile(
    rf"CREATE\s+(?P<replace>OR\s+REPLACE\s+)?WAREHOUSE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_NAME})(?P<rest>.*)$",
    re.I | re.S,
)
_ALTER = re.compile(
    rf"ALTER\s+WAREHOUSE\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_NAME})(?P<rest>.*)$", re.I | re.S
)
_DROP = re.compile(rf"DROP\s+WAREHOUSE\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_NAME})\s*$", re.I | re.S)


class Warehouses:
    """The warehouse names of one stand-in data dir."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "warehouses.json"
        self._lock = threading.Lock()

    def load(self) -> dict[str, str]:
        """Name → settings text."""
        if not self._path.exists():
            return {}
        data: dict[str, str] = orjson.loads(self._path.read_bytes())
        return data

    def save(self, data: dict[str, str]) -> None:
        """Write atomically."""
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(data))
        os.replace(tmp, self._path)

    def handle(self, session: Session, stmt: Statement) -> Result:
        """Run one CREATE/ALTER/DROP WAREHOUSE or SHOW WAREHOUSES statement."""
        text = strip_comments(stmt.text).rstrip(";").strip()
        with self._lock:
            data = self.load()
            if re.match(r"SHOW\s+WAREHOUSES\b", text, re.I):
                return Result(
                    [("name", "VARCHAR"), ("state", "VARCHAR"), ("comment", "VARCHAR")],
                    [(name, "SUSPENDED", settings) for name, settings in sorted(data.items())],
                )
            if match := _CREATE.match(text):
                name = _ident(match["name"])
                if name in data and match["ine"]:
                    return Result.status(f"{name} already exists, statement succeeded.")
                if name in data and not match["replace"]:
                    raise SqlFailure("002002", "42710", f"Object '{name}' already exists.")
                data[name] = " ".join(match["rest"].split())
                self.save(data)
                return Result.status(f"Warehouse {name} successfully created.")
            match = _ALTER.match(text) or _DROP.match(text)
            if match is None:
                raise SqlFailure("001003", "42000", f"SQL compilation error: {text[:80]}")
            name = _ident(match["name"])
            if name not in data:
                if match["ie"]:
                    return Result.status("Statement executed successfully.")
                raise does_not_exist("Warehouse", name)
            if text.upper().startswith("DROP"):
                del data[name]
                self.save(data)
                return Result.status(f"{name} successfully dropped.")
            return Result.status("Statement executed successfully.")


def _ident(part: str) -> str:
    return part[1:-1].replace('""', '"') if part.startswith('"') else part.upper()


def register(engine: SqlEngine, data_dir: Path) -> None:
    """Install the warehouse statements on `engine`."""
    warehouses = Warehouses(data_dir)
    engine.register(
        r"((CREATE\s+(OR\s+REPLACE\s+)?|ALTER\s+|DROP\s+)WAREHOUSE|SHOW\s+WAREHOUSES)\b",
        warehouses.handle,
    )
