"""The channel writer against a scripted channel, one failure mode per test.

Each test checks the requests the channel saw (appends as offset ranges, opens), where replays
started, what was released, and that every row landed exactly once. No HTTP, no real time.
"""

from __future__ import annotations

import pytest

from streamd.errors import ChannelFenced, DeliveryError, ReopenChannel
from tests.unit.sinks.streaming.scripted import (
    Fault,
    Harness,
    leaves,
    reset_error,
    settle,
    wire_error,
)


async def test_appends_in_order_and_releases_exactly_what_each_commit_covers() -> None:
    """Batches go out in offset order within the window; a commit releases up to its offset."""
    h = Harness([(1, 3), (4, 6), (7, 9)], window=2)
    async with h.running():
        assert h.channel.log == ["open", "append 1-3", "append 4-6"]  # the window is full
        assert h.batches.replays == [1]
        await h.commit_and_poll(upto=3)
        assert h.batches.released == [3]
        assert h.channel.log[-1] == "append 7-9"
        assert h.writer.snapshot()["inflight_rows"] == 6
        assert not h.done
        await h.commit_and_poll()
    assert h.done
    assert h.batches.released == [3, 9]
    assert h.channel.landed == list(range(1, 10))
    assert h.batches.rereads == []


async def test_429_waits_what_retry_after_asks_then_sends_the_same_range() -> None:
    """A 429 with Retry-After: 2 waits two seconds on the clock, then the same batch, no reopen."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", Fault("429", wire_error(429, retry_after="2"), at=1))
    async with h.running():
        assert h.channel.log == ["open", "append 1-3 429"]
        await h.advance(1.5)
        assert h.channel.log == ["open", "append 1-3 429"]
        await h.advance(0.5)
        assert h.channel.log == ["open", "append 1-3 429", "append 1-3", "append 4-6"]
        await h.commit_and_poll()
    assert h.done
    assert h.batches.replays == [1]
    assert h.batches.released == [6]
    assert h.channel.landed == list(range(1, 7))
    assert "429" in (h.writer.last_error or "")


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_backs_off_and_sends_the_same_range(status: int) -> None:
    """A 5xx is retried after a backoff with the same token and offsets; nothing is reopened."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", Fault(str(status), wire_error(status), at=4))
    async with h.running():
        assert h.channel.log == ["open", "append 1-3", f"append 4-6 {status}"]
        await h.advance(30)  # the backoff is jittered, never above 30 s
        assert h.channel.log == ["open", "append 1-3", f"append 4-6 {status}", "append 4-6"]
        await h.commit_and_poll()
    assert h.done
    assert h.batches.released == [6]
    assert h.channel.landed == list(range(1, 7))


async def test_reset_before_the_server_applied_it_reopens_and_replays_from_committed() -> None:
    """The outcome is unknown, so the token is never reused: reopen, then replay every batch
    past the committed offset, rereading the bodies the writer let go."""
    h = Harness([(1, 3), (4, 6), (7, 9)], window=2)
    h.channel.fail("append", Fault("reset", reset_error(), at=7))
    async with h.running():
        await h.commit_and_poll(upto=3)
        assert h.channel.log == [
            "open",
            "append 1-3",
            "append 4-6",
            "append 7-9 reset",
            "open",
            "append 4-6",
            "append 7-9",
        ]
        assert h.batches.rereads == [(4, 6)]  # 7-9 still had its body
        await h.commit_and_poll()
    assert h.done
    assert h.batches.released == [3, 9]
    assert h.channel.landed == list(range(1, 10))


async def test_reset_after_the_server_applied_it_replays_what_the_reopen_discarded() -> None:
    """The server took 4-6 but the answer was lost: the reopen discards it (uncommitted), the
    replay sends it again, and it lands once."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", Fault("reset", reset_error(), at=4, applied=True))
    async with h.running():
        assert h.channel.log == [
            "open",
            "append 1-3",
            "append 4-6 reset",
            "open",
            "append 1-3",
            "append 4-6",
        ]
        assert h.batches.rereads == [(1, 3)]
        await h.commit_and_poll()
    assert h.done
    assert h.batches.released == [6]
    assert h.channel.landed == list(range(1, 7))


async def test_reset_after_the_server_committed_it_replays_nothing() -> None:
    """The rows were committed before the reopen: its status covers them, so none is resent."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", Fault("reset", reset_error(), at=4, applied=True, commits=True))
    async with h.running():
        pass
    assert h.done
    assert h.channel.log == ["open", "append 1-3", "append 4-6 reset", "open"]
    assert h.batches.rereads == []
    assert h.batches.released == [6]
    assert h.channel.landed == list(range(1, 7))


