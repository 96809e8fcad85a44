"""The sd_notify protocol, by hand: READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 to systemd.

The protocol is one datagram per message to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a path,
or an abstract-namespace name when it starts with `@`); see sd_notify(3). It is small enough that
a dependency (sdnotify, systemd-python) would cost more than it saves.

Every call is a no-op when `$NOTIFY_SOCKET` is unset (a terminal, a container, the tests), and a
failed send is logged and dropped: a notification must never take the daemon down.

Why the send does not block the event loop: the socket is non-blocking, and an AF_UNIX datagram
`sendto` either copies the message into the receiver's queue at once or fails with EAGAIN when
that queue is full. PID 1 drains its notify socket promptly (and systemd raises
net.unix.max_dgram_qlen from 10 to 512), so a full queue means systemd is already in trouble; the
message is dropped and logged (a lost WATCHDOG=1 is covered by the next one, which is why pings go
out several times per interval). A blocking send, as libsystemd does, could stall the loop.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

from streamd.clock import Clock
from streamd.logs import get_logger

WATCHDOG_CHECKS_PER_INTERVAL = 4
"""How often per `WatchdogSec=` the watchdog loop asks whether the pipeline progressed.

sd_watchdog_enabled(3) suggests pinging at half the interval; that is for unconditional pings. Here
a ping is skipped when no progress was seen, so with checks at half the interval one skipped check
would leave the next ping landing exactly on systemd's deadline. Checking at a quarter leaves a
healthy-but-slow daemon three chances per interval, and still gets a wedged one killed within
about 1¼ intervals of its last progress.
"""


def _socket_address(value: str) -> str | bytes | None:
    """The `sendto` address for a `$NOTIFY_SOCKET` value; None for kinds we do not speak."""
    if value.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of the '@', no trailing NUL (unix(7)).
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # systemd ≥ 254 may also hand out `vsock:` addresses (VMs); not used for a host service.
    return None


class Notifier:
    """Sends sd_notify messages; every method is a no-op (returns False) without `$NOTIFY_SOCKET`."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """Read `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environ` (default: os.environ)."""
        env = os.environ if environ is None else environ
        self._log = get_logger()
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _socket_address(raw) if raw else None
        if raw and self._address is None:
            self._log.warning("notify_socket_unsupported", notify_socket=raw)
        self._watchdog_s = _watchdog_seconds(env)

    @property
    def enabled(self) -> bool:
        """True when there is a notify socket to talk to."""
        return self._address is not None

    def watchdog_interval_s(self) -> float | None:
        """systemd's watchdog timeout (`WatchdogSec=`) in seconds, or None when not watched.

        None also when `$WATCHDOG_PID` names another process: the watchdog is then meant for it.
        """
        return self._watchdog_s if self.enabled else None

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (`READY=1`), with an optional status line."""
        return self._send("READY=1", status)

    def status(self, text: str) -> bool:
        """Update the one-line status `systemctl status` shows."""
        return self._send(None, text)

    def watchdog(self) -> bool:
        """Reset systemd's watchdog timer (`WATCHDOG=1`)."""
        return self._send("WATCHDOG=1", None)

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd the daemon is shutting down (`STOPPING=1`), e.g. when the drain starts."""
        return self._send("STOPPING=1", status)

    def _send(self, state: str | None, status: str | None) -> bool:
        if self._address is None:
            return False
        lines = [] if state is None else [state]
        if status is not None:
            # One message per datagram, one assignment per line: a newline would start a new one.
            lines.append("STATUS=" + " ".join(status.splitlines()))
        message = "\n".join(lines).encode()
        try:
            # A socket per message, as sd_notify(3) does: a few messages a minute cost nothing, and
            # no descriptor outlives the call (nothing to close, nothing for a child to inherit).
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(message, self._address)
        except OSError as exc:
            self._log.warning(
                "notify_failed", notify=message.decode(), error=exc.strerror or str(exc)
            )
            return False
        return True


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """`$WATCHDOG_USEC` in seconds, honouring `$WATCHDOG_PID`, as sd_watchdog_enabled(3) does."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 1_000_000


class ProgressGate:
    """Turns a `(done, waiting)` snapshot into the `progressed()` answer `watchdog_loop` wants.

    `snapshot()` returns `done`, a counter that only grows as the pipeline finishes rows (rows
    committed + rows dead-lettered), and `waiting`, the rows produced but not finished yet (in
    lanes or spooled-but-uncommitted). A call answers True when nothing is waiting (idle is
    healthy: there is nothing to make progress on) or when `done` grew since the last call that
    answered True, i.e. since the last ping. So rows waiting with nothing finished since the
    last ping is the one state that withholds pings, and systemd restarts a daemon stuck in it.
    """

    def __init__(self, snapshot: Callable[[], tuple[int, int]]) -> None:
        """Wrap `snapshot`; the first call compares against the counter at construction."""
        self._snapshot = snapshot
        self._done_at_ping, _ = snapshot()

    def __call__(self) -> bool:
        """True if the pipeline is idle or finished rows since the last True."""
        done, waiting = self._snapshot()
        if waiting <= 0 or done > self._done_at_ping:
            self._done_at_ping = done
            return True
        return False


async def watchdog_loop(
    notifier: Notifier,
    progressed: Callable[[], bool],
    clock: Clock,
    *,
    interval_s: float | None = None,
) -> None:
    """Send `WATCHDOG=1` while the pipeline makes progress; run until cancelled.

    Contract of `progressed`: called once per check (`interval_s / 4`), cheap and non-blocking,
    it answers "did the pipeline make progress since the last time I answered True?". A daemon
    with nothing to do must answer True (idle is healthy); one with rows waiting and nothing
    finished must answer False. `ProgressGate` builds such a callable from counters.

    `interval_s` defaults to the notifier's `WatchdogSec=`; without one (no systemd, or no
    watchdog configured) this returns at once, so callers can start it unconditionally. A wedged
    event loop sends nothing either, which is the other thing the watchdog is for.
    """
    interval = interval_s if interval_s is not None else notifier.watchdog_interval_s()
    if interval is None or interval <= 0 or not notifier.enabled:
        return
    log = get_logger()
    check_every = interval / WATCHDOG_CHECKS_PER_INTERVAL
    withheld = 0
    while True:
        await clock.sleep(check_every)
        if progressed():
            if withheld:
                log.info("watchdog_resumed", withheld_checks=withheld)
            withheld = 0
            notifier.watchdog()
        else:
            withheld += 1
            # Say so once, at the first withheld check: the restart that may follow has a cause.
            if withheld == 1:
                log.warning(
                    "watchdog_withheld",
                    reason="rows waiting and none finished since the last ping",
                    watchdog_s=interval,
                )
