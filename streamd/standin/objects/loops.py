"""The background loops that run due tasks and refresh dynamic tables on the writer thread.

Each loop plans on a read cursor (which task roots or tables are due, and when the next one is),
runs what is due through `Storage.write`, then sleeps until the next due time or until a DDL
statement pokes it. `minute_s` scales time: a '1 minute' schedule or target lag waits `minute_s`
seconds (tests run minute tasks every second).
"""

# ruff: noqa: S608 - identifiers go through hidden(); no values are interpolated.
from __future__ import annotations

import functools
import json
import logging
from abc import ABC, abstractmethod
from datetime import datetime, timedelta

import anyio
import duckdb

from streamd.standin.objects import dynamic_tables, task_graph
from streamd.standin.objects.cron import ScheduleError, parse_schedule
from streamd.standin.sql.engine import SqlEngine, SqlFailure
from streamd.standin.storage.catalog import databases, hidden, now, records
from streamd.standin.storage.database import Storage
from streamd.standin.storage.duck import Cursor

log = logging.getLogger("streamd.standin.objects")
ERROR_RETRY_S = 5.0
"""After a failed cycle (e.g. a database detached mid-plan), look again this much later."""
IDLE_WAKE_S = 60.0
"""With nothing scheduled, re-plan this often anyway (cheap; catches restarts of the data dir)."""

TaskKey = tuple[str, str, str, str]  # database, schema, name, task id + schedule


class _Loop(ABC):
    what = "scheduler"

    def __init__(self, storage: Storage, engine: SqlEngine, minute_s: float) -> None:
        self.storage = storage
        self.engine = engine
        self.scale = minute_s / 60.0
        self._wake = anyio.Event()

    async def run(self) -> None:
        """Run until cancelled; a failing cycle is logged and retried (the stand-in stays up)."""
        while True:
            try:
                wake = await self._cycle()
            except (duckdb.Error, SqlFailure) as err:
                log.warning("%s failed: %s; retrying in %.0f s", self.what, err, ERROR_RETRY_S)
                wake = now() + timedelta(seconds=ERROR_RETRY_S)
            if wake is not None and wake <= now():
                continue
            await self._sleep_until(wake)

    @abstractmethod
    async def _cycle(self) -> datetime | None:
        """Run what is due; return when to look again (None: only when poked or idle)."""

    def poke(self) -> None:
        """Re-plan now (call on the event loop after objects changed)."""
        self._wake.set()

    async def _sleep_until(self, at: datetime | None) -> None:
        delay = IDLE_WAKE_S if at is None else max(0.0, (at - now()).total_seconds())
        with anyio.move_on_after(delay):
            await self._wake.wait()
        self._wake = anyio.Event()


class TaskLoop(_Loop):
    """Runs started root tasks on their schedules (children follow in `task_graph.run_graph`)."""

    def __init__(self, storage: Storage, engine: SqlEngine, minute_s: float) -> None:
        super().__init__(storage, engine, minute_s)
        self._next: dict[TaskKey, datetime] = {}

    what = "task scheduler"

    async def _cycle(self) -> datetime | None:
        roots = await self.storage.read(self._roots)
        moment = now()
        self._next = {key: self._next.get(key) or self._first(task, moment)
                      for key, task in roots.items()}  # fmt: skip
        for key, at in sorted(self._next.items(), key=lambda kv: kv[1]):
            if at > now():
                continue
            task = roots[key]
            following = self._after(task, max(at, now()))
            self._next[key] = following
            await self.storage.write(
                functools.partial(
                    task_graph.run_graph, self.engine, db=key[0], root=task, scheduled=at,
                    origin="SCHEDULE", next_time=following,
                )
            )  # fmt: skip
        return min(self._next.values(), default=None)

    def _first(self, task: dict[str, object], moment: datetime) -> datetime:
        return self._after(task, moment)

    def _after(self, task: dict[str, object], moment: datetime) -> datetime:
        try:
            schedule = parse_schedule(str(task["SCHEDULE"]))
        except ScheduleError:
            return moment + timedelta(days=365)  # validated at CREATE; unreachable in practice
        if schedule.interval_s is not None:
            return moment + timedelta(seconds=schedule.interval_s * self.scale)
        if self.scale == 1.0:
            return schedule.next_after(moment)
        return moment + timedelta(seconds=schedule.period_s(moment) * self.scale)

    @staticmethod
    def _roots(cur: Cursor) -> dict[TaskKey, dict[str, object]]:
        found: dict[TaskKey, dict[str, object]] = {}
        for db in databases(cur):
            for task in records(
                cur,
                f"SELECT * FROM {hidden(db, 'TASKS')} WHERE STATE = 'started' "
                "AND SCHEDULE IS NOT NULL",
            ):
                if json.loads(str(task["PREDECESSORS"])):
                    continue
                # The schedule is part of the key: ALTER TASK … SET SCHEDULE starts a new clock.
                version = f"{task['ID']}:{task['SCHEDULE']}"
                found[(db, str(task["SCHEMA_NAME"]), str(task["NAME"]), version)] = task
        return found


class RefreshLoop(_Loop):
    """Refreshes RUNNING dynamic tables before they fall behind their target lag."""

    def __init__(self, storage: Storage, engine: SqlEngine, minute_s: float) -> None:
        super().__init__(storage, engine, minute_s)
        self._hold: dict[tuple[str, str, str], datetime] = {}
        """A table whose refresh failed waits half its lag before the next try (no busy loop)."""

    what = "dynamic table refresh scheduler"

    async def _cycle(self) -> datetime | None:
        due, soonest = await self.storage.read(self._plan)
        for db, dt in due:
            state = await self.storage.write(
                functools.partial(dynamic_tables.refresh, self.engine, db=db, dt=dt,
                                  trigger="SCHEDULED")
            )  # fmt: skip
            key = (db, str(dt["SCHEMA_NAME"]), str(dt["NAME"]))
            if state == "NOT_RUN":
                continue
            if state != "SUCCEEDED":
                log.info("dynamic table %s refresh %s", ".".join(key), state)
                wait = float(str(dt["TARGET_LAG_SEC"])) * self.scale / 2
                self._hold[key] = now() + timedelta(seconds=max(wait, 0.5))
            else:
                self._hold.pop(key, None)
        return now() if due else soonest  # after refreshes, re-plan at once

    def _plan(self, cur: Cursor) -> tuple[list[tuple[str, dict[str, object]]], datetime | None]:
        moment = now()
        due: list[tuple[str, dict[str, object]]] = []
        soonest: datetime | None = None
        for db in databases(cur):
            ready, at = dynamic_tables.due(cur, db, self.scale, moment)
            for dt in ready:
                held = self._hold.get((db, str(dt["SCHEMA_NAME"]), str(dt["NAME"])))
                if held is not None and held > moment:
                    at = held if at is None else min(at, held)
                else:
                    due.append((db, dt))
            if at is not None and (soonest is None or at < soonest):
                soonest = at
        return due, soonest
