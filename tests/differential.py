"""Differential testing of the in-memory broker: RabbitMQ is the oracle.

A *case* is an async function of a :class:`Side`. It declares, binds, publishes and drains
through the side's calls, which are the same aiormq channel calls on either broker; each call
writes what it saw into the side's :attr:`Side.transcript` — a publish whether it was routed
or returned, a refused call the error class, a drained queue every message's routing key,
exchange, body, ``redelivered`` flag, the properties that matter and the headers (``x-death``
without its ``time``, which differs by nature). :func:`compare` plays a case on both brokers
and returns the two transcripts, which a test asserts equal.

Names are unique per play (a prefix), and the prefix is taken out of everything recorded —
including header values such as ``x-death``'s queue — so both transcripts read the same.
Everything a case declares on RabbitMQ is deleted afterwards.

A drain without ``expect`` takes what is in the queue now (``basic.get`` until empty: every
publish before it was confirmed, so it is there). With ``expect=n`` it consumes until ``n``
messages came, within a deadline — the way to wait for messages that arrive later (TTL
expiry, dead-lettering); after the ``n``-th, a ``basic.get`` checks that nothing more came.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiormq
import aiormq.abc
import aiormq.exceptions
from pamqp import commands as spec

from eventrabbit.testing import memory_broker
from eventrabbit.testing.transport import connect_memory
from tests.helpers import BROKER_URL

#: Seconds a drain with ``expect`` waits for its messages.
DRAIN_TIMEOUT = 10.0
#: The properties a transcript records besides the headers.
PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "message_type",
    "user_id",
    "app_id",
)

Case = Callable[["Side"], Awaitable[None]]


class Side:
    """One broker's side of a case: a connection, the names it made, what it saw."""

    def __init__(self, kind: str, connection: aiormq.abc.AbstractConnection) -> None:
        self.kind = kind
        self.connection = connection
        self.prefix = f"diff.{uuid.uuid4().hex[:8]}."
        self.transcript: list[Any] = []
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._published = 0
        #: Messages :meth:`get` took and holds unacked, oldest first.
        self.held: list[aiormq.abc.DeliveredMessage] = []

    def name(self, name: str) -> str:
        """The broker's name for a case's ``name`` (``""`` and ``amq.*`` stay as they are)."""
        return name if not name or name.startswith("amq.") else self.prefix + name

    async def channel(self) -> aiormq.abc.AbstractChannel:
        """The side's confirm channel, reopened after a refusal closed it."""
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.connection.channel(publisher_confirms=True)
        return self._channel

    async def _call(self, what: str, call: Callable[[aiormq.abc.AbstractChannel], Any]) -> Any:
        """Run ``call`` on the channel; a refusal goes into the transcript, not up."""
        channel = await self.channel()
        try:
            return await call(channel)
        except aiormq.exceptions.AMQPChannelError as exc:
            self.transcript.append((what, "refused", type(exc).__name__))
            await self._settle(channel)
            return None

    async def _settle(self, channel: aiormq.abc.AbstractChannel) -> None:
        # The broker closes a channel it refused something on; make sure it is gone.
        with contextlib.suppress(aiormq.exceptions.AMQPError, asyncio.CancelledError):
            await channel.close()

    async def exchange(
        self, name: str, kind: str = "direct", arguments: Mapping[str, Any] | None = None
    ) -> None:
        """Declare exchange ``name`` (auto-deleted on RabbitMQ when unused); its
        ``alternate-exchange`` argument is prefixed too."""
        args = dict(arguments or {})
        if isinstance(args.get("alternate-exchange"), str):
            args["alternate-exchange"] = self.name(args["alternate-exchange"])
        self.exchanges.append(self.name(name))
        await self._call(
            f"exchange {name}",
            lambda ch: ch.exchange_declare(self.name(name), exchange_type=kind, arguments=args),
        )

    async def queue(self, name: str, arguments: Mapping[str, Any] | None = None) -> None:
        """Declare queue ``name``; exchange names in its arguments are prefixed too."""
        args = dict(arguments or {})
        for key in ("x-dead-letter-exchange", "alternate-exchange"):
            if isinstance(args.get(key), str):
                args[key] = self.name(args[key])
        self.queues.append(self.name(name))
        await self._call(
            f"queue {name}", lambda ch: ch.queue_declare(self.name(name), arguments=args)
        )

    async def bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind ``queue`` to ``exchange``."""
        await self._call(
            f"bind {queue} {exchange}",
            lambda ch: ch.queue_bind(
                self.name(queue),
                self.name(exchange),
                routing_key=routing_key,
                arguments=dict(arguments or {}),
            ),
        )

    async def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Bind exchange ``destination`` to exchange ``source``."""
        await self._exchanges("exchange_bind", destination, source, routing_key, arguments)

    async def exchange_unbind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove the binding of exchange ``destination`` to exchange ``source``."""
        await self._exchanges("exchange_unbind", destination, source, routing_key, arguments)

    async def _exchanges(
        self,
        method: str,
        destination: str,
        source: str,
        routing_key: str,
        arguments: Mapping[str, Any] | None,
    ) -> None:
        await self._call(
            f"{method} {destination} {source}",
            lambda ch: getattr(ch, method)(
                self.name(destination),
                self.name(source),
                routing_key,
                arguments=dict(arguments or {}),
            ),
        )

    async def exchange_delete(self, name: str) -> None:
        """Delete exchange ``name``."""
        await self._call(f"exchange_delete {name}", lambda ch: ch.exchange_delete(self.name(name)))

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes = b"",
        *,
        mandatory: bool = False,
        **properties: Any,
    ) -> None:
        """Publish and wait for the confirm: records ``routed``, ``returned`` or a refusal."""
        # aiormq gives a publish without a message_id one of its own (random) on RabbitMQ.
        self._published += 1
        properties.setdefault("message_id", f"m{self._published}")
        props = spec.Basic.Properties(**properties)

        async def call(ch: aiormq.abc.AbstractChannel) -> str:
            try:
                await ch.basic_publish(
                    body,
                    exchange=self.name(exchange),
                    routing_key=routing_key,
                    properties=props,
                    mandatory=mandatory,
                )
            except aiormq.exceptions.PublishError:
                return "returned"
            except aiormq.exceptions.DeliveryError:
                return "nacked"  # the broker refused it (a full queue's reject-publish)
            return "routed"

        outcome = await self._call(f"publish {body!r}", call)
        if outcome is not None:
            self.transcript.append((f"publish {body!r}", outcome))

    async def drain(self, queue: str, expect: int | None = None) -> None:
        """Take every message of ``queue`` into the transcript (see the module's doc)."""
        got: list[aiormq.abc.DeliveredMessage] = []
        if expect:
            got = await self._consume(queue, expect)
        while True:
            message = await self._call(
                f"get {queue}", lambda ch: ch.basic_get(self.name(queue), no_ack=True)
            )
            if message is None or isinstance(message.delivery, spec.Basic.GetEmpty):
                break
            got.append(message)
        self.transcript.append((f"queue {queue}", [self.seen(m) for m in got]))

    async def get(self, queue: str) -> None:
        """Take one message of ``queue`` with ``basic.get`` and hold it unacked until
        :meth:`settle`; records it (``None``: the queue was empty)."""
        message = await self._call(
            f"get {queue}", lambda ch: ch.basic_get(self.name(queue), no_ack=False)
        )
        if message is None or isinstance(message.delivery, spec.Basic.GetEmpty):
            self.transcript.append((f"get {queue}", None))
            return
        self.held.append(message)
        self.transcript.append((f"get {queue}", self.seen(message)))

    async def settle(self, how: str, *, requeue: bool = False) -> None:
        """Settle the oldest message :meth:`get` holds: ``"ack"``, ``"reject"`` or ``"nack"``
        (the last two with ``requeue``)."""
        tag = self.held.pop(0).delivery.delivery_tag
        channel = await self.channel()
        if how == "ack":
            await channel.basic_ack(tag)
        elif how == "reject":
            await channel.basic_reject(tag, requeue=requeue)
        else:
            await channel.basic_nack(tag, requeue=requeue)
        self.transcript.append((how, requeue))

    async def _consume(self, queue: str, n: int) -> list[aiormq.abc.DeliveredMessage]:
        channel = await self.connection.channel()
        got: list[aiormq.abc.DeliveredMessage] = []
        arrived = asyncio.Event()

        async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
            got.append(message)
            if len(got) >= n:
                arrived.set()

        try:
            await channel.basic_qos(prefetch_count=n)
            await channel.basic_consume(self.name(queue), on_message, no_ack=True)
            async with asyncio.timeout(DRAIN_TIMEOUT):
                await arrived.wait()
        except TimeoutError:
            pass  # what came is recorded; the other broker's transcript shows the difference
        finally:
            await self._settle(channel)
        return list(got)

    def seen(self, message: aiormq.abc.DeliveredMessage) -> dict[str, Any]:
        """What a transcript records of a delivered message."""
        delivery = message.delivery
        properties = message.header.properties
        record: dict[str, Any] = {
            "routing_key": self.plain(getattr(delivery, "routing_key", None)),
            "exchange": self.plain(getattr(delivery, "exchange", None)),
            "body": message.body,
            "redelivered": getattr(delivery, "redelivered", None),
        }
        for name in PROPERTIES:
            value = getattr(properties, name, None)
            if value is not None:
                record[name] = self.plain(value)
        headers = dict(properties.headers or {})
        if "x-death" in headers and isinstance(headers["x-death"], list):
            headers["x-death"] = [
                {k: v for k, v in death.items() if k != "time"}
                if isinstance(death, dict)
                else death
                for death in headers["x-death"]
            ]
        record["headers"] = self.plain(headers)
        return record

    def plain(self, value: Any) -> Any:
        """``value`` with this side's prefix taken out of every string, tagged by type
        where Python's ``==`` would blur AMQP types (``1`` and ``True``, ``1`` and ``1.0``)."""
        if isinstance(value, str):
            return value.replace(self.prefix, "")
        if isinstance(value, bytes | bytearray):
            return (type(value).__name__, bytes(value).replace(self.prefix.encode(), b""))
        if isinstance(value, dict):
            return {self.plain(k): self.plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.plain(v) for v in value]
        if isinstance(value, bool | int | float | decimal.Decimal | datetime.datetime):
            return (type(value).__name__, value)
        return value

    async def cleanup(self) -> None:
        """Delete what the case declared (RabbitMQ outlives the test)."""
        channel = await self.connection.channel()
        for queue in self.queues:
            with contextlib.suppress(aiormq.exceptions.AMQPChannelError):
                await channel.queue_delete(queue)
            if channel.is_closed:
                channel = await self.connection.channel()
        for exchange in self.exchanges:
            with contextlib.suppress(aiormq.exceptions.AMQPChannelError):
                await channel.exchange_delete(exchange)
            if channel.is_closed:
                channel = await self.connection.channel()


@contextlib.asynccontextmanager
async def rabbitmq_side() -> AsyncIterator[Side]:
    """A side on the real broker: a plain aiormq connection (not eventrabbit's)."""
    connection = await aiormq.connect(BROKER_URL)
    side = Side("rabbitmq", connection)
    try:
        yield side
    finally:
        try:
            await side.cleanup()
        finally:
            await connection.close()


@contextlib.asynccontextmanager
async def memory_side() -> AsyncIterator[Side]:
    """A side on a fresh in-memory broker."""
    with memory_broker() as broker:
        connection = await connect_memory(broker.url)
        try:
            yield Side("memory", connection)
        finally:
            await connection.close()


async def compare(case: Case) -> tuple[list[Any], list[Any]]:
    """Play ``case`` on RabbitMQ and on the in-memory broker: the two transcripts."""
    async with rabbitmq_side() as rabbit:
        await case(rabbit)
    async with memory_side() as memory:
        await case(memory)
    return rabbit.transcript, memory.transcript
