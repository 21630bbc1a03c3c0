"""The ack batcher without a broker: a recording channel stands in for aiormq's, and the
running loop's ``call_later`` is watched to see whether an ack waited for others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eventrabbit.acks import FLUSH_DELAY, AckBatcher


class Channel:
    """Records ``basic_ack`` calls as (tag, multiple)."""

    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []

    async def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> None:
        self.acks.append((tag, multiple))


@pytest.fixture
async def timers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays of every ``call_later`` on the running loop during the test."""
    loop = asyncio.get_running_loop()
    delays: list[float] = []
    original = loop.call_later

    def recording(delay: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        delays.append(delay)
        return original(delay, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_later", recording)
    return delays


async def test_deliveries_run_one_after_another_share_one_ack() -> None:
    # What a consumer does with a prefetched burst: a task per delivery, each opening its
    # tag only when it runs, with a handler that never awaits. The first to finish must
    # still wait for the others (a delivery that is not open yet may be about to run).
    channel = Channel()
    batcher = AckBatcher(channel, prefetch_count=100)  # type: ignore[arg-type]

    async def delivery(tag: int) -> None:
        batcher.opened(tag)
        await batcher.ack(tag)

    await asyncio.gather(*(delivery(tag) for tag in range(1, 11)))
    assert channel.acks == [(10, True)]


async def test_deliveries_in_flight_are_waited_for_and_acked_together(
    timers: list[float],
) -> None:
    channel = Channel()
    batcher = AckBatcher(channel, prefetch_count=100)  # type: ignore[arg-type]
    for tag in (1, 2, 3):
        batcher.opened(tag)
    first = asyncio.create_task(batcher.ack(1))  # 2 and 3 are in flight: it waits for them
    await asyncio.sleep(0)
    assert channel.acks == []
    await batcher.ack(2)
    await batcher.ack(3)
    await first
    assert FLUSH_DELAY in timers
    assert channel.acks == [(3, True)]  # one multiple ack for the three
