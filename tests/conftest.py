"""Shared fixtures.

The stand-in runs in its own thread and event loop (a blocking portal), so it owns its port and its
teardown, while async tests drive it over real HTTP from their own loop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import pytest

from streamd.standin.server import Standin, StandinSettings, serve

REPO = Path(__file__).resolve().parents[1]
MANUFACTURING_SQL = REPO / "sql" / "manufacturing"


class StandinFactory:
    """Starts stand-ins in a portal thread; `stop()` one early (e.g. to restart on its data dir)."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, tmp_path: Path) -> None:
        self._portal = portal
        self._tmp_path = tmp_path
        self._running: list[tuple[_Running, Standin]] = []

    def __call__(self, **overrides: Any) -> Standin:
        """Start one with `StandinSettings` defaults for tests, overridden by `overrides`."""
        values: dict[str, Any] = {
            "data_dir": self._tmp_path / "standin",
            "sql_dirs": (MANUFACTURING_SQL,),
            "commit_delay_s": 0.2,
            **overrides,
        }
        done = threading.Event()
        future, standin = self._portal.start_task(
            _serve_then_signal, StandinSettings(**values), done
        )
        self._running.append((_Running(future, done), standin))
        return standin

    def stop(self, standin: Standin) -> None:
        """Cancel a running stand-in and wait until its storage is closed."""
        for entry in list(self._running):
            if entry[1] is standin:
                self._running.remove(entry)
                entry[0].stop()

    def stop_all(self) -> None:
        """Stop every stand-in still running, newest first."""
        while self._running:
            self._running.pop()[0].stop()


class _Running:
    def __init__(self, future: concurrent.futures.Future[Any], done: threading.Event) -> None:
        self.future = future
        self.done = done

    def stop(self) -> None:
        # Cancelling a portal future returns at once; `done` is set only after serve()'s own
        # shutdown (flush, checkpoint, close) has finished, which a restart depends on.
        self.future.cancel()
        if not self.done.wait(timeout=30):
            raise TimeoutError("stand-in did not shut down within 30 s")
        with contextlib.suppress(concurrent.futures.CancelledError):
            self.future.result(timeout=1)


async def _serve_then_signal(
    settings: StandinSettings,
    done: threading.Event,
    *,
    task_status: anyio.abc.TaskStatus[Standin] = anyio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await serve(settings, task_status=task_status)
    finally:
        done.set()


@pytest.fixture
def make_standin(tmp_path: Path) -> Iterator[StandinFactory]:
    """A factory: `make_standin(**settings_overrides) -> Standin`; all are stopped at teardown."""
    with anyio.from_thread.start_blocking_portal() as portal:
        factory = StandinFactory(portal, tmp_path)
        try:
            yield factory
        finally:
            factory.stop_all()


@pytest.fixture
def standin(make_standin: StandinFactory) -> Standin:
    """A running stand-in with the test defaults (manufacturing DDL, 0.2 s commit delay)."""
    return make_standin()
