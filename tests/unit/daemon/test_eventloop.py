"""The event loop choice: uvloop when asked for or available, asyncio when told."""

from __future__ import annotations

import asyncio

import pytest

from streamd.daemon import eventloop
from streamd.errors import ConfigError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_takes_uvloop_when_installed_and_asyncio_stays_asyncio() -> None:
    pytest.importorskip("uvloop")
    assert eventloop.run(_loop_module, "auto").startswith("uvloop")
    assert eventloop.run(_loop_module, "uvloop").startswith("uvloop")
    assert eventloop.run(_loop_module, "asyncio").startswith("asyncio")


def test_uvloop_asked_for_but_missing_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventloop.importlib.util, "find_spec", lambda _name: None)
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        eventloop.uses_uvloop("uvloop")
    assert eventloop.uses_uvloop("auto") is False
