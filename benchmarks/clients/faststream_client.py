"""FastStream's RabbitBroker the way its documentation shows.

``@broker.subscriber(RabbitQueue(...), channel=Channel(prefetch_count=...))`` on a handler
taking the decoded body (FastStream decodes JSON and acks after the handler); a
``broker.publisher(queue, persist=True)`` object for publishing; a subscriber whose return
value FastStream replies to ``reply_to``, and ``broker.request(...)`` (direct reply-to) as the
caller. Per-message logging is off (``logger=None``): its default INFO lines would dominate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

from ..settings import ACTION
from ..tally import Tally
from .base import CallFn, Client, PublishFn, reply_data

Handler = Callable[..., Awaitable[Any]]


def _broker(url: str) -> RabbitBroker:
    return RabbitBroker(url, logger=None)


@asynccontextmanager
async def _serving(
    url: str, queue: str, prefetch: int, handlers: dict[str, Handler]
) -> AsyncIterator[None]:
    broker = _broker(url)

    @broker.subscriber(RabbitQueue(queue, durable=True), channel=Channel(prefetch_count=prefetch))
    async def on_message(body: dict[str, Any]) -> Any:
        action = body.get("action")
        data = body.get("data")
        if type(action) is str and type(data) is dict:
            handler = handlers.get(action)
            if handler is not None:
                return await handler(**data)
        return None

    await broker.start()
    try:
        yield
    finally:
        await broker.stop()


def consumer(
    url: str, queue: str, prefetch: int, tally: Tally
) -> AbstractAsyncContextManager[None]:
    """Consume ``queue``; the handler counts."""
    hit = tally.hit

    async def on_bench(i: int, name: str) -> None:
        hit(i)

    return _serving(url, queue, prefetch, {ACTION: on_bench})


def rpc_server(url: str, queue: str, prefetch: int) -> AbstractAsyncContextManager[None]:
    """Serve requests on ``queue``: the subscriber's return value is the reply."""

    async def on_request(i: int, name: str) -> dict[str, int]:
        return reply_data(i)

    return _serving(url, queue, prefetch, {ACTION: on_request})


@asynccontextmanager
async def publisher(url: str, queue: str) -> AsyncIterator[PublishFn]:
    """A ``broker.publisher`` object publishing persistent events to ``queue``."""
    broker = _broker(url)
    target = broker.publisher(queue, persist=True)
    await broker.start()
    try:

        async def publish(i: int) -> None:
            await target.publish({"action": ACTION, "data": {"i": i, "name": "x"}})

        yield publish
    finally:
        await broker.stop()


@asynccontextmanager
async def rpc_client(url: str, queue: str) -> AsyncIterator[CallFn]:
    """``broker.request`` over direct reply-to."""
    broker = _broker(url)
    await broker.start()
    try:

        async def call(i: int) -> Any:
            reply = await broker.request(
                {"action": ACTION, "data": {"i": i, "name": "x"}}, queue, timeout=30
            )
            return await reply.decode()

        yield call
    finally:
        await broker.stop()


CLIENT = Client(
    name="faststream",
    package="faststream",
    consumer=consumer,
    publisher=publisher,
    rpc_server=rpc_server,
    rpc_client=rpc_client,
)
