"""Applying the fault plan to HTTP: an ASGI middleware in front of the stand-in's routes.

Each request is classified into one of the plan's endpoints and the plan decides what happens.
Status faults answer without running the route (the request is not applied). Connection resets
abort the client's TCP connection with an RST (SO_LINGER 0) without sending any response, so a
client sees a transport error (httpx `ReadError`/`RemoteProtocolError`), never a 500: the
transport is found among uvicorn's live connections by the request's client address.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from typing import Any

import anyio
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamd.standin.faults import NO_FAULT, STATUS_KINDS, FaultPlan, FaultRule
from streamd.standin.http.responses import error_response
from streamd.standin.http.streaming import parse_names
from streamd.standin.streaming.channels import StandinState
from streamd.standin.streaming.ids import ChannelId

log = logging.getLogger("streamd.standin")

_DISCONNECT_WAIT_S = 5.0


def classify(method: str, raw_path: str) -> tuple[str, ChannelId | None] | None:
    """The fault-plan endpoint of a request (and its channel for appends); None if none."""
    path = raw_path.split("?", 1)[0]
    if path == "/oauth/token":
        return "token", None
    if path == "/api/v2/statements" or path.startswith("/api/v2/statements/"):
        return "sql", None
    if not path.startswith("/v2/streaming/"):
        return None
    parts = path.removeprefix("/v2/streaming/").split("/")
    if parts == ["hostname"]:
        return "hostname", None
    names = parse_names(parts)
    if names is None:
        return None
    kind, db, schema, pipe, channel = names
    if kind in ("rows", "filebuffer"):  # file mode's registration is the SDK's append
        return "append", ChannelId(db.upper(), schema.upper(), pipe.upper(), channel.upper())
    if kind == "status":
        return "status", None
    return {"PUT": ("open", None), "DELETE": ("drop", None)}.get(method)


class FaultMiddleware:
    """Wraps the stand-in's ASGI app; `server` must be set before requests arrive."""

    def __init__(self, app: ASGIApp, state: StandinState, faults: FaultPlan) -> None:
        self.app = app
        self.state = state
        self.faults = faults
        self.server: uvicorn.Server | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw: bytes = scope.get("raw_path") or scope["path"].encode()
        hit = classify(scope["method"], raw.decode("latin-1"))
        decision = NO_FAULT if hit is None else self.faults.decide(hit[0])
        if decision is NO_FAULT or hit is None:
            await self.app(scope, receive, send)
            return
        if decision.delay_s:
            await anyio.sleep(decision.delay_s)
        rule = decision.action
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.kind in STATUS_KINDS:
            await _drain(receive)
            await self._status(rule, hit[0])(scope, receive, send)
        elif rule.kind == "reset_before":
            await self._reset(scope, receive)
        elif rule.kind == "reset_after":
            await self.app(scope, receive, _discard)
            await self._reset(scope, receive)
        else:  # invalidate
            if hit[1] is not None:
                self.state.invalidate(hit[1], rule.error_code)
            await self.app(scope, receive, send)

    @staticmethod
    def _status(rule: FaultRule, endpoint: str) -> Any:
        headers = None if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
        return error_response(
            STATUS_KINDS[rule.kind],
            rule.error_code,
            f"Injected fault: HTTP {rule.kind} on {endpoint} (stand-in fault plan)",
            headers,
        )

    async def _reset(self, scope: Scope, receive: Receive) -> None:
        transport = self._transport(scope.get("client"))
        if transport is None:
            raise RuntimeError("injected reset: cannot find the request's connection")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends an RST instead of a FIN, a real "connection reset".
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        # Return only once uvicorn has seen the disconnect, else it would log and try a 500.
        with anyio.move_on_after(_DISCONNECT_WAIT_S):
            while (await receive())["type"] != "http.disconnect":
                pass

    def _transport(self, client: Any) -> asyncio.Transport | None:
        if self.server is None or client is None:
            return None
        for conn in self.server.server_state.connections:
            if tuple(getattr(conn, "client", None) or ()) == tuple(client):
                transport: asyncio.Transport | None = getattr(conn, "transport", None)
                return transport
        return None


async def _drain(receive: Receive) -> None:
    """Read the request body so the connection stays usable after an early answer."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


async def _discard(message: Message) -> None:
    """`send` that drops the response (reset_after applies the request, answers nothing)."""
    del message
