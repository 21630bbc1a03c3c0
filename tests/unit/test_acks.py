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


async def test_a_lone_delivery_is_acked_at_once_without_a_timer(timers: list[float]) -> None:
    channel = Channel()
    batcher = AckBatcher(channel, prefetch_count=100)  # type: ignore[arg-type]
    batcher.opened(1)
    await batcher.ack(1)
    assert channel.acks == [(1, False)]
    assert FLUSH_DELAY not in timers  # nothing in flight could have joined it


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
