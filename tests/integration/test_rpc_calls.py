"""events.call: RPC requests over direct reply-to, on both brokers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiormq.abc
import pytest

from eventrabbit import (
    RemoteError,
    RetryConfig,
    RPCTimeout,
    UnroutableError,
    build_event_dependencies,
)
from eventrabbit.common import ConsumeChannel
from eventrabbit.events import Events
from eventrabbit.handle import Handle
from tests.conftest import Names
from tests.helpers import consumer_count, depth_is, wait_for

Channel = aiormq.abc.AbstractChannel


@pytest.fixture
async def server(
    broker_url: str, names: Names, amqp_channel: Channel
) -> AsyncIterator[tuple[Events, Handle, str]]:
    """A service answering ADD, FAIL and SLOW on a fresh queue; its events make the calls."""
    events, handle = build_event_dependencies(broker_url, retry_config=RetryConfig(max_retries=0))
    queue = names.queue("rpc")

    @events.consumer(action="ADD")
    async def add(a: int, b: int) -> int:
        return a + b

    @events.consumer(action="FAIL")
    async def fail(why: str) -> None:
        raise LookupError(why)

    @events.consumer(action="SLOW")
    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "late"

    task = asyncio.create_task(handle.consume(ConsumeChannel(url=broker_url, queue_name=queue)))
    try:
        await wait_for(lambda: consumer_count(amqp_channel, queue), message="server consuming")
        yield events, handle, queue
    finally:
        await handle.close()
        assert task.done()


async def test_call_returns_the_result(server: tuple[Events, Handle, str]) -> None:
    events, _, queue = server
    assert await events.call("ADD", {"a": 2, "b": 3}, key=queue, timeout=5) == 5


async def test_thousand_concurrent_calls_get_their_own_results(
    server: tuple[Events, Handle, str],
) -> None:
    events, _, queue = server
    results = await asyncio.gather(
        *(events.call("ADD", {"a": i, "b": 1000}, key=queue, timeout=30) for i in range(1000))
    )
    assert results == [i + 1000 for i in range(1000)]
    assert events.rpc.pending == 0


async def test_error_reply_raises_remote_error(server: tuple[Events, Handle, str]) -> None:
    events, _, queue = server
    with pytest.raises(RemoteError) as info:
        await events.call("FAIL", {"why": "no such user"}, key=queue, timeout=5)
    assert info.value.type == "LookupError"
    assert info.value.message == "no such user"


async def test_bad_request_raises_remote_error_invalid_message(
    server: tuple[Events, Handle, str],
) -> None:
    events, _, queue = server
    with pytest.raises(RemoteError) as info:
        await events.call("ADD", {"a": 1}, key=queue, timeout=5)
    assert info.value.type == "InvalidMessage"
    assert "missing keys b" in info.value.message


async def test_timeout_raises_and_forgets_the_call(server: tuple[Events, Handle, str]) -> None:
    events, _, queue = server
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RPCTimeout):
        await events.call("SLOW", {"seconds": 1.0}, key=queue, timeout=0.3)
    assert loop.time() - started < 1.0
    assert events.rpc.pending == 0
    # The late reply is dropped, and the channel keeps working for the next call.
    assert await events.call("ADD", {"a": 1, "b": 1}, key=queue, timeout=5) == 2


async def test_cancelled_call_is_forgotten(server: tuple[Events, Handle, str]) -> None:
    events, _, queue = server
    call = asyncio.create_task(events.call("SLOW", {"seconds": 0.5}, key=queue, timeout=5))
    await wait_for(lambda: events.rpc.pending == 1, message="call in flight")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert events.rpc.pending == 0
    assert await events.call("ADD", {"a": 4, "b": 4}, key=queue, timeout=5) == 8


async def test_unroutable_request_raises_at_once(broker_url: str, names: Names) -> None:
    events, handle = build_event_dependencies(broker_url)
    try:
        with pytest.raises(UnroutableError):
            await events.call("ADD", {"a": 1, "b": 2}, key=names.queue("nobody"), timeout=5)
        assert events.rpc.pending == 0
    finally:
        await handle.close()


async def test_request_expires_when_nobody_answers_in_time(
    broker_url: str, names: Names, amqp_channel: Channel
) -> None:
    """A request waiting in a queue with no consumer is dropped by the broker at expiration."""
    queue = names.queue("idle")
    await amqp_channel.queue_declare(queue, durable=True)
    events, handle = build_event_dependencies(broker_url)
    try:
        with pytest.raises(RPCTimeout):
            await events.call("ADD", {"a": 1, "b": 2}, key=queue, timeout=0.3, expiration=0.3)
        await wait_for(depth_is(amqp_channel, queue, 0), timeout=5)
    finally:
        await handle.close()


async def test_server_dying_mid_call_hands_the_request_to_another_server(
    broker_url: str, names: Names, amqp_channel: Channel
) -> None:
    """A request in flight when its server dies is redelivered and answered by the next one."""
    queue = names.queue("failover")
    first_started = asyncio.Event()
    first_events, first = build_event_dependencies(broker_url)

    @first_events.consumer(action="WORK")
    async def hang(n: int) -> int:
        first_started.set()
        await asyncio.sleep(60)
        return -1

    second_events, second = build_event_dependencies(broker_url)

    @second_events.consumer(action="WORK")
    async def work(n: int) -> int:
        return n * 10

    caller, caller_handle = build_event_dependencies(broker_url)
    channel = ConsumeChannel(url=broker_url, queue_name=queue)
    first_task = asyncio.create_task(first.consume(channel))
    second_task: asyncio.Task[None] | None = None
    try:
        await wait_for(lambda: consumer_count(amqp_channel, queue), message="first server up")
        call = asyncio.create_task(caller.call("WORK", {"n": 7}, key=queue, timeout=20))
        await asyncio.wait_for(first_started.wait(), 10)
        # The first server dies with the request unacked: no grace for its handler.
        await first.close(timeout=0)
        second_task = asyncio.create_task(second.consume(channel))
        assert await asyncio.wait_for(call, 20) == 70
    finally:
        await first.close(timeout=0)
        await second.close()
        await caller_handle.close()
        assert first_task.done()
        assert second_task is None or second_task.done()
