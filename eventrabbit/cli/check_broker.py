"""The broker half of ``eventrabbit check``: who answers, and what this user may do.

Theory of operation
-------------------
The product, version and cluster name are the server properties the broker sent when the
connection opened; the vhost is the one the connection opened. What the user may do is tried
on throwaway objects, never on a service's: an exclusive, auto-delete queue and an auto-delete
fanout exchange named ``eventrabbit.check.<random>`` are declared, bound to each other and
deleted again, and an empty message that no queue receives is published to the default
exchange, as ``consume`` does when it starts. Each operation runs on a channel of its own: a
refusal (403) closes the channel it came on. What a refused delete leaves goes with the
connection (the queue is exclusive; the exchange auto-deletes when that queue's binding goes)
— only an exchange that could be declared but neither bound nor deleted stays behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiormq
import aiormq.abc
from pamqp import commands as spec

from eventrabbit.connection import censor
from eventrabbit.publish_frames import new_id
from eventrabbit.topology import DEFAULT_EXCHANGE, WRITE_CHECK_TYPE

T = TypeVar("T")

#: The prefix of the throwaway queue and exchange.
THROWAWAY_PREFIX = "eventrabbit.check."


@dataclass(slots=True)
class Broker:
    """What ``check`` learned of one broker."""

    url: str  #: censored
    product: str
    version: str
    cluster: str
    vhost: str
    #: Operation -> whether the user may (``None``: could not be tried).
    permissions: dict[str, bool | None] = field(default_factory=dict)


async def attempt(
    connection: aiormq.abc.AbstractConnection,
    operation: Callable[[aiormq.abc.AbstractChannel], Awaitable[T]],
    *,
    confirms: bool = False,
) -> tuple[T | None, aiormq.exceptions.AMQPChannelError | None]:
    """Run ``operation`` on a channel of its own: its result, or the error that closed it."""
    channel = await connection.channel(publisher_confirms=confirms)
    try:
        return await operation(channel), None
    except aiormq.exceptions.AMQPChannelError as exc:
        return None, exc
    finally:
        if not channel.is_closed:
            await channel.close()


async def describe(connection: aiormq.abc.AbstractConnection) -> Broker:
    """The broker at the other end of ``connection``, and what its user may do there."""
    server = connection.server_properties or {}
    broker = Broker(
        url=censor(str(connection.url)),
        product=_text(server.get("product")),
        version=_text(server.get("version")),
        cluster=_text(server.get("cluster_name")),
        vhost=str(getattr(connection, "vhost", None) or connection.url.path[1:] or "/"),
    )
    broker.permissions = await permissions(connection)
    return broker


async def permissions(connection: aiormq.abc.AbstractConnection) -> dict[str, bool | None]:
    """Whether the user may declare, bind, publish to the default exchange, and delete."""
    name = THROWAWAY_PREFIX + new_id()

    async def declare_queue(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.queue_declare(name, exclusive=True, auto_delete=True)

    async def declare_exchange(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.exchange_declare(name, exchange_type="fanout", auto_delete=True)

    async def bind(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.queue_bind(name, name)

    async def publish(channel: aiormq.abc.AbstractChannel) -> Any:
        # Routing key "": no queue has that name, so the message goes nowhere.
        properties = spec.Basic.Properties(message_type=WRITE_CHECK_TYPE)
        return await channel.basic_publish(
            b"", exchange=DEFAULT_EXCHANGE, routing_key="", properties=properties
        )

    async def delete_exchange(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.exchange_delete(name)

    async def delete_queue(channel: aiormq.abc.AbstractChannel) -> Any:
        return await channel.queue_delete(name)

    queue_made = (await attempt(connection, declare_queue))[1] is None
    exchange_made = (await attempt(connection, declare_exchange))[1] is None
    may: dict[str, bool | None] = {"declare": queue_made and exchange_made, "bind": None}
    if queue_made and exchange_made:
        may["bind"] = (await attempt(connection, bind))[1] is None
    may["publish"] = (await attempt(connection, publish, confirms=True))[1] is None
    made = ((exchange_made, delete_exchange), (queue_made, delete_queue))
    deleted = [(await attempt(connection, delete))[1] is None for ok, delete in made if ok]
    may["delete"] = all(deleted) if deleted else None
    return may


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)
