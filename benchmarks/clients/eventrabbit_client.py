"""eventrabbit through its public API only.

Consume: ``build_event_dependencies``, ``@events.consumer``, ``handle.consume(ConsumeChannel)``
in a task, cancelled for the graceful stop. Publish: an ``@events.producer`` coroutine. RPC: a
consumer whose result eventrabbit replies to ``reply_to``, called with ``events.call``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from eventrabbit import Events, Handle, QueueConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel

from ..settings import ACTION
from ..tally import Tally
from .base import CallFn, Client, PublishFn, reply_data

#: The default exchange: route by queue name.
DEFAULT_EXCHANGE = ""


@asynccontextmanager
async def _consuming(
    url: str, queue: str, prefetch: int, register: Callable[[Events], None], tally: Tally | None
) -> AsyncIterator[None]:
    events, handle = build_event_dependencies(url, idle_timeout=None)
    register(events)
    channel = ConsumeChannel(url, queue, queue_config=QueueConfig(prefetch_count=prefetch))
    task = asyncio.create_task(handle.consume(channel))
    if tally is not None:
        task.add_done_callback(tally.fail_on_error)
    try:
        yield
    finally:
        await _stop(task, handle)


async def _stop(task: asyncio.Task[None], handle: Handle) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await handle.close()


def consumer(
    url: str, queue: str, prefetch: int, tally: Tally
) -> contextlib.AbstractAsyncContextManager[None]:
    """Consume ``queue``; the handler counts."""
    hit = tally.hit

    def register(events: Events) -> None:
        @events.consumer(ACTION)
        async def on_bench(i: int, name: str) -> None:
            hit()

    return _consuming(url, queue, prefetch, register, tally)


def rpc_server(url: str, queue: str, prefetch: int) -> contextlib.AbstractAsyncContextManager[None]:
    """Serve requests on ``queue``: the handler's result is replied to ``reply_to``."""

    def register(events: Events) -> None:
        @events.consumer(ACTION)
        async def on_request(i: int, name: str) -> dict[str, int]:
            return reply_data(i)

    return _consuming(url, queue, prefetch, register, None)


@asynccontextmanager
async def publisher(url: str, queue: str) -> AsyncIterator[PublishFn]:
    """An ``@events.producer`` publishing to ``queue`` through the default exchange."""
    events, handle = build_event_dependencies(url, idle_timeout=None)

    @events.producer(DEFAULT_EXCHANGE, ACTION, key=queue)
    async def produce(i: int) -> dict[str, Any]:
        return {"i": i, "name": "x"}

    publish: Callable[[int], Awaitable[dict[str, Any]]] = produce
    try:
        yield publish
    finally:
        await handle.close()


@asynccontextmanager
async def rpc_client(url: str, queue: str) -> AsyncIterator[CallFn]:
    """``events.call`` over direct reply-to, to ``queue`` through the default exchange."""
    events, _ = build_event_dependencies(url, idle_timeout=None)

    async def call(i: int) -> Any:
        return await events.call(ACTION, {"i": i, "name": "x"}, key=queue)

    try:
        yield call
    finally:
        await events.close()


CLIENT = Client(
    name="eventrabbit",
    package="eventrabbit",
    consumer=consumer,
    publisher=publisher,
    rpc_server=rpc_server,
    rpc_client=rpc_client,
)
