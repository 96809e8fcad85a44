"""The admin HTTP endpoint: /status (the JSON behind `inspect`), /healthz and /metrics, on loopback."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamd.asgi_server import bind_tcp
from streamd.errors import ConfigError
from streamd.metrics import Metrics


def build_app(status: Callable[[], dict[str, Any]], metrics: Metrics) -> Starlette:
    """The admin ASGI app over live daemon state."""

    async def status_route(_: Request) -> Response:
        return Response(orjson.dumps(status(), default=str), media_type="application/json")

    async def healthz(_: Request) -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    async def metrics_route(_: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/status", status_route),
            Route("/healthz", healthz),
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
