"""eventrabbit through its public API only, optionally with hooks (``hooked``).

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

from eventrabbit import Events, Handle, Hooks, QueueConfig, build_event_dependencies
from eventrabbit.common import ConsumeChannel

from ..settings import ACTION
from ..tally import Tally
from .base import BulkFn, CallFn, Client, PublishFn, reply_data

#: The default exchange: route by queue name.
DEFAULT_EXCHANGE = ""
#: Builds the hooks of one ``build_event_dependencies`` (fresh each time: a Prometheus hook
#: takes a registry of its own).
HooksFactory = Callable[[], list[Hooks]]


def _no_hooks() -> list[Hooks]:
    return []


def _build(url: str, hooks: HooksFactory) -> tuple[Events, Handle]:
    return build_event_dependencies(url, idle_timeout=None, hooks=hooks() or None)


@asynccontextmanager
async def _consuming(
    url: str,
    queue: str,
    prefetch: int,
    register: Callable[[Events], None],
    tally: Tally | None,
    hooks: HooksFactory,
) -> AsyncIterator[None]:
    events, handle = _build(url, hooks)
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
    url: str, queue: str, prefetch: int, tally: Tally, hooks: HooksFactory = _no_hooks
) -> contextlib.AbstractAsyncContextManager[None]:
    """Consume ``queue``; the handler counts."""
    hit = tally.hit

    def register(events: Events) -> None:
        @events.consumer(ACTION)
        async def on_bench(i: int, name: str) -> None:
            hit(i)

    return _consuming(url, queue, prefetch, register, tally, hooks)


def rpc_server(
    url: str, queue: str, prefetch: int, hooks: HooksFactory = _no_hooks
) -> contextlib.AbstractAsyncContextManager[None]:
    """Serve requests on ``queue``: the handler's result is replied to ``reply_to``."""

    def register(events: Events) -> None:
        @events.consumer(ACTION)
        async def on_request(i: int, name: str) -> dict[str, int]:
            return reply_data(i)

    return _consuming(url, queue, prefetch, register, None, hooks)


@asynccontextmanager
async def publisher(
    url: str, queue: str, hooks: HooksFactory = _no_hooks
) -> AsyncIterator[PublishFn]:
    """An ``@events.producer`` publishing to ``queue`` through the default exchange."""
    events, handle = _build(url, hooks)

    @events.producer(DEFAULT_EXCHANGE, ACTION, key=queue)
    async def produce(i: int) -> dict[str, Any]:
        return {"i": i, "name": "x"}

    publish: Callable[[int], Awaitable[dict[str, Any]]] = produce
    try:
        yield publish
    finally:
        await handle.close()


@asynccontextmanager
async def rpc_client(
    url: str, queue: str, hooks: HooksFactory = _no_hooks
) -> AsyncIterator[CallFn]:
    """``events.call`` over direct reply-to, to ``queue`` through the default exchange."""
    events, _ = _build(url, hooks)

    async def call(i: int) -> Any:
        return await events.call(ACTION, {"i": i, "name": "x"}, key=queue)

    try:
        yield call
    finally:
        await events.close()


@asynccontextmanager
async def bulk_publisher(
    url: str, queue: str, hooks: HooksFactory = _no_hooks
) -> AsyncIterator[BulkFn]:
    """``events.publish_many`` of ``range(n)`` to ``queue`` (default window)."""
    events, handle = _build(url, hooks)

    async def publish_all(n: int) -> None:
        result = await events.publish_many(
            DEFAULT_EXCHANGE, ACTION, ({"i": i, "name": "x"} for i in range(n)), key=queue
        )
        if not result.ok:
            raise RuntimeError(f"{len(result.failed)} of {n} not published: {result.failed[0]}")

    try:
        yield publish_all
    finally:
        await handle.close()


CLIENT = Client(
    name="eventrabbit",
    package="eventrabbit",
    consumer=consumer,
    publisher=publisher,
    rpc_server=rpc_server,
    rpc_client=rpc_client,
    bulk_publisher=bulk_publisher,
)


def hooked(name: str, hooks: HooksFactory) -> Client:
    """eventrabbit with ``hooks`` on every role: what instrumentation costs."""
    return Client(
        name=name,
        package="eventrabbit",
        consumer=lambda url, queue, prefetch, tally: consumer(url, queue, prefetch, tally, hooks),
        publisher=lambda url, queue: publisher(url, queue, hooks),
        rpc_server=lambda url, queue, prefetch: rpc_server(url, queue, prefetch, hooks),
        rpc_client=lambda url, queue: rpc_client(url, queue, hooks),
        bulk_publisher=lambda url, queue: bulk_publisher(url, queue, hooks),
    )
