"""Wires the SQL engine: the default path, Snowflake objects, and their background schedulers."""

from __future__ import annotations

from dataclasses import dataclass

from streamd.standin import pipe_sql, sqldefault, streams
from streamd.standin.pipe_loader import Snowpipe
from streamd.standin.sqlengine import SqlEngine
from streamd.standin.state import StandinState


@dataclass
class SqlRuntime:
    """The engine the SQL API dispatches to, plus the loops that run tasks and refreshes."""

    engine: SqlEngine
    snowpipe: Snowpipe
    """Classic pipes (CREATE PIPE here; insertFiles and friends in `routes_snowpipe.py`)."""

    @classmethod
    def create(cls, state: StandinState) -> SqlRuntime:
        """An engine with every statement handler registered."""
        engine = SqlEngine()
        sqldefault.register(engine, state.storage, state.add_tables, state.forget_tables)
        streams.register(engine)
        snowpipe = Snowpipe(state, state.storage.data_dir)
        pipe_sql.register(engine, snowpipe)
        return cls(engine, snowpipe)

    async def run(self) -> None:
        """Run the schedulers until cancelled."""
        await self.snowpipe.run()
