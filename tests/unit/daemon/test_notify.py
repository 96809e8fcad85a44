"""sd_notify against a fake notify socket: exact datagrams, no-op without systemd, watchdog gating."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from streamd.daemon.notify import (
    WATCHDOG_CHECKS_PER_INTERVAL,
    Notifier,
    ProgressGate,
    watchdog_loop,
)
from streamd.testing import ManualClock

SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes including the NUL


class FakeSystemd:
    """A bound AF_UNIX datagram socket standing in for PID 1's notify socket."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env = {"NOTIFY_SOCKET": env_value}

    def received(self) -> list[bytes]:
        """Every datagram queued so far, without waiting."""
        out: list[bytes] = []
        while True:
            try:
                out.append(self.sock.recv(4096))
            except BlockingIOError:
                return out


def _bound(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    return sock


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    """A notify socket bound to a path (in tmp_path, or a short temp dir if that is too long)."""
    path = tmp_path / "notify"
    short_dir = None
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        short_dir = tempfile.mkdtemp(prefix="sdn")
        path = Path(short_dir) / "notify"
    sock = _bound(str(path))
    try:
        yield FakeSystemd(sock, str(path))
    finally:
        sock.close()
        path.unlink(missing_ok=True)
        if short_dir is not None:
            os.rmdir(short_dir)


@pytest.fixture
def abstract_systemd() -> Iterator[FakeSystemd]:
    """A notify socket in the abstract namespace (`@name` in $NOTIFY_SOCKET)."""
    name = f"streamd-test-{uuid.uuid4().hex}"
    sock = _bound(b"\0" + name.encode())
    try:
        yield FakeSystemd(sock, "@" + name)
    finally:
        sock.close()


def test_ready_status_watchdog_stopping_are_exact_datagrams(systemd: FakeSystemd) -> None:
    """Each call is one datagram with exactly the documented assignments."""
    notifier = Notifier(systemd.env)
    assert notifier.enabled
    assert notifier.ready("channels open: 3")
    assert notifier.status("draining")
    assert notifier.watchdog()
    assert notifier.stopping()
    assert notifier.stopping("draining 12 rows")
    assert systemd.received() == [
        b"READY=1\nSTATUS=channels open: 3",
        b"STATUS=draining",
        b"WATCHDOG=1",
        b"STOPPING=1",
        b"STOPPING=1\nSTATUS=draining 12 rows",
    ]


def test_ready_without_status_is_bare(systemd: FakeSystemd) -> None:
    """READY=1 alone when no status is given."""
    Notifier(systemd.env).ready()
    assert systemd.received() == [b"READY=1"]


def test_status_newlines_cannot_inject_assignments(systemd: FakeSystemd) -> None:
    """A newline in a status would start a new assignment (e.g. READY=1); it becomes a space."""
    Notifier(systemd.env).status("line one\nREADY=1")
    assert systemd.received() == [b"STATUS=line one READY=1"]


def test_abstract_namespace_socket(abstract_systemd: FakeSystemd) -> None:
    """`@name` addresses the abstract namespace (leading NUL), as systemd hands out in containers."""
    notifier = Notifier(abstract_systemd.env)
    assert notifier.ready("up")
    assert notifier.watchdog()
    assert abstract_systemd.received() == [b"READY=1\nSTATUS=up", b"WATCHDOG=1"]


def test_no_op_without_notify_socket() -> None:
    """Outside systemd every call does nothing and says so."""
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready("x")
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert not notifier.stopping()
    assert notifier.watchdog_interval_s() is None


def test_default_environment_is_os_environ(
    systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an explicit mapping the process environment is read."""
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.env["NOTIFY_SOCKET"])
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier()
    assert notifier.watchdog_interval_s() == 30.0
    notifier.ready()
    assert systemd.received() == [b"READY=1"]


def test_send_failure_is_dropped_not_raised(tmp_path: Path) -> None:
    """Nobody listening (systemd gone): the call returns False, the daemon goes on."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert notifier.enabled
    assert not notifier.watchdog()


def test_unsupported_socket_kind_is_ignored() -> None:
    """A `vsock:` address (systemd ≥ 254 in VMs) is not spoken here: disabled, not an error."""
    notifier = Notifier({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert not notifier.ready()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 60.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 60.0),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "nope"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(systemd: FakeSystemd, env: dict[str, str], expected: float) -> None:
    """`$WATCHDOG_USEC` in seconds, only for this process when `$WATCHDOG_PID` is set."""
    assert Notifier({**systemd.env, **env}).watchdog_interval_s() == expected


class Pipeline:
    """Counters a test moves by hand: rows finished, rows waiting."""

    def __init__(self) -> None:
        self.done = 0
        self.waiting = 0

    def snapshot(self) -> tuple[int, int]:
        return self.done, self.waiting


def test_progress_gate_contract() -> None:
    """Idle is progress; waiting with nothing finished since the last True is not."""
    pipe = Pipeline()
    gate = ProgressGate(pipe.snapshot)
    assert gate()  # idle
    pipe.waiting = 5
    assert not gate()  # rows waiting, nothing finished
    assert not gate()
    pipe.done = 3
    assert gate()  # finished rows since the last True
    assert not gate()  # …but nothing more since then
    pipe.done, pipe.waiting = 5, 0
    assert gate()


async def _settle(clock: ManualClock, sleepers: int = 1) -> None:
    """Let the watchdog task run until it sleeps on the clock again."""
    for _ in range(100):
        await anyio.lowlevel.checkpoint()
        if clock.sleepers >= sleepers:
            return
    raise AssertionError("watchdog loop did not go back to sleep")


async def test_watchdog_pings_only_while_progressing(systemd: FakeSystemd) -> None:
    """Idle and progressing pipelines are pinged every check; a wedged one is not, until it moves."""
    interval = 60.0
    step = interval / WATCHDOG_CHECKS_PER_INTERVAL
    clock = ManualClock()
    pipe = Pipeline()
    notifier = Notifier({**systemd.env, "WATCHDOG_USEC": str(int(interval * 1_000_000))})
    async with anyio.create_task_group() as tg:
        tg.start_soon(watchdog_loop, notifier, ProgressGate(pipe.snapshot), clock)
        await _settle(clock)
        assert systemd.received() == []  # nothing before the first check

        clock.advance(step)  # idle: healthy
        await _settle(clock)
        assert systemd.received() == [b"WATCHDOG=1"]

        pipe.waiting, pipe.done = 100, 10  # busy and committing
        clock.advance(step)
        await _settle(clock)
        assert systemd.received() == [b"WATCHDOG=1"]

        # Wedged: rows waiting, nothing committed for a whole interval → no pings at all.
        for _ in range(WATCHDOG_CHECKS_PER_INTERVAL):
            clock.advance(step)
            await _settle(clock)
        assert systemd.received() == []

        pipe.done = 11  # it moved again
        clock.advance(step)
        await _settle(clock)
        assert systemd.received() == [b"WATCHDOG=1"]
        tg.cancel_scope.cancel()


async def test_watchdog_loop_returns_without_watchdog(systemd: FakeSystemd) -> None:
    """No `WatchdogSec=` (or no systemd): the loop ends at once, so it can be started always."""
    clock = ManualClock()
    with anyio.fail_after(1):
        await watchdog_loop(Notifier(systemd.env), lambda: True, clock)
        await watchdog_loop(Notifier({}), lambda: True, clock, interval_s=10)
    assert systemd.received() == []


async def test_watchdog_interval_override(abstract_systemd: FakeSystemd) -> None:
    """An explicit interval wins over `$WATCHDOG_USEC` (and works on an abstract socket)."""
    clock = ManualClock()
    notifier = Notifier(abstract_systemd.env)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: watchdog_loop(notifier, lambda: True, clock, interval_s=8))
        await _settle(clock)
        clock.advance(2)
        await _settle(clock)
        tg.cancel_scope.cancel()
    assert abstract_systemd.received() == [b"WATCHDOG=1"]
