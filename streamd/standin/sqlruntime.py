"""Wires the SQL engine: the default path, Snowflake objects, and their background schedulers."""

from __future__ import annotations

from dataclasses import dataclass

from streamd.standin import sqldefault
from streamd.standin.sqlengine import SqlEngine
from streamd.standin.state import StandinState


@dataclass
class SqlRuntime:
    """The engine the SQL API dispatches to, plus the loops that run tasks and refreshes."""

    engine: SqlEngine

    @classmethod
    def create(cls, state: StandinState) -> SqlRuntime:
        """An engine with every statement handler registered."""
        engine = SqlEngine()
        sqldefault.register(engine, state.storage, state.add_tables, state.forget_tables)
        return cls(engine)

    async def run(self) -> None:
        """Run the schedulers until cancelled."""
