"""The target's HTTP client: the system trust store by default, and the configured proxy."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import truststore

from streamd.snowflake.http import target_client, tls_context


def test_default_trust_is_the_system_store_not_certifi() -> None:
    assert isinstance(tls_context(None), truststore.SSLContext)


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[bytes]]]:
    """A loopback 'proxy' that records each request head and answers 502."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(65536).split(b"\r\n", 1)[0])
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    server.close()
    thread.join(timeout=5)


async def test_target_proxy_carries_every_call(proxy: tuple[str, list[bytes]]) -> None:
    url, seen = proxy
    async with target_client(ca_file=None, proxy=url, timeout=5) as client:
        response = await client.get("http://account.example.invalid/api/v2/statements")
    assert response.status_code == 502
    assert seen == [b"GET http://account.example.invalid/api/v2/statements HTTP/1.1"]
