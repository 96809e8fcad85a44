"""A real Mosquitto broker on a free loopback port, and a relay that can cut connections to it.

The broker is skipped when `mosquitto` is not installed, unless STREAMD_REQUIRE_BROKERS=1 (set by
`.ci/run`), which turns the skip into a failure so CI always runs these.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute, SocketStream


class Broker:
    """One mosquitto process with its own config; `stop()`/`start()` restart it on the same port."""

    def __init__(self, binary: str, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._binary = binary
        self._conf = tmp / "mosquitto.conf"
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(  # the broker binary found on PATH, our own config
            [self._binary, "-c", str(self._conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    async def publish(self, *messages: tuple[str, bytes]) -> None:
        """Publish `(topic, payload)` pairs at QoS 1 from a client of its own, in order."""
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            for topic, payload in messages:
                await client.publish(topic, payload, qos=1)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running broker, stopped at teardown."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if binary is None:
        if os.environ.get("STREAMD_REQUIRE_BROKERS") == "1":
            pytest.fail("mosquitto is required (STREAMD_REQUIRE_BROKERS=1) but not installed")
        pytest.skip("mosquitto is not installed")
    b = Broker(binary, tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


class Relay:
    """A loopback TCP relay to a port; `cut()` drops every connection through it (a network drop)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._scopes: list[anyio.CancelScope] = []

    async def serve(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        """Relay connections until cancelled; reports the port it listens on."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
        async with listener, anyio.create_task_group() as tg:
            task_status.started(self.port)
            await listener.serve(self._relay, task_group=tg)

    def cut(self) -> None:
        """Close both ends of every open connection."""
        for scope in self._scopes:
            scope.cancel()
        self._scopes.clear()

    async def _relay(self, client: SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.target_port) as upstream:
            with anyio.CancelScope() as scope:
                self._scopes.append(scope)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_pipe, client, upstream, scope)
                    tg.start_soon(_pipe, upstream, client, scope)


async def _pipe(src: SocketStream, dst: SocketStream, scope: anyio.CancelScope) -> None:
    try:
        async for chunk in src:
            await dst.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
    scope.cancel()  # one side ended: end the other too
