"""The in-flight window both sinks keep: room, order, and waiters woken by every change."""

from __future__ import annotations

import anyio

from streamd.sinks.window import InflightWindow, Pulse


async def test_a_pulse_wakes_who_waits_now_and_no_one_later() -> None:
    """Every current waiter wakes on a firing; a firing with no one waiting is not kept."""
    pulse = Pulse()
    woken: list[int] = []
    pulse.fire()
    async with anyio.create_task_group() as tg:
        for i in range(2):

            async def wait(i: int = i) -> None:
                await pulse.wait()
                woken.append(i)

            tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        assert woken == []
        pulse.fire()
    assert sorted(woken) == [0, 1]


async def test_room_opens_when_the_oldest_is_done_and_order_is_kept() -> None:
    """A full window holds the sender until an item is done; items leave oldest first."""
    window: InflightWindow[str] = InflightWindow(2)
    window.append("a")
    window.append("b")
    sent: list[str] = []
    async with anyio.create_task_group() as tg:

        async def send() -> None:
            await window.wait_room()
            window.append("c")
            sent.append("c")

        tg.start_soon(send)
        await anyio.wait_all_tasks_blocked()
        assert sent == []
        assert window.popleft() == "a"
    assert sent == ["c"]
    assert list(window) == ["b", "c"]
    window[0] = "B"
    assert window[0] == "B"
    assert len(window) == 2


async def test_waiters_for_any_and_for_empty() -> None:
    """`wait_any` returns once an item is in flight, `wait_empty` once the last is done."""
    window: InflightWindow[int] = InflightWindow(4)
    seen: list[str] = []
    async with anyio.create_task_group() as tg:

        async def confirm() -> None:
            await window.wait_any()
            seen.append("any")

        async def drain() -> None:
            await window.wait_any()
            await window.wait_empty()
            seen.append("empty")

        tg.start_soon(confirm)
        tg.start_soon(drain)
        await anyio.wait_all_tasks_blocked()
        assert seen == []
        window.append(1)
        window.append(2)
        await anyio.wait_all_tasks_blocked()
        assert seen == ["any"]
        window.popleft()
        await anyio.wait_all_tasks_blocked()
        assert seen == ["any"]
        window.popleft()
    assert seen == ["any", "empty"]
    assert not window
