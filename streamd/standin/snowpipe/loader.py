"""Classic Snowpipe in the stand-in: pipes by name, files queued by insertFiles, loaded in the background.

insertFiles only queues (a 200 is "queued, not loaded", §3.1); one loader task reads each file from
the pipe's internal stage directory, maps its records and commits rows plus the load event in one
DuckDB transaction. A file already loaded through the pipe within 14 days is skipped, as Snowpipe
does (dedupe by path); a resubmitted file that failed is tried again.

Unlike Snowflake, the queue of submitted-but-unloaded files is memory only: a stand-in restart
forgets it (the load history survives). streamd resubmits files it has not seen loaded
(`sinks/file_confirm.py`), so nothing is lost; other clients must do the same.

Files come from internal stages (`stages.py`: `<data_dir>/stages/<DB>/<SCHEMA>/<STAGE>/`); a client
on the same machine "PUTs" by writing there atomically (see `streamd/snowflake/stage_upload.py`).
"""

# ruff: noqa: S608 - identifiers in f-strings go through quote(); every value is a bound parameter.
from __future__ import annotations

import functools
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import anyio
import duckdb
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from streamd.standin.objects.stages import NamedStageError, StageRef, Stages
from streamd.standin.snowpipe.files import FileLoad, failed, read_file
from streamd.standin.snowpipe.history import (
    already_loaded_sync,
    drop_pipe_sync,
    last_ingested_sync,
    load_pipe_sync,
    record_load_sync,
    save_pipe_sync,
)
from streamd.standin.snowpipe.pipes import CreatePipe, PipeError, PipeSpec, iso_ms
from streamd.standin.storage.ddl import TableSpec
from streamd.standin.storage.duck import Cursor, execute, now_ms, quote
from streamd.standin.streaming.channels import StandinState
from streamd.standin.streaming.errors import StreamingError

MAX_FILES_PER_REQUEST = 5000
MAX_PATH_BYTES = 1024
QUEUE_REQUESTS = 256
"""insertFiles calls queued before the stand-in answers 429 (bounded memory)."""


class PipeNotFound(Exception):
    """The pipe does not exist (or, in Snowflake, the role may not see it): 404."""


class LoaderBusy(Exception):
    """The load queue is full: 429, try again later."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A file read and mapped, waiting for its insert."""

    spec: PipeSpec
    queued: QueuedFile
    table: TableSpec | None
    result: FileLoad
    size: int


@dataclass(frozen=True, slots=True)
class QueuedFile:
    """One submitted file waiting to be loaded."""

    path: str
    size: int | None
    received_ms: int


def check_path(path: object) -> str:
    """A submitted path, or ValueError naming what is wrong (400)."""
    if not isinstance(path, str) or not path:
        raise ValueError("every file needs a non-empty 'path'")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise ValueError(f"path longer than {MAX_PATH_BYTES} bytes: {path[:64]}…")
    parts = PurePosixPath(path).parts
    if path.startswith("/") or ".." in parts:
        raise ValueError(f"path must be relative to the stage: {path}")
    return path


