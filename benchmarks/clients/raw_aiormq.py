"""The reference: a hand-written aiormq loop, what a careful user writes without a library.

Consume: ``basic_consume`` with a callback that orjson-decodes the body, checks ``action`` and
``data``, awaits the handler and then ``await channel.basic_ack(tag)`` — one ack per message.
Publish: ``basic_publish`` on a confirm channel. RPC: the server replies to ``reply_to`` on its
confirm channel, then acks; the client consumes ``amq.rabbitmq.reply-to`` (no-ack) and matches
replies by ``correlation_id``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiormq
import aiormq.abc
import orjson
from pamqp import commands as spec

from ..broker import event_body
from ..settings import ACTION
from ..tally import Tally
from .base import BulkFn, CallFn, Client, PublishFn, reply_data

#: RabbitMQ's direct reply-to pseudo-queue.
REPLY_TO = "amq.rabbitmq.reply-to"
JSON = "application/json"
_PERSISTENT = spec.Basic.Properties(content_type=JSON, delivery_mode=2)

Handler = Callable[..., Awaitable[Any]]
Callback = Callable[[aiormq.abc.DeliveredMessage], Coroutine[Any, Any, None]]


def _dispatcher(
    channel: aiormq.abc.AbstractChannel, handlers: dict[str, Handler], reply: bool
) -> Callback:
    """The consume callback: decode, check, await the handler, (reply,) ack."""

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        event = orjson.loads(message.body)
        action = event.get("action")
        data = event.get("data")
        if type(action) is str and type(data) is dict:
            handler = handlers.get(action)
            if handler is not None:
                result = await handler(**data)
                if reply:
                    await _reply(channel, message, result)
        await channel.basic_ack(message.delivery.delivery_tag)  # type: ignore[union-attr,arg-type]

    return on_message


async def _reply(
    channel: aiormq.abc.AbstractChannel, message: aiormq.abc.DeliveredMessage, result: Any
) -> None:
    request = message.header.properties
    if request.reply_to:
        await channel.basic_publish(
            orjson.dumps({"data": result}),
            routing_key=request.reply_to,
            properties=spec.Basic.Properties(
                content_type=JSON, correlation_id=request.correlation_id
            ),
        )


@asynccontextmanager
async def _serving(
    url: str, queue: str, prefetch: int, handler: Handler, reply: bool
) -> AsyncIterator[None]:
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.basic_qos(prefetch_count=prefetch)
        await channel.queue_declare(queue, durable=True)
        callback = _dispatcher(channel, {ACTION: handler}, reply)
        ok = await channel.basic_consume(queue, callback)
        yield
        await channel.basic_cancel(ok.consumer_tag)  # type: ignore[arg-type]
    finally:
        await connection.close()


def consumer(
    url: str, queue: str, prefetch: int, tally: Tally
) -> AbstractAsyncContextManager[None]:
    """Consume ``queue``; the handler counts."""
    hit = tally.hit

    async def on_bench(i: int, name: str) -> None:
        hit(i)

    return _serving(url, queue, prefetch, on_bench, reply=False)


def rpc_server(url: str, queue: str, prefetch: int) -> AbstractAsyncContextManager[None]:
    """Serve requests on ``queue``."""

    async def on_request(i: int, name: str) -> dict[str, int]:
        return reply_data(i)

    return _serving(url, queue, prefetch, on_request, reply=True)


@asynccontextmanager
async def publisher(url: str, queue: str) -> AsyncIterator[PublishFn]:
    """Publish events to ``queue`` on a confirm channel, awaiting each confirm."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        basic_publish = channel.basic_publish

        async def publish(i: int) -> None:
            await basic_publish(event_body(i), routing_key=queue, properties=_PERSISTENT)

        yield publish
    finally:
        await connection.close()


#: Confirms outstanding at once in the pipelined loop (as ``publish_many``'s default window).
WINDOW = 256


@asynccontextmanager
async def bulk_publisher(url: str, queue: str) -> AsyncIterator[BulkFn]:
    """Publish ``range(n)`` with up to :data:`WINDOW` confirms outstanding: a task per publish
    awaiting its confirm, a semaphore for the window — the hand-written pipelining loop."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        basic_publish = channel.basic_publish

        async def publish_all(n: int) -> None:
            window = asyncio.Semaphore(WINDOW)

            async def one(i: int) -> None:
                try:
                    await basic_publish(event_body(i), routing_key=queue, properties=_PERSISTENT)
                finally:
                    window.release()

            tasks = []
            for i in range(n):
                await window.acquire()
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)

        yield publish_all
    finally:
        await connection.close()


@asynccontextmanager
async def rpc_client(url: str, queue: str) -> AsyncIterator[CallFn]:
    """Call the server on ``queue`` over direct reply-to."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        pending: dict[str, asyncio.Future[Any]] = {}

        async def on_reply(message: aiormq.abc.DeliveredMessage) -> None:
            waiter = pending.pop(message.header.properties.correlation_id or "", None)
            if waiter is not None and not waiter.done():
                waiter.set_result(orjson.loads(message.body))

        await channel.basic_consume(REPLY_TO, on_reply, no_ack=True)
        yield _caller(channel, queue, pending)
    finally:
        await connection.close()


def _caller(
    channel: aiormq.abc.AbstractChannel, queue: str, pending: dict[str, asyncio.Future[Any]]
) -> CallFn:
    ids = itertools.count()
    loop = asyncio.get_running_loop()

    async def call(i: int) -> Any:
        correlation_id = str(next(ids))
        waiter = pending[correlation_id] = loop.create_future()
        properties = spec.Basic.Properties(
            content_type=JSON, reply_to=REPLY_TO, correlation_id=correlation_id
        )
        await channel.basic_publish(event_body(i), routing_key=queue, properties=properties)
        return (await waiter)["data"]

    return call


CLIENT = Client(
    name="raw",
    package="aiormq",
    consumer=consumer,
    publisher=publisher,
    rpc_server=rpc_server,
    rpc_client=rpc_client,
    bulk_publisher=bulk_publisher,
)
