"""Run the stand-in: bind a socket, serve Starlette on uvicorn, commit in the background.

`serve()` is a structured-concurrency task: start it with `task_group.start(serve, settings)` to get
the `Standin` handle (URL and live state) once the socket listens; cancel it to stop. Shutdown
commits what is still pending, checkpoints DuckDB and closes the files.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import uvicorn
from starlette.applications import Starlette

from streamd.standin.auth import Authenticator
from streamd.standin.fault_http import FaultMiddleware
from streamd.standin.faults import FaultPlan
from streamd.standin.routes_sql import SqlApi
from streamd.standin.routes_streaming import StreamingApi
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


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without signal capture: the process that embeds the stand-in owns its signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


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
        sock = _bind(settings.host, settings.port)
        port = sock.getsockname()[1]
        hostname = settings.hostname or settings.host
        streaming = StreamingApi(state, auth, hostname)
        app = FaultMiddleware(
            Starlette(routes=[*streaming.routes(), *SqlApi(state, auth).routes()]), state
        )
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = _EmbeddedServer(config)
        app.server = server
        url = f"http://{settings.host}:{port}"
        if auth.public_key is None:
            log.warning("stand-in at %s accepts any bearer on control calls (no public key)", url)
        log.info("stand-in listening at %s, data in %s", url, settings.data_dir)
        async with anyio.create_task_group() as tg:
            http_done = anyio.Event()
            tg.start_soon(_run_http, server, sock, http_done)
            tg.start_soon(state.run_commits)
            # The socket already listens, so connections made now wait in its backlog.
            task_status.started(Standin(url, state, settings))
            try:
                await http_done.wait()
            finally:
                with anyio.CancelScope(shield=True):
                    server.should_exit = True
                    await http_done.wait()
                    tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if state is not None:
                await state.flush()
            await anyio.to_thread.run_sync(storage.close)


async def _run_http(server: uvicorn.Server, sock: socket.socket, done: anyio.Event) -> None:
    # Shielded so that cancellation reaches uvicorn as `should_exit`, letting it close its
    # listener and connections instead of being torn down mid-request.
    try:
        with anyio.CancelScope(shield=True):
            await server.serve(sockets=[sock])
    finally:
        sock.close()
        done.set()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
