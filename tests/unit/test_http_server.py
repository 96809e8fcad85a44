"""The embedded HTTP server's listening socket."""

from __future__ import annotations

import asyncio
import socket

from streamd.http_server import bind_tcp


async def test_accepted_connections_have_nodelay() -> None:
    """Without TCP_NODELAY a keep-alive response's body waited ~40 ms for the peer's delayed ACK."""
    sock = bind_tcp("127.0.0.1", 0)
    accepted: asyncio.Queue[asyncio.BaseTransport] = asyncio.Queue()

    class Keep(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.put_nowait(transport)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Keep, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        transport = await asyncio.wait_for(accepted.get(), 5)
        peer = transport.get_extra_info("socket")
        assert peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        writer.close()
        transport.close()
    finally:
        server.close()
        await server.wait_closed()
