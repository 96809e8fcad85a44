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

from streamd.http_server import EmbeddedServer, bind_tcp, serve_asgi
from streamd.standin.faults import FaultPlan
from streamd.standin.http.auth import Authenticator
from streamd.standin.http.fault_middleware import FaultMiddleware
from streamd.standin.http.sdk import SdkApi
from streamd.standin.http.snowpipe import SnowpipeApi
from streamd.standin.http.sql_api import SqlApi
from streamd.standin.http.streaming import StreamingApi
from streamd.standin.http.tls import TlsError, TlsFiles, ensure_self_signed, user_tls
from streamd.standin.runtime import SqlRuntime
from streamd.standin.sdk.blob_stage import Stage
from streamd.standin.sdk.counters import SdkCounters
from streamd.standin.storage.database import Storage
from streamd.standin.streaming.channels import MAX_CHANNELS_PER_PIPE, StandinState
from streamd.standin.streaming.timing import TimingLog

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
    tls: bool = False
    """Serve HTTPS (the official SDK refuses http://). Without `tls_cert`/`tls_key`, a throwaway
    CA and a certificate for 127.0.0.1 are made under `<data_dir>/tls/` (`Standin.ca_file`)."""
    tls_cert: Path | None = None
    """PEM certificate chain to serve instead of the generated one (implies `tls`)."""
    tls_key: Path | None = None
    """PEM private key of `tls_cert`."""
    task_minute_s: float = 60.0
    """Seconds that a minute of a task SCHEDULE or a dynamic table TARGET_LAG stands for: tests
    set ~1 so a '1 minute' task runs every second (cron schedules keep their spacing, scaled)."""
    timing_log: Path | None = None
    """Append one JSON line of server times per appended batch here (diagnostics, `timing.py`)."""


@dataclass(frozen=True, slots=True)
class Standin:
    """A running stand-in: where to reach it and its live state (for tests)."""

    url: str
    state: StandinState
    settings: StandinSettings
    faults: FaultPlan
    """The live fault plan (the settings' plan, or an empty one); mutable while running."""
    sdk: SdkCounters
    """What the official SDK's undocumented endpoints saw."""
    ca_file: Path | None = None
    """The generated CA to trust (`SSL_CERT_FILE`) when serving HTTPS with our own certificate."""
    timing: TimingLog | None = None
    """The diagnostic timing log (`timing.py`); None unless `StandinSettings.timing_log` is set."""


async def serve(
    settings: StandinSettings,
    *,
    task_status: anyio.abc.TaskStatus[Standin] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports a `Standin` through `task_status` once listening."""
    storage = Storage(settings.data_dir)
    state: StandinState | None = None
    timing = None if settings.timing_log is None else TimingLog(settings.timing_log)
    faults = settings.faults if settings.faults is not None else FaultPlan()
    try:
        await storage.write(storage.attach_existing_sync)
        tables = await storage.write(
            functools.partial(storage.apply_sql_dirs_sync, sql_dirs=settings.sql_dirs)
        )
        state = StandinState(
            storage,
            tables,
            settings.commit_delay_s,
            faults,
            enforce_rate_limits=settings.enforce_rate_limits,
            max_channels_per_pipe=settings.max_channels_per_pipe,
            timing=timing,
        )
        auth = Authenticator.create(settings.public_key_pem)
        hostname = settings.hostname or settings.host
        tls = await anyio.to_thread.run_sync(_tls_files, settings, hostname)
        stage = Stage(settings.data_dir / "stage")
        await anyio.to_thread.run_sync(stage.reset_sync)
        sock = bind_tcp(settings.host, settings.port)
        # Control, ingest and stage share this one port: the SDK appends the control URL's port
        # to the Get Hostname answer and prepends https:// to storage_endpoint (wire §3, §4.1).
        sdk = SdkApi(state, auth, stage, f"{hostname}:{sock.getsockname()[1]}")
        streaming = StreamingApi(state, auth, hostname, sdk, timing)
        runtime = SqlRuntime.create(state, task_minute_s=settings.task_minute_s)
        sql_api = SqlApi(state, auth, runtime.engine)
        snowpipe = SnowpipeApi(runtime.snowpipe, auth)
        routes = [*streaming.routes(), *sdk.routes(), *sql_api.routes(), *snowpipe.routes()]
        app = FaultMiddleware(Starlette(routes=routes), state, faults)
        server = EmbeddedServer(
            app, graceful_shutdown_s=2, tls=None if tls is None else (tls.cert, tls.key)
        )
        app.server = server  # connection resets need uvicorn's live connections
        if auth.public_key is None:
            log.warning("stand-in accepts any bearer on control calls (no public key)")
        async with anyio.create_task_group() as tg:
            tg.start_soon(state.run_commits)
            tg.start_soon(runtime.run)
            url = await tg.start(functools.partial(serve_asgi, app, sock, server=server))
            log.info("stand-in listening at %s, data in %s", url, settings.data_dir)
            ca = None if tls is None else tls.ca
            task_status.started(Standin(url, state, settings, faults, sdk.counters, ca, timing))
            await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            if state is not None:
                await state.flush()
            await anyio.to_thread.run_sync(storage.close)
            if timing is not None:
                timing.close()


def _tls_files(settings: StandinSettings, hostname: str) -> TlsFiles | None:
    """The certificate to serve, if any: the user's own, or one from our throwaway CA."""
    if settings.tls_cert is not None or settings.tls_key is not None:
        if settings.tls_cert is None or settings.tls_key is None:
            raise TlsError("give both --tls-cert and --tls-key, or neither")
        return user_tls(settings.tls_cert, settings.tls_key)
    if not settings.tls:
        return None
    return ensure_self_signed(settings.data_dir / "tls", (hostname,))