class Snowpipe:
    """Pipes of one stand-in: definitions, the load queue and the loader."""

    def __init__(self, state: StandinState, data_dir: Path) -> None:
        self.state = state
        self.storage = state.storage
        self.stages = Stages(data_dir)
        self._specs: dict[str, PipeSpec] = {}
        self._pending: dict[str, OrderedDict[str, QueuedFile]] = {}
        self._send: MemoryObjectSendStream[tuple[PipeSpec, list[QueuedFile]]]
        self._receive: MemoryObjectReceiveStream[tuple[PipeSpec, list[QueuedFile]]]
        self._send, self._receive = anyio.create_memory_object_stream(QUEUE_REQUESTS)

    # ---- definitions ---------------------------------------------------------------------------

    def create_sync(self, cur: Cursor, create: CreatePipe) -> str:
        """CREATE PIPE on the writer thread (inside the statement's transaction)."""
        spec = create.spec
        db, schema, name = spec.table
        if spec.database not in self.storage.databases or db not in self.storage.databases:
            raise PipeError(
                "002003",
                "02000",
                f"SQL compilation error:\nDatabase '{spec.database}' does not exist or not "
                "authorized.",
            )
        table = self.storage.table_spec_sync(cur, db=db, schema=schema, table=name)
        if table is None:
            raise PipeError(
                "002003",
                "02000",
                f"SQL compilation error:\nTable '{db}.{schema}.{name}' does not exist or not "
                "authorized.",
            )
        if spec.match_by_column_name is None and (
            len(table.columns) != 1 or table.columns[0].kind not in ("variant", "object", "array")
        ):
            raise PipeError(
                "002023",
                "22000",
                "SQL compilation error:\nJSON file format can produce one and only one column of "
                "type variant, object, or array. Use CSV file format if you want to load more "
                "than one column.",
            )
        try:
            self.stages.require(StageRef(*spec.stage))
        except NamedStageError as err:
            raise PipeError(err.code, err.sql_state, err.message) from None
        created = save_pipe_sync(cur, create)
        self._specs.pop(spec.qualified, None)
        if not created:
            return f"{spec.name} already exists, statement succeeded."
        self._pending.pop(spec.qualified, None)
        return f"Pipe {spec.name} successfully created."

    def drop_sync(self, cur: Cursor, db: str, schema: str, name: str) -> bool:
        """DROP PIPE on the writer thread; False when it did not exist."""
        if db not in self.storage.databases:
            return False
        self._specs.pop(f"{db}.{schema}.{name}", None)
        self._pending.pop(f"{db}.{schema}.{name}", None)
        return drop_pipe_sync(cur, db, schema, name)

    def spec_sync(self, cur: Cursor, db: str, schema: str, name: str) -> PipeSpec | None:
        """A pipe's spec read on the calling thread's cursor, or None."""
        if db not in self.storage.databases:
            return None
        return load_pipe_sync(cur, db, schema, name)

    async def get(self, qualified: str) -> PipeSpec:
        """The pipe named `DB.SCHEMA.PIPE` exactly as created (case-sensitive, §3)."""
        spec = self._specs.get(qualified)
        if spec is not None:
            return spec
        parts = _split(qualified)
        if parts is not None and parts[0] in self.storage.databases:
            db, schema, name = parts
            spec = await self.storage.read(
                functools.partial(load_pipe_sync, db=db, schema=schema, name=name)
            )
            if spec is not None:
                self._specs[qualified] = spec
                return spec
        raise PipeNotFound(f"Specified pipe {qualified} does not exist or not authorized.")

    async def table(self, spec: PipeSpec) -> TableSpec:
        """The table a pipe copies into."""
        db, schema, name = spec.table
        try:
            return await self.state.resolve_pipe(db, schema, f"{name}-STREAMING")
        except StreamingError:
            raise PipeNotFound(
                f"Table '{db}.{schema}.{name}' does not exist or not authorized."
            ) from None

    # ---- queue ---------------------------------------------------------------------------------

    def submit(self, spec: PipeSpec, files: list[tuple[str, int | None]]) -> None:
        """Queue files for loading (insertFiles); raises LoaderBusy when the queue is full."""
        now = now_ms()
        pending = self._pending.setdefault(spec.qualified, OrderedDict())
        fresh = [QueuedFile(p, s, now) for p, s in files if p not in pending]
        if spec.pattern is not None:
            rx = re.compile(spec.pattern)
            fresh = [f for f in fresh if rx.fullmatch(f.path)]
        if not fresh:
            return
        try:
            self._send.send_nowait((spec, fresh))
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            raise LoaderBusy("too many insertFiles requests queued; retry later") from None
        for f in fresh:
            pending[f.path] = f

    def pending(self, spec: PipeSpec) -> list[QueuedFile]:
        """Files submitted and not loaded yet, oldest first."""
        return list(self._pending.get(spec.qualified, {}).values())

    async def run(self) -> None:
        """Load queued files in order until cancelled: the next file is read and parsed while
        the previous one is being inserted (one file in between, bounded memory)."""
        parsed_send, parsed_receive = anyio.create_memory_object_stream[_Parsed](1)
        async with self._send, self._receive, anyio.create_task_group() as tg:
            tg.start_soon(self._commit_parsed, parsed_receive)
            async with parsed_send:
                async for spec, files in self._receive:
                    for queued in files:
                        parsed = await self._parse(spec, queued)
                        if parsed is None:
                            self._done(spec, queued)
                        else:
                            await parsed_send.send(parsed)

    def _done(self, spec: PipeSpec, queued: QueuedFile) -> None:
        self._pending.get(spec.qualified, OrderedDict()).pop(queued.path, None)

    async def _parse(self, spec: PipeSpec, queued: QueuedFile) -> _Parsed | None:
        """Read and map a file, or None when the pipe already loaded it (Snowpipe skips it)."""
        loaded = await self.storage.read(
            functools.partial(already_loaded_sync, spec=spec, path=queued.path)
        )
        if loaded:
            return None  # no new load event either
        path = self.stages.directory(StageRef(*spec.stage)).joinpath(spec.prefix, queued.path)
        try:
            table = await self.table(spec)
        except PipeNotFound as err:
            return _Parsed(spec, queued, None, failed(str(err)), queued.size or 0)
        result, size = await anyio.to_thread.run_sync(_read_staged, spec, table, queued.path, path)
        return _Parsed(spec, queued, table, result, size)

    async def _commit_parsed(self, receive: MemoryObjectReceiveStream[_Parsed]) -> None:
        async with receive:
            async for parsed in receive:
                try:
                    await self._commit(parsed)
                finally:
                    self._done(parsed.spec, parsed.queued)

    async def _commit(self, p: _Parsed) -> None:
        queued = p.queued
        event = p.result.event(queued.path, p.size, queued.received_ms, now_ms())
        commit = functools.partial(_commit_file, spec=p.spec, table=p.table, event=event)
        try:
            await self.storage.write(functools.partial(commit, result=p.result))
        except duckdb.Error as err:
            # A value DuckDB refuses despite validation: the file fails, it is never half-loaded.
            result = failed(f"DuckDB rejected the file's rows: {str(err).splitlines()[0]}")
            event = result.event(queued.path, p.size, queued.received_ms, now_ms())
            await self.storage.write(
                functools.partial(_commit_file, spec=p.spec, table=None, result=result, event=event)
            )

    # ---- status --------------------------------------------------------------------------------

    def pipe_status_sync(self, cur: Cursor, spec: PipeSpec) -> dict[str, Any]:
        """SYSTEM$PIPE_STATUS (§5.7) of a REST-driven pipe."""
        pending = self.pending(spec)
        status: dict[str, Any] = {"executionState": "RUNNING", "pendingFileCount": len(pending)}
        if pending:
            status["oldestPendingFilePath"] = pending[0].path
            status["oldestFileTimestamp"] = iso_ms(pending[0].received_ms)
        last = last_ingested_sync(cur, spec)
        if last is not None:
            status["lastIngestedTimestamp"] = iso_ms(last[0])
            status["lastIngestedFilePath"] = last[1]
        return status


