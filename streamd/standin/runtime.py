"""Wires the SQL engine: the default path, Snowflake objects, and their background schedulers."""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from streamd.standin.exports import statements as exports
from streamd.standin.objects import dynamic_tables, show, stages, streams, tasks, warehouses
from streamd.standin.objects.loops import RefreshLoop, TaskLoop
from streamd.standin.snowpipe import sql as snowpipe_sql
from streamd.standin.snowpipe.loader import Snowpipe
from streamd.standin.sql import default as sqldefault
from streamd.standin.sql import flatten
from streamd.standin.sql.engine import SqlEngine
from streamd.standin.streaming.channels import StandinState


@dataclass
class SqlRuntime:
    """The engine the SQL API dispatches to, plus the loops that run tasks and refreshes."""

    engine: SqlEngine
    snowpipe: Snowpipe
    """Classic pipes (CREATE PIPE here; insertFiles and friends in `http/snowpipe.py`)."""
    task_loop: TaskLoop
    refresh_loop: RefreshLoop

    @classmethod
    def create(cls, state: StandinState, *, task_minute_s: float = 60.0) -> SqlRuntime:
        """An engine with every statement handler registered; `task_minute_s` scales schedules."""
        engine = SqlEngine()
        sqldefault.register(engine, state.storage, state.add_tables, state.forget_tables)
        streams.register(engine)
        show.register(engine)
        task_loop = TaskLoop(state.storage, engine, task_minute_s)
        tasks.register(engine, task_loop.poke)
        refresh_loop = RefreshLoop(state.storage, engine, task_minute_s)
        dynamic_tables.register(engine, refresh_loop.poke)
        stages.register(engine, state.storage.data_dir)
        exports.register(engine, state.storage.data_dir)
        warehouses.register(engine, state.storage.data_dir)
        flatten.register(engine)
        snowpipe = Snowpipe(state, state.storage.data_dir)
        snowpipe_sql.register(engine, snowpipe)
        return cls(engine, snowpipe, task_loop, refresh_loop)

    async def run(self) -> None:
        """Run the schedulers until cancelled."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.task_loop.run)
            tg.start_soon(self.refresh_loop.run)
            await self.snowpipe.run()
