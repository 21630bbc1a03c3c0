"""aio-pika the way its documentation shows.

``connect_robust``, a channel (publisher confirms on, aio-pika's default), ``set_qos``,
``queue.consume(callback)`` with ``async with message.process()`` acking after the handler;
``default_exchange.publish(Message(...))``; for RPC a server that publishes the reply to
``message.reply_to`` and a caller consuming ``amq.rabbitmq.reply-to`` with ``no_ack``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from ..broker import event_body
from ..settings import ACTION
from ..tally import Tally
from .base import CallFn, Client, PublishFn, reply_data

REPLY_TO = "amq.rabbitmq.reply-to"
JSON = "application/json"

Handler = Callable[..., Awaitable[Any]]
Callback = Callable[[AbstractIncomingMessage], Awaitable[None]]


def _dispatcher(channel: AbstractChannel, handlers: dict[str, Handler], reply: bool) -> Callback:
    async def on_message(message: AbstractIncomingMessage) -> None:
        async with message.process():
            event = orjson.loads(message.body)
            action = event.get("action")
            data = event.get("data")
            if type(action) is str and type(data) is dict:
                handler = handlers.get(action)
                if handler is not None:
                    result = await handler(**data)
                    if reply and message.reply_to:
                        await _reply(channel, message, result)

    return on_message


async def _reply(channel: AbstractChannel, message: AbstractIncomingMessage, result: Any) -> None:
    response = aio_pika.Message(
        orjson.dumps({"data": result}),
        content_type=JSON,
        correlation_id=message.correlation_id,
    )
    await channel.default_exchange.publish(response, routing_key=str(message.reply_to))


@asynccontextmanager
async def _serving(
    url: str, queue: str, prefetch: int, handler: Handler, reply: bool
) -> AsyncIterator[None]:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        declared = await channel.declare_queue(queue, durable=True)
        tag = await declared.consume(_dispatcher(channel, {ACTION: handler}, reply))
        yield
        await declared.cancel(tag)


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
    """Publish persistent events to ``queue``; each publish waits for its confirm."""
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        exchange = channel.default_exchange

        async def publish(i: int) -> None:
            message = aio_pika.Message(
                event_body(i),
                content_type=JSON,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, routing_key=queue)

        yield publish


@asynccontextmanager
async def rpc_client(url: str, queue: str) -> AsyncIterator[CallFn]:
    """Call the server on ``queue`` over direct reply-to."""
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        pending: dict[str, asyncio.Future[Any]] = {}

        async def on_reply(message: AbstractIncomingMessage) -> None:
            waiter = pending.pop(message.correlation_id or "", None)
            if waiter is not None and not waiter.done():
                waiter.set_result(orjson.loads(message.body))

        replies = await channel.get_queue(REPLY_TO, ensure=False)
        await replies.consume(on_reply, no_ack=True)
        yield _caller(channel, queue, pending)


def _caller(
    channel: AbstractChannel, queue: str, pending: dict[str, asyncio.Future[Any]]
) -> CallFn:
    ids = itertools.count()
    loop = asyncio.get_running_loop()
    exchange = channel.default_exchange

    async def call(i: int) -> Any:
        correlation_id = str(next(ids))
        waiter = pending[correlation_id] = loop.create_future()
        request = aio_pika.Message(
            event_body(i), content_type=JSON, reply_to=REPLY_TO, correlation_id=correlation_id
        )
        await exchange.publish(request, routing_key=queue)
        return (await waiter)["data"]

    return call


CLIENT = Client(
    name="aio-pika",
    package="aio-pika",
    consumer=consumer,
    publisher=publisher,
    rpc_server=rpc_server,
    rpc_client=rpc_client,
)