def _split(qualified: str) -> tuple[str, str, str] | None:
    parts = qualified.split(".")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _read_staged(spec: PipeSpec, table: TableSpec, name: str, path: Path) -> tuple[FileLoad, int]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return failed(f"Remote file '{spec.stage_location}{name}' was not found."), 0
    except OSError as err:
        return failed(f"Cannot read '{spec.stage_location}{name}': {err.strerror}"), 0
    return read_file(spec, table, name, data), len(data)


def _commit_file(
    cur: Cursor, spec: PipeSpec, table: TableSpec | None, result: FileLoad, event: dict[str, Any]
) -> None:
    """Insert a file's rows and record its load event in one transaction."""
    execute(cur, "BEGIN")
    try:
        if already_loaded_sync(cur, spec, event["path"]):
            execute(cur, "ROLLBACK")
            return  # a concurrent submission of the same file won the race
        if result.rows is not None and table is not None:
            _insert(cur, spec, table, result)
        record_load_sync(cur, spec, event)
        execute(cur, "COMMIT")
    except BaseException:
        execute(cur, "ROLLBACK")
        raise


def _insert(cur: Cursor, spec: PipeSpec, table: TableSpec, result: FileLoad) -> None:
    rows = result.rows
    assert rows is not None
    db, schema, name = spec.table
    target = f"{quote(db)}.{quote(schema)}.{quote(name)}"
    kinds = {c.name: c.kind for c in table.columns}
    names = ", ".join(quote(n) for n in rows.column_names)
    select = ", ".join(
        f"CAST({quote(n)} AS JSON)" if kinds.get(n) in ("variant", "object", "array") else quote(n)
        for n in rows.column_names
    )
    cur.register("_standin_file", rows)
    try:
        execute(cur, f"INSERT INTO {target} ({names}) SELECT {select} FROM _standin_file")
    finally:
        cur.unregister("_standin_file")
