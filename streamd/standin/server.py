"""Run the stand-in: bind a socket, serve Starlette on uvicorn, commit in the background.

`serve()` is a structured-concurrency task: start it with `task_group.start(serve, settings)` to get
the `Standin` handle (URL and live state) once the socket listens; cancel it to stop. Shutdown
commits what is still pending, checkpoints DuckDB and closes the files.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
from starlette.applications import Starlette

from streamd.asgi_server import EmbeddedServer, bind_tcp, serve_asgi
from streamd.standin.auth import Authenticator
from streamd.standin.fault_http import FaultMiddleware
from streamd.standin.faults import FaultPlan
from streamd.standin.routes_sql import SqlApi
from streamd.standin.routes_streaming import StreamingApi
from streamd.standin.sqlruntime import SqlRuntime
from streamd.standin.state import MAX_CHANNELS_PER_PIPE, StandinState
from streamd.standin.storage import Storage

log = logging.getLogger("streamd.standin")


@dataclass(frozen=True, slots=True)
class StandinSettings:
    """How to run the stand-in."""

    data_dir: Path
    sql_dirs: tuple[Path, ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    """0 lets the OS pick a free port; the chosen one is in `Standin.url`."""
    commit_delay_s: float = 1.0
    """Seconds between an append's 200 and its commit (§2.18 suggests 1–5 s)."""
    public_key_pem: bytes | None = None
    """RSA public key that key-pair JWTs must be signed with; None accepts any bearer."""
    hostname: str | None = None
    """What Get Hostname returns: a bare host, no port (clients append the control URL's port)."""
    faults: FaultPlan | None = None
    """Faults to inject (`faults.py`); None starts with an empty plan, reachable as
    `Standin.faults`, that tests may fill while the stand-in runs."""
    enforce_rate_limits: bool = True
    """Per-channel 10 appends/s and 20 MB/s uncompressed → 429 (§2.13, `limits.py`)."""
    max_channels_per_pipe: int | None = MAX_CHANNELS_PER_PIPE
    """Opening a channel beyond this many on one pipe fails 400 (§2.13); None = no limit."""


@dataclass(frozen=True, slots=True)
class Standin:
    """A running stand-in: where to reach it and its live state (for tests)."""

    url: str
    state: StandinState
    settings: StandinSettings

    @property
    def faults(self) -> FaultPlan:
        """The live fault plan (the settings' plan, or an empty one); mutable while running."""
        return self.state.faults


async def serve(
    settings: StandinSettings,
    *,
    task_status: anyio.abc.TaskStatus[Standin] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports a `Standin` through `task_status` once listening."""
    storage = Storage(settings.data_dir)
    state: StandinState | None = None
    try:
        await storage.write(storage.attach_existing_sync)
        tables = await storage.write(
            functools.partial(storage.apply_sql_dirs_sync, sql_dirs=settings.sql_dirs)
        )
        state = StandinState(
            storage,
            tables,
            settings.commit_delay_s,
            settings.faults,
            enforce_rate_limits=settings.enforce_rate_limits,
            max_channels_per_pipe=settings.max_channels_per_pipe,
        )
        auth = Authenticator.create(settings.public_key_pem)
        sock = bind_tcp(settings.host, settings.port)
        hostname = settings.hostname or settings.host
        streaming = StreamingApi(state, auth, hostname)
        runtime = SqlRuntime.create(state)
        sql_api = SqlApi(state, auth, runtime.engine)
        app = FaultMiddleware(Starlette(routes=[*streaming.routes(), *sql_api.routes()]), state)
        server = EmbeddedServer(app, graceful_shutdown_s=2)
        app.server = server  # connection resets need uvicorn's live connections
        if auth.public_key is None:
            log.warning("stand-in accepts any bearer on control calls (no public key)")
        async with anyio.create_task_group() as tg:
            tg.start_soon(state.run_commits)
            tg.start_soon(runtime.run)
            url = await tg.start(functools.partial(serve_asgi, app, sock, server=server))
            log.info("stand-in listening at %s, data in %s", url, settings.data_dir)
            task_status.started(Standin(url, state, settings))
            await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            if state is not None:
                await state.flush()
            await anyio.to_thread.run_sync(storage.close)
