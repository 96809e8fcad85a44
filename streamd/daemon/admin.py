"""The admin HTTP endpoint on loopback: /status (the JSON behind `inspect`), /healthz, /readyz, /metrics."""

from __future__ import annotations

import socket
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamd.errors import ConfigError
from streamd.http_server import bind_tcp
from streamd.metrics import Metrics


class DaemonView(Protocol):
    """What the admin endpoint reads from the running daemon."""

    def status(self) -> dict[str, Any]:
        """The JSON behind `streamd inspect`."""
        ...

    def readiness(self) -> list[str]:
        """Why the daemon is not ready (empty when ready: channels open, spools not full)."""
        ...

    def refresh_gauges(self) -> None:
        """Bring gauges (lane depth, spool bytes, commit lag) up to date before a scrape."""
        ...

    def health_reasons(self) -> list[str]:
        """The reconciler's critical findings, one line each (empty when healthy)."""
        ...


def _json(body: object, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, default=str), status_code=status, media_type="application/json"
    )


def build_app(daemon: DaemonView, metrics: Metrics) -> Starlette:
    """The admin ASGI app over live daemon state."""

    async def status_route(_: Request) -> Response:
        return _json(daemon.status())

    async def healthz(_: Request) -> Response:
        # Alive whenever the event loop answers, so 200 either way: a restart cannot fix a
        # suspended task or a stale stream. Degraded (critical findings) is in the body.
        reasons = daemon.health_reasons()
        if reasons:
            return _json({"status": "degraded", "reasons": reasons})
        return _json({"status": "ok"})

    async def readyz(_: Request) -> Response:
        reasons = daemon.readiness()
        return _json({"ready": not reasons, "reasons": reasons}, 503 if reasons else 200)

    async def metrics_route(_: Request) -> Response:
        daemon.refresh_gauges()
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/status", status_route),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_route),
        ]
    )


def bind(host: str, port: int) -> socket.socket:
    """Bind the admin socket up front, so a busy port is a one-line config error, not a traceback."""
    try:
        return bind_tcp(host, port)
    except OSError as exc:
        raise ConfigError(
            f"admin.port: cannot listen on {host}:{port} ({exc.strerror}); is another streamd running? "
            "stop it or set admin.port"
        ) from None
