"""events.call: RPC requests over direct reply-to, on both brokers.

Every way a call fails is an ``RPCError``: ``RPCTimeout``, ``RemoteError``, ``ReplyLost`` (the
RPC channel closed while waiting), ``RequestError`` (also a ``PublishError``: the broker did
not take the request) and ``UnroutableRequest`` (also an ``UnroutableError``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiormq.abc
import pytest
from yarl import URL

from eventrabbit import (
    BrokerUnavailable,
    Events,
    Handle,
    PublishError,
    RemoteError,
    ReplyLost,
    RequestError,
    RetryConfig,
    RPCError,
    RPCTimeout,
    UnroutableError,
    UnroutableRequest,
    build_event_dependencies,
)
from tests.conftest import Names, Services
from tests.helpers import assert_absent, eventually, named, queue_depth

Channel = aiormq.abc.AbstractChannel
# Nothing listens on port 1.
CLOSED_PORT_URL = "amqp://guest:rpc-secret@127.0.0.1:1/"


@dataclass
class Server:
    """A service answering ADD, FAIL and SLOW on a fresh queue; its events make the calls.

    SLOW sets ``started`` and answers only once ``release`` is set (teardown sets it).
    """

    events: Events
    handle: Handle
    queue: str
    started: asyncio.Event
    release: asyncio.Event
    finished: asyncio.Event


@pytest.fixture
async def server(services: Services) -> Server:
    events, handle = services.build(retry_config=RetryConfig(max_retries=0))
    target = services.target("rpc")
    server = Server(
        events, handle, target.queue_name, asyncio.Event(), services.gate(), asyncio.Event()
    )

    @events.consumer(action="ADD")
    async def add(a: int, b: int) -> int:
        return a + b

    @events.consumer(action="FAIL")
    async def fail(why: str) -> None:
        raise LookupError(why)

    @events.consumer(action="SLOW")
    async def slow() -> str:
        server.started.set()
        await server.release.wait()
        server.finished.set()
        return "late"

    await services.consume(handle, target)
    return server


async def test_call_returns_the_result(server: Server) -> None:
    assert await server.events.call("ADD", {"a": 2, "b": 3}, key=server.queue, timeout=5) == 5


async def test_thousand_concurrent_calls_get_their_own_results(server: Server) -> None:
    events = server.events
    results = await asyncio.gather(
        *(
            events.call("ADD", {"a": i, "b": 1000}, key=server.queue, timeout=30)
            for i in range(1000)
        )
    )
    assert results == [i + 1000 for i in range(1000)]
    assert events.rpc.pending == 0


async def test_error_reply_raises_remote_error(server: Server) -> None:
    with pytest.raises(RemoteError) as info:
        await server.events.call("FAIL", {"why": "no such user"}, key=server.queue, timeout=5)
    assert isinstance(info.value, RPCError)
    assert info.value.type == "LookupError"
    assert info.value.message == "no such user"


async def test_bad_request_raises_remote_error_invalid_message(server: Server) -> None:
    with pytest.raises(RemoteError) as info:
        await server.events.call("ADD", {"a": 1}, key=server.queue, timeout=5)
    assert info.value.type == "InvalidMessage"
    assert "missing keys b" in info.value.message


async def test_timeout_raises_and_forgets_the_call(server: Server) -> None:
    """The call gives up at its timeout: the handler cannot answer before the test lets it,
    and the test lets it only after the call raised."""
    events = server.events
    with pytest.raises(RPCTimeout) as info:
        await events.call("SLOW", {}, key=server.queue, timeout=0.3)
    assert isinstance(info.value, RPCError)
    assert isinstance(info.value, TimeoutError)
    assert not server.finished.is_set()
    assert events.rpc.pending == 0
    # The late reply is dropped, and the channel keeps working for the next call.
    server.release.set()
    await asyncio.wait_for(server.finished.wait(), timeout=5)
    assert await events.call("ADD", {"a": 1, "b": 1}, key=server.queue, timeout=5) == 2


async def test_cancelled_call_is_forgotten(server: Server) -> None:
    events = server.events
    call = asyncio.create_task(events.call("SLOW", {}, key=server.queue, timeout=5))
    await asyncio.wait_for(server.started.wait(), timeout=5)  # the request is being handled
    assert events.rpc.pending == 1
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert events.rpc.pending == 0
    assert await events.call("ADD", {"a": 4, "b": 4}, key=server.queue, timeout=5) == 8


async def test_unroutable_request_raises_at_once(services: Services) -> None:
    events, _ = services.build()
    nobody = services.names.queue("nobody")
    with pytest.raises(UnroutableRequest) as info:
        await events.call("ADD", {"a": 1, "b": 2}, key=nobody, timeout=5)
    assert events.rpc.pending == 0
    error = info.value
    assert (error.exchange, error.routing_key) == ("", nobody)
    assert nobody in str(error)
    assert isinstance(error, RequestError)

    # What a caller writes catches it, whichever family it thinks of it in.
    async def call() -> None:
        await events.call("ADD", {"a": 1, "b": 2}, key=nobody, timeout=5)

    for family in (UnroutableError, PublishError, RPCError):
        assert await caught(call, family), family.__name__


async def caught(call: Callable[[], Awaitable[None]], family: type[Exception]) -> bool:
    try:
        await call()
    except family:
        return True
    return False


async def test_request_to_a_missing_exchange_raises_request_error(
    server: Server, names: Names, amqp_channel: Channel
) -> None:
    events = server.events
    missing = names.exchange("missing")
    with pytest.raises(RequestError) as info:
        await events.call("ADD", {"a": 1, "b": 2}, exchange_name=missing, key="x", timeout=5)
    error = info.value
    assert isinstance(error, RPCError)
    assert isinstance(error, PublishError)
    assert not isinstance(error, UnroutableError)
    assert error.exchange == missing
    assert missing in str(error)
    assert events.rpc.pending == 0
    await assert_absent(amqp_channel, exchanges=(missing,))  # calls declare nothing


async def test_a_call_right_after_a_failed_request_gets_its_reply(
    server: Server, names: Names
) -> None:
    """The broker closes the RPC channel for a request to a missing exchange; the next call
    goes out on a new channel and must get its reply."""
    events = server.events
    with pytest.raises(RequestError):
        await events.call("ADD", {"a": 1, "b": 2}, exchange_name=names.exchange(), timeout=5)
    assert await events.call("ADD", {"a": 2, "b": 2}, key=server.queue, timeout=5) == 4


async def test_request_without_a_connection_raises_request_error() -> None:
    events, handle = build_event_dependencies(CLOSED_PORT_URL, publish_timeout=2)
    try:
        with pytest.raises(RequestError) as info:
            await events.call("ADD", {"a": 1, "b": 2}, key="anywhere", timeout=30)
    finally:
        await handle.close()
    assert isinstance(info.value, RPCError)
    assert isinstance(info.value, PublishError)
    assert isinstance(info.value.__cause__, BrokerUnavailable)
    password = URL(CLOSED_PORT_URL).password
    assert password
    assert password not in str(info.value)
    assert events.rpc.pending == 0


async def test_reply_lost_when_the_rpc_connection_closes_while_waiting(
    server: Server,
    services: Services,
    broker_url: str,
    drop_connections: Callable[[str], Awaitable[None]],
) -> None:
    """The broker closes the caller's RPC connection while its request is being handled: the
    reply can never arrive, and the call says so at once instead of waiting for its timeout."""
    url, connection_name = named(broker_url, "rpc")
    caller, _ = services.build(url)
    call = asyncio.create_task(caller.call("SLOW", {}, key=server.queue, timeout=60))
    await asyncio.wait_for(server.started.wait(), timeout=5)

    await drop_connections(connection_name)
    with pytest.raises(ReplyLost) as info:
        await asyncio.wait_for(call, timeout=10)
    assert isinstance(info.value, RPCError)
    assert caller.rpc.pending == 0
    # The next call opens a new RPC connection and gets its reply.
    assert await caller.call("ADD", {"a": 3, "b": 4}, key=server.queue, timeout=10) == 7


async def test_request_expires_when_nobody_answers_in_time(
    services: Services, amqp_channel: Channel
) -> None:
    """A request waiting in a queue with no consumer is dropped by the broker at expiration."""
    queue = services.names.queue("idle")
    await amqp_channel.queue_declare(queue, durable=True)
    events, _ = services.build()
    with pytest.raises(RPCTimeout):
        await events.call("ADD", {"a": 1, "b": 2}, key=queue, timeout=0.3, expiration=0.3)

    async def expired() -> bool:
        return await queue_depth(amqp_channel, queue) == 0

    await eventually(expired, what=f"the request expired from {queue}")


async def test_server_dying_mid_call_hands_the_request_to_another_server(
    services: Services,
) -> None:
    """A request in flight when its server dies is redelivered and answered by the next one."""
    target = services.target("failover")
    first_started = asyncio.Event()
    first_events, first = services.build()

    @first_events.consumer(action="WORK")
    async def hang(n: int) -> int:
        first_started.set()
        await asyncio.Event().wait()  # only the server's death ends it
        return -1

    second_events, second = services.build()

    @second_events.consumer(action="WORK")
    async def work(n: int) -> int:
        return n * 10

    caller, _ = services.build()
    await services.consume(first, target)
    call = asyncio.create_task(caller.call("WORK", {"n": 7}, key=target.queue_name, timeout=20))
    await asyncio.wait_for(first_started.wait(), 10)
    # The first server dies with the request unacked: no grace for its handler.
    await first.close(timeout=0)
    services.start(second, target)
    assert await asyncio.wait_for(call, 20) == 70