MUST_REOPEN = {
    "409": wire_error(409),
    "409 ERR_CHANNEL_MUST_BE_REOPENED": wire_error(409, "ERR_CHANNEL_MUST_BE_REOPENED"),
    "410 failover": wire_error(410),
    "400 row sequencer": wire_error(400, "ERR_CHANNEL_HAS_INVALID_ROW_SEQUENCER"),
    "400 STALE_PIPE_CACHE": wire_error(400, "STALE_PIPE_CACHE"),
}


@pytest.mark.parametrize("error", MUST_REOPEN.values(), ids=MUST_REOPEN.keys())
async def test_a_must_reopen_answer_reopens_and_replays_from_committed(
    error: DeliveryError,
) -> None:
    """Every must-reopen answer: one reopen, then everything past the committed offset again."""
    assert type(error) is ReopenChannel
    h = Harness([(1, 3), (4, 6), (7, 9)], window=2)
    h.channel.fail("append", Fault("refused", error, at=7))
    async with h.running():
        await h.commit_and_poll(upto=3)
        await h.commit_and_poll()
    assert h.done
    assert h.channel.log == [
        "open",
        "append 1-3",
        "append 4-6",
        "append 7-9 refused",
        "open",
        "append 4-6",
        "append 7-9",
    ]
    assert h.batches.released == [3, 9]
    assert h.channel.landed == list(range(1, 10))


async def test_a_reopen_refused_is_tried_again_until_it_sticks() -> None:
    """A 409 on the reopen itself (the server still settles): open again, then replay."""
    h = Harness([(1, 3)])
    h.channel.fail("append", Fault("reset", reset_error(), at=1))
    h.channel.fail("open", Fault("409", wire_error(409), at=2))
    async with h.running():
        await h.commit_and_poll()
    assert h.done
    assert h.channel.log == ["open", "append 1-3 reset", "open 409", "open", "append 1-3"]
    assert h.channel.landed == [1, 2, 3]


async def test_an_invalid_channel_in_a_status_read_is_reopened_and_replayed() -> None:
    """A status poll that finds the channel invalid makes the writer reopen and replay."""
    h = Harness([(1, 3), (4, 6)])
    async with h.running():
        h.channel.status_code = "ERR_CHANNEL_INVALID"
        await h.tracker.poll_once()
        await settle()
        assert h.channel.log == [
            "open",
            "append 1-3",
            "append 4-6",
            "open",
            "append 1-3",
            "append 4-6",
        ]
        assert h.batches.rereads == [(1, 3), (4, 6)]
        await h.commit_and_poll()
    assert h.done
    assert h.channel.landed == list(range(1, 7))


@pytest.mark.parametrize(
    "code", ["STALE_CONTINUATION_TOKEN_SEQUENCER", "ERR_CHANNEL_HAS_INVALID_CLIENT_SEQUENCER"]
)
async def test_a_stale_continuation_token_means_fenced_and_the_writer_stops(code: str) -> None:
    """Our appends never race our reopens, so a moved sequencer is another opener: no reopen,
    no replay, nothing released, and the error names the fix."""
    h = Harness([(1, 3), (4, 6)])
    h.channel.fail("append", Fault("stale", wire_error(400, code), at=4))
    with pytest.RaisesGroup(ChannelFenced, flatten_subgroups=True) as raised:
        async with h.running():
            pass
    [fenced] = leaves(raised.value)
    assert "channel_prefix" in str(fenced)
    assert h.channel.log == ["open", "append 1-3", "append 4-6 stale"]
    assert h.batches.released == []
    assert not h.writer.is_open


async def test_a_commit_that_never_comes_holds_everything_until_the_drain_times_out() -> None:
    """Without a commit nothing is released however long it waits; after the timed-out drain a
    restarted writer replays from the committed offset, and every row lands once."""
    h = Harness([(1, 3), (4, 6), (7, 9)])
    async with h.running() as drain:
        for _ in range(20):
            await h.advance(3)
            await h.tracker.poll_once()
            await settle()
        assert not h.done
        assert h.batches.released == []
        assert h.writer.snapshot()["inflight_batches"] == 3
        assert h.writer.commit_lag_s() == 60.0
        drain.cancel()
    assert not h.done
    assert h.channel.log == ["open", "append 1-3", "append 4-6", "append 7-9"]

    h.writer = h.new_writer()
    async with h.running():
        await h.commit_and_poll()
    assert h.done
    assert h.batches.replays == [1, 1]
    assert h.channel.log[4:] == ["open", "append 1-3", "append 4-6", "append 7-9"]
    assert h.batches.released == [9]
    assert h.channel.landed == list(range(1, 10))
