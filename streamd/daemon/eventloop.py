"""Which event loop the daemon runs on: uvloop where it is installed, else asyncio's own.

uvloop (a dependency of `uvicorn[standard]`, so normally present) runs the same anyio code with
less scheduler overhead per await and per socket event: ~5-10 % less client CPU per delivered row
in bench/throughput.py. `event_loop = "asyncio"` in the config opts out.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import anyio

from streamd.errors import ConfigError

EventLoop = Literal["auto", "uvloop", "asyncio"]
T = TypeVar("T")


def uses_uvloop(choice: EventLoop) -> bool:
    """Whether `choice` means uvloop here; "uvloop" when it is not installed is an error."""
    installed = importlib.util.find_spec("uvloop") is not None
    if choice == "uvloop" and not installed:
        raise ConfigError(
            'event_loop = "uvloop" but uvloop is not installed; pip install uvloop, '
            'or set event_loop = "auto"'
        )
    return choice != "asyncio" and installed


def run(func: Callable[[], Awaitable[T]], choice: EventLoop) -> T:
    """`anyio.run(func)` on the chosen loop."""
    return anyio.run(func, backend_options={"use_uvloop": uses_uvloop(choice)})
