"""Run an ASGI app with uvicorn inside our task group, on a socket we bound ourselves."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import anyio
import uvicorn
from anyio.abc import TaskStatus


def bind_tcp(host: str, port: int) -> socket.socket:
    """Bind and listen; port 0 lets the OS choose. Raises OSError when the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio turns on TCP_NODELAY for accepted connections only when their
    # proto is IPPROTO_TCP (accept() copies the listener's). With 0, uvicorn's separate header and
    # body writes met Nagle and the peer's delayed ACK: +40 ms on each keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers (the daemon owns signals) and with a started event.

    `tls` = (certificate chain PEM, key PEM) serves HTTPS; uvicorn speaks HTTP/1.1 only and
    offers no ALPN, which is what the official Snowflake SDK expects (official-sdk-wire §1).
    """

    def __init__(
        self,
        app: object,
        *,
        graceful_shutdown_s: int = 1,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        super().__init__(
            uvicorn.Config(
                app,  # type: ignore[arg-type]
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_graceful_shutdown=graceful_shutdown_s,
                ssl_certfile=None if tls is None else str(tls[0]),
                ssl_keyfile=None if tls is None else str(tls[1]),
            )
        )
        self.started_event = anyio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.started_event.set()


async def serve_asgi(
    app: object,
    sock: socket.socket,
    *,
    server: EmbeddedServer | None = None,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on `sock` until cancelled; reports `http(s)://host:port` once accepting.

    Pass `server` to keep a handle on uvicorn (e.g. to reach its open connections). Cancellation
    reaches uvicorn as `should_exit`, so it closes its listener and connections instead of being
    torn down mid-request; the socket is closed on the way out.
    """
    host, port = sock.getsockname()[:2]
    server = server or EmbeddedServer(app)
    done = anyio.Event()

    async def run() -> None:
        try:
            with anyio.CancelScope(shield=True):
                await server.serve([sock])
        finally:
            sock.close()
            done.set()
            server.started_event.set()  # wake the waiter below if startup itself failed

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await server.started_event.wait()
        if done.is_set():
            raise OSError(f"HTTP server on {host}:{port} stopped during start-up")
        scheme = "https" if server.config.is_ssl else "http"
        shown = f"[{host}]" if ":" in host else host
        task_status.started(f"{scheme}://{shown}:{port}")
        try:
            await done.wait()
        finally:
            with anyio.CancelScope(shield=True):
                server.should_exit = True
                await done.wait()
