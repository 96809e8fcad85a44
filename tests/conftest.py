"""Shared fixtures.

The stand-in runs in its own thread and event loop (a blocking portal), so it owns its port and its
teardown, while async tests drive it over real HTTP from their own loop.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
        self._running: list[tuple[concurrent.futures.Future[Any], Standin]] = []

    def __call__(self, **overrides: Any) -> Standin:
        """Start one with `StandinSettings` defaults for tests, overridden by `overrides`."""
        values: dict[str, Any] = {
            "data_dir": self._tmp_path / "standin",
            "sql_dirs": (MANUFACTURING_SQL,),
            "commit_delay_s": 0.2,
            **overrides,
        }
        future, standin = self._portal.start_task(serve, StandinSettings(**values))
        self._running.append((future, standin))
        return standin

    def stop(self, standin: Standin) -> None:
        """Cancel a running stand-in and wait until its storage is closed."""
        for entry in list(self._running):
            if entry[1] is standin:
                self._running.remove(entry)
                _cancel_and_wait(entry[0])

    def stop_all(self) -> None:
        """Stop every stand-in still running, newest first."""
        while self._running:
            _cancel_and_wait(self._running.pop()[0])


def _cancel_and_wait(future: concurrent.futures.Future[Any]) -> None:
    future.cancel()
    with contextlib.suppress(concurrent.futures.CancelledError):
        future.result(timeout=30)


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
